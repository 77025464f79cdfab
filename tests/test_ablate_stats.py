"""The statistics of ``se-numpy ablate``: Student's t tail against printed tables, the paired test.

Reference values are the two-sided 5 % and 1 % critical values of Student's t
from any statistics table (e.g. Fisher & Yates): t = 12.706 (1 d.o.f.), 4.303 (2),
2.776 (4), 2.228 (10) at 5 %; 9.925 (2) at 1 %. The tables print three
decimals, so p is checked to 2e-4 (a wrong degrees of freedom or a one-sided p
is off by a factor of 2 or more).
"""
import math

import pytest

from se_numpy.ablate.stats import (mean_and_std, paired_t_test, regularized_incomplete_beta,
                                   t_two_sided_p)

CRITICAL_VALUES = [(12.706, 1, 0.05), (4.303, 2, 0.05), (2.776, 4, 0.05), (2.228, 10, 0.05),
                   (9.925, 2, 0.01), (3.169, 10, 0.01)]


@pytest.mark.parametrize("t, dof, p", CRITICAL_VALUES)
def test_two_sided_p_at_printed_critical_values(t, dof, p):
    assert abs(t_two_sided_p(t, dof) - p) < 2e-4
    assert abs(t_two_sided_p(-t, dof) - p) < 2e-4


def test_closed_forms():
    # 1 d.o.f. is the Cauchy distribution: P(|T| >= t) = 1 - (2/π) atan t
    for t in (0.1, 1.0, 3.0, 40.0):
        assert math.isclose(t_two_sided_p(t, 1), 1 - 2 / math.pi * math.atan(t), rel_tol=1e-10)
    # 2 d.o.f.: P(|T| >= t) = 1 - t / sqrt(2 + t²)
    for t in (0.5, 2.0, 10.0):
        assert math.isclose(t_two_sided_p(t, 2), 1 - t / math.sqrt(2 + t * t), rel_tol=1e-10)
    # I_x(1, 1) = x and I_x(a, 1) = x^a
    assert math.isclose(regularized_incomplete_beta(1, 1, 0.3), 0.3, rel_tol=1e-12)
    assert math.isclose(regularized_incomplete_beta(2.5, 1, 0.6), 0.6 ** 2.5, rel_tol=1e-12)
    assert t_two_sided_p(0.0, 3) == 1.0 and t_two_sided_p(math.inf, 3) == 0.0


def test_paired_test_on_a_hand_computed_example():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1/√3) = 2√3 with 2 d.o.f.
    result = paired_t_test([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])
    assert result["mean_difference"] == 2.0 and result["degrees_of_freedom"] == 2
    assert math.isclose(result["t"], 2 * math.sqrt(3), rel_tol=1e-12)
    t = result["t"]
    assert math.isclose(result["p"], 1 - t / math.sqrt(2 + t * t), rel_tol=1e-9)


def test_pairing_matters():
    # the same numbers unpaired would look like noise; paired, the shift is perfectly consistent
    baseline = [5.0, 9.0, 13.0]
    variant = [5.5, 9.5, 13.5]
    assert paired_t_test(variant, baseline)["p"] == 0.0
    assert paired_t_test(baseline, baseline)["p"] == 1.0


def test_edge_cases_and_bad_input():
    assert paired_t_test([3.0], [2.0])["p"] is None
    assert mean_and_std([4.0]) == (4.0, 0.0)
    mean, std = mean_and_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and math.isclose(std, math.sqrt(5 / 3))
    with pytest.raises(ValueError, match="one per seed"):
        paired_t_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least one"):
        mean_and_std([])
    with pytest.raises(ValueError, match="degrees_of_freedom"):
        t_two_sided_p(1.0, 0)
