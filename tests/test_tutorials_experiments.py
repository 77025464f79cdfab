"""The find-the-bug exercise (tutorial 8): the planted bug is caught, and only where it should be.

The tutorial and its solution run as scripts in ``test_tutorials.py``; here their
functions are loaded (``runpy``, output silenced) and checked on their own:

- the checker's report on the buggy backward fails for ``x`` alone, at exactly
  the entries where the unit's ReLU is off, by exactly ``dy`` there;
- the one-line fix of the solution passes the checker;
- both statements agree with a plain central difference (``finite_differences.py``),
  so a bug in the checker could not make the exercise wrong.
"""
import contextlib
import io
import runpy
from pathlib import Path

import numpy as np
import pytest

from finite_differences import numerical_vjp

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
# float64 central differences of a smooth function at step 1e-6 (every ReLU input is at
# least 0.05 from its kink, far beyond the step): truncation ~1e-12 · |f'''|, rounding
# ~1e-16 / 1e-6 = 1e-10 per entry. 1e-6 leaves room for both and is still a million times
# smaller than the planted error (|dy| ~ 1 at the failing entries).
ATOL = 1e-6


def _load(path, monkeypatch, tmp_path):
    monkeypatch.setenv("SE_NUMPY_TUTORIAL_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    with contextlib.redirect_stdout(io.StringIO()):
        return runpy.run_path(str(path), run_name="loaded_by_test")


@pytest.fixture(scope="module")
def exercise(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    try:
        out = tmp_path_factory.mktemp("tutorial_08")
        tutorial = _load(TUTORIALS / "08_find_the_bug.py", monkeypatch, out)
        solution = _load(TUTORIALS / "solutions" / "08_find_the_bug_solutions.py",
                         monkeypatch, out)
    finally:
        monkeypatch.undo()
    return tutorial, solution


def _numerical_dx(tutorial):
    inputs, dy = tutorial["inputs"], tutorial["dy"]
    x = inputs[0].copy()
    return numerical_vjp(lambda: tutorial["unit_forward"](x, *inputs[1:])[0], x, dy)


def test_inputs_are_away_from_the_relu_kinks(exercise):
    tutorial, _ = exercise
    cache = tutorial["unit_forward"](*tutorial["inputs"])[1]
    a, p = cache[6], cache[9]
    assert np.abs(a).min() > tutorial["MARGIN"] and np.abs(p).min() > tutorial["MARGIN"]
    assert (p < 0).any() and (p > 0).any(), "the unit's ReLU must be on at some entries, off at others"


def test_the_checker_catches_the_bug_in_x_only_where_the_relu_is_off(exercise):
    tutorial, _ = exercise
    report = tutorial["check"]()
    assert not report.passed
    assert [d.name for d in report.directions if not d.passed] == ["x"]
    for name in ("W", "W1", "b1", "W2", "b2"):
        assert not report.tensors[name].failed.any(), f"{name} should be right"
    result = report.tensors["x"]
    assert result.checked == result.size, "every entry of dx is compared"
    p = tutorial["unit_forward"](*tutorial["inputs"])[1][9]
    off = (p < 0).reshape(-1)[result.indices]
    np.testing.assert_array_equal(result.failed, off)


def test_the_bug_is_what_an_independent_central_difference_says(exercise):
    tutorial, _ = exercise
    inputs, dy = tutorial["inputs"], tutorial["dy"]
    forward, backward = tutorial["unit_forward"], tutorial["unit_backward"]
    numerical = _numerical_dx(tutorial)
    analytical = backward(dy, forward(*inputs)[1])[0]
    p = forward(*inputs)[1][9]
    # the planted bug: dy passes the identity path unmasked, so the excess is dy where p < 0
    np.testing.assert_allclose(analytical - numerical, np.where(p < 0, dy, 0.0), atol=ATOL)


def test_the_solutions_one_line_fix_passes(exercise):
    tutorial, solution = exercise
    assert solution["changed"] == ["-    d_shortcut = dy                              # the identity path",
                                   "+    d_shortcut = dp                              # the identity path"]
    assert solution["fixed_report"].passed, solution["fixed_report"]
    inputs, dy = tutorial["inputs"], tutorial["dy"]
    fixed = solution["namespace"]["fixed_backward"](dy, tutorial["unit_forward"](*inputs)[1])
    np.testing.assert_allclose(fixed[0], _numerical_dx(tutorial), atol=ATOL)


def test_find_the_bug_as_a_notebook_shows_its_figure_inline(tmp_path, monkeypatch):
    pytest.importorskip("jupytext", reason="jupytext not installed: pip install -e '.[tutorials]'")
    pytest.importorskip("nbclient", reason="nbclient not installed: pip install -e '.[tutorials]'")
    pytest.importorskip("ipykernel", reason="ipykernel not installed: pip install -e '.[tutorials]'")
    from test_tutorial_notebooks import execute_as_notebook, inline_images
    monkeypatch.setenv("SE_NUMPY_TUTORIAL_OUT", str(tmp_path))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = execute_as_notebook(TUTORIALS / "08_find_the_bug.py")
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors, f"a cell raised {errors[0].get('ename')}: {errors[0].get('evalue')}"
    images = inline_images(notebook)
    assert len(images) == 1 and float(images[0][..., :3].std()) > 0.01
    assert (tmp_path / "08_find_the_bug" / "report.png").is_file()
