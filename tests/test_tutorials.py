"""Every tutorial and every solutions file runs top to bottom in fast mode and writes its figures.

Each script declares the PNGs it promises in a module-level list ``FIGURES``;
it is read here by parsing the file (``ast``), not by importing it, so the
test does not run the tutorial twice. A figure passes when it exists, loads
as an image and is not one flat colour (a blank canvas would pass an
existence check, so the pixel values must vary).

Every script writes under one output root for the whole module, as in a
clone (``tutorials/out``), each into its own ``NAME`` folder: tutorial 6's
solutions then find the tutorial's ablation runs there and read them instead
of training them again, as the solutions file says it does (the tutorials run
before the solutions; a solutions file run alone trains them itself).
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py")) + sorted(
    (TUTORIALS / "solutions").glob("[0-9][0-9]_*_solutions.py"))
# a fast-mode run targets ~20 s; this limit only stops a hung run
TIMEOUT_SECONDS = 300


def declared_figures(path):
    """The literal list assigned to FIGURES at module level, or fail if there is none."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "FIGURES"):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path.name} declares no module-level FIGURES list")


def declared_name(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "NAME"):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path.name} declares no module-level NAME")


def test_every_tutorial_is_found():
    numbers = {path.name[:2] for path in SCRIPTS if path.parent == TUTORIALS}
    assert numbers == {"01", "02", "03", "04", "05", "06", "07", "08"}, f"tutorials found: {sorted(numbers)}"
    for path in SCRIPTS:
        if path.parent == TUTORIALS:
            solutions = TUTORIALS / "solutions" / f"{path.stem}_solutions.py"
            assert solutions.exists(), f"{path.name} has no solutions file {solutions.name}"


@pytest.fixture(scope="module")
def tutorial_out(tmp_path_factory):
    """The output root that every script of this module shares (SE_NUMPY_TUTORIAL_OUT)."""
    return tmp_path_factory.mktemp("tutorial_out")


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_tutorial_runs_and_writes_its_figures(path, tmp_path, tutorial_out):
    figures = declared_figures(path)
    assert len(set(figures)) == len(figures), f"{path.name}: duplicate names in FIGURES"
    if path.parent == TUTORIALS:
        assert figures, f"{path.name} promises no figure"
    env = dict(os.environ, SE_NUMPY_FAST="1", SE_NUMPY_TUTORIAL_OUT=str(tutorial_out),
               MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(path)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    assert result.returncode == 0, (f"{path.name} failed:\n{result.stdout[-3000:]}\n"
                                    f"{result.stderr[-3000:]}")
    out = tutorial_out / declared_name(path)
    for figure in figures:
        png = out / figure
        assert png.exists(), f"{path.name} promised {figure} but did not write it to {out}"
        pixels = matplotlib.image.imread(png)
        assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50, \
            f"{figure}: unexpected image shape {pixels.shape}"
        colours = pixels[..., :3].reshape(-1, 3)
        assert float(colours.std()) > 0.01, f"{figure} is blank (pixel std {colours.std():.4f})"
        distinct_colours = np.unique(np.round(colours * 255).astype(np.int32), axis=0)
        assert len(distinct_colours) > 2, f"{figure} has only {len(distinct_colours)} colours"
    unexpected = sorted(p.name for p in out.glob("*.png") if p.name not in figures) \
        if out.exists() else []
    assert not unexpected, f"{path.name} wrote figures it does not declare: {unexpected}"


def run_fast(path, tmp_path, before=""):
    """Run a tutorial in fast mode as a script, after the Python statements ``before``."""
    code = f"{before}\nimport runpy\nrunpy.run_path({str(path)!r}, run_name='__main__')"
    env = dict(os.environ, SE_NUMPY_FAST="1", SE_NUMPY_TUTORIAL_OUT=str(tmp_path),
               MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    assert result.returncode == 0, (f"{path.name} failed:\n{result.stdout[-3000:]}\n"
                                    f"{result.stderr[-3000:]}")
    return result.stdout


def test_01_autograd_cross_check_says_so_without_torch(tmp_path):
    # a None entry in sys.modules makes `import torch` raise ImportError, as if it were absent
    stdout = run_fast(TUTORIALS / "01_se_block.py", tmp_path,
                      "import sys; sys.modules['torch'] = None")
    assert "PyTorch is not installed: autograd cross-check skipped" in stdout
    assert "autograd agrees" not in stdout


def test_01_autograd_cross_check_agrees_with_torch(tmp_path):
    pytest.importorskip("torch", reason="torch not installed: the cross-check's torch path")
    stdout = run_fast(TUTORIALS / "01_se_block.py", tmp_path)
    assert "autograd agrees with SEBlock.backward on every gradient" in stdout
    ratios = {line.split()[0]: float(line.rsplit("=", 1)[1])
              for line in stdout.splitlines() if "max |ours − autograd|" in line}
    assert set(ratios) == {"x", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}, ratios
    assert max(ratios.values()) < 1e-10, ratios


def test_show_writes_the_figure_and_closes_it_outside_a_notebook(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from se_numpy.analysis.figures import show
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)      # as in a plain script
    fig, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    path = show(fig, tmp_path / "line.png", dpi=50)
    assert matplotlib.image.imread(path).shape[:2] == (240, 320)       # 6.4 x 4.8 in at 50 dpi
    assert not plt.fignum_exists(fig.number)
    assert [p.name for p in tmp_path.iterdir()] == ["line.png"]        # no temporary left
    unnamed = plt.figure()
    with pytest.raises(ValueError, match="suffix"):
        show(unnamed, tmp_path / "no_suffix")
    plt.close(unnamed)


def test_show_hands_the_figure_to_the_notebook_inside_a_kernel(tmp_path, monkeypatch):
    import types

    import matplotlib.pyplot as plt
    from se_numpy.analysis.figures import show
    shown = []
    display_module = types.ModuleType("IPython.display")
    display_module.display = shown.append
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    monkeypatch.setitem(sys.modules, "IPython.display", display_module)
    fig = plt.figure()
    show(fig, tmp_path / "shown.png")
    assert shown == [fig] and (tmp_path / "shown.png").exists()
    assert not plt.fignum_exists(fig.number)
