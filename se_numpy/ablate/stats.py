"""Statistics over seeds: mean, standard deviation, and a paired t-test against the baseline.

Why a *paired* test: run k of every variant uses seed k, so it sees the same
data order and augmentation, and the networks start from the same seed. Part
of the run-to-run noise is shared by the two runs of a seed and cancels in the
difference d_k = error_variant(k) - error_baseline(k). The test asks whether
the mean of the d_k is zero:

    t = mean(d) / (sd(d) / sqrt(K)),   K - 1 degrees of freedom,   sd with K - 1

and the two-sided p-value is P(|T| >= |t|) for Student's t with K - 1 degrees
of freedom. Why t and not a rank test: with the few seeds a laptop affords,
Wilcoxon's signed-rank test cannot reach p < 0.05 at all (with K = 3 its
smallest two-sided p is 0.25), while the t-test can; it assumes the d_k are
roughly normal, which should be kept in mind when reading a p near 0.05.

The t distribution's tail is the regularised incomplete beta function,

    P(|T| >= |t|) = I_x(ν/2, 1/2),   x = ν / (ν + t²),

evaluated by its continued fraction (Lentz's method), so no SciPy is needed.
"""
import math

SIGNIFICANCE_LEVEL = 0.05


def mean_and_std(values):
    """Mean and sample standard deviation (K - 1 in the denominator; 0 for one value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("expected at least one value, got none")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance)


def _beta_continued_fraction(a, b, x, tolerance=1e-15, max_terms=500):
    """The continued fraction of I_x(a, b) (Numerical Recipes' betacf, Lentz's method)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, max_terms + 1):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < tolerance:
            return fraction
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def regularized_incomplete_beta(a, b, x):
    """I_x(a, b) = (1/B(a, b)) ∫_0^x t^(a-1) (1-t)^(b-1) dt for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"expected a > 0 and b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x: expected a value in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    # the fraction converges fast for x < (a+1)/(a+b+2); beyond, use the symmetry
    # I_x(a, b) = 1 - I_{1-x}(b, a)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_two_sided_p(t, degrees_of_freedom):
    """P(|T| >= |t|) for Student's t with ``degrees_of_freedom`` (> 0) degrees of freedom."""
    if degrees_of_freedom <= 0:
        raise ValueError(f"degrees_of_freedom: expected > 0, got {degrees_of_freedom}")
    if math.isinf(t):
        return 0.0
    nu = float(degrees_of_freedom)
    return regularized_incomplete_beta(nu / 2.0, 0.5, nu / (nu + t * t))


def paired_t_test(values, baseline):
    """Paired t-test of ``values`` against ``baseline`` (same seeds, same order).

    Returns a dict: mean_difference (values - baseline), t, p (two-sided),
    degrees_of_freedom. With one pair there is no test (t and p are None). If
    all differences are equal, sd = 0: p is 1 when they are all zero, 0 otherwise.
    """
    if len(values) != len(baseline):
        raise ValueError(f"expected as many values as baseline values (one per seed), "
                         f"got {len(values)} and {len(baseline)}")
    differences = [float(v) - float(b) for v, b in zip(values, baseline)]
    mean, std = mean_and_std(differences)
    count = len(differences)
    if count < 2:
        return {"mean_difference": mean, "t": None, "p": None, "degrees_of_freedom": 0}
    if std == 0.0:
        t = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
    else:
        t = mean / (std / math.sqrt(count))
    return {"mean_difference": mean, "t": t, "p": t_two_sided_p(t, count - 1),
            "degrees_of_freedom": count - 1}
