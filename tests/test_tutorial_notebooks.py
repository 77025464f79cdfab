"""Tutorials run as notebooks (jupytext -> nbclient) show their figures inline.

The route a student takes: ``jupytext`` reads the percent-format ``.py`` as a
notebook, a Jupyter kernel executes it cell by cell (``nbclient``), and every
figure the tutorial declares in ``FIGURES`` must come back as an
``image/png`` output of the cell that drew it -- not only as a file on disk.
A tutorial that saves and closes its figures without displaying them
executes without error but leaves no image in the notebook; that is the
failure this test catches.

Needs the ``tutorials`` extra (``pip install -e '.[tutorials]'``): jupytext,
nbclient and ipykernel. Where it is not installed, the tests skip and say so.
"""
import base64
import copy
import io

import matplotlib.image
import pytest

from test_tutorials import TUTORIALS, declared_figures, declared_name

jupytext = pytest.importorskip(
    "jupytext", reason="jupytext not installed: pip install -e '.[tutorials]'")
nbclient = pytest.importorskip(
    "nbclient", reason="nbclient not installed: pip install -e '.[tutorials]'")
pytest.importorskip("ipykernel", reason="ipykernel not installed: pip install -e '.[tutorials]'")

# two short tutorials in fast mode; 05 also runs its numba-before-import cell in a kernel
NOTEBOOKS = ["01_se_block.py", "05_gpu_kernels.py"]
# a cell a student may run again without restarting the kernel, found by a line it contains
RERUN = {"05_gpu_kernels.py": "def cuda_driver_present():"}
# a fast-mode notebook runs in ~10 s; this limit only stops a hung kernel
CELL_TIMEOUT_SECONDS = 300


def execute_as_notebook(path, rerun=None):
    """Execute ``path`` as a notebook in its own folder, as Jupyter does (its setup cell
    runs ``_setup.py`` from there); ``rerun``: append a copy of the first code cell
    containing that text, as if the student ran it again at the end."""
    notebook = jupytext.read(path)
    if rerun is not None:
        again = [cell for cell in notebook.cells
                 if cell.cell_type == "code" and rerun in cell.source]
        assert again, f"{path.name}: no code cell contains {rerun!r}"
        notebook.cells.append(copy.deepcopy(again[0]))
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_SECONDS,
                                     kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return notebook


def inline_images(notebook):
    """The decoded PNGs of every code cell's outputs, in order."""
    images = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                png = base64.b64decode(data["image/png"])
                images.append(matplotlib.image.imread(io.BytesIO(png), format="png"))
    return images


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_tutorial_as_notebook_shows_every_figure_inline(name, tmp_path, monkeypatch):
    path = TUTORIALS / name
    figures = declared_figures(path)
    # the kernel inherits this environment: fast mode, figures into tmp_path
    monkeypatch.setenv("SE_NUMPY_FAST", "1")
    monkeypatch.setenv("SE_NUMPY_TUTORIAL_OUT", str(tmp_path))
    monkeypatch.delenv("MPLBACKEND", raising=False)    # the kernel's own inline backend
    notebook = execute_as_notebook(path, RERUN.get(name))
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors, f"{name}: a cell raised {errors[0].get('ename')}: {errors[0].get('evalue')}"
    images = inline_images(notebook)
    # one inline image per declared figure: none missing, none shown twice
    assert len(images) == len(figures), (f"{name}: {len(images)} inline images, "
                                         f"{len(figures)} figures declared {figures}")
    for image in images:
        assert image.ndim == 3 and min(image.shape[:2]) > 50, f"inline image {image.shape}"
        assert float(image[..., :3].std()) > 0.01, f"{name}: a blank inline image"
    written = sorted(p.name for p in (tmp_path / declared_name(path)).glob("*.png"))
    assert written == sorted(figures), f"{name}: on disk {written}, declared {figures}"
