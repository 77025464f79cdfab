"""One call that writes a figure to disk and, inside a notebook, also shows it.

    show(fig, OUT / "gates.png")    # script: writes the PNG; Jupyter: writes it and shows it

The tutorials run both as scripts and as notebooks (jupytext). A script has
no screen, so every figure is written to a file; a notebook should show the
figure in the cell that drew it. Closing the figure after saving keeps a
long run's memory flat, but a closed figure is not drawn by the inline
backend at the end of the cell, so the image is handed to the notebook
explicitly (``IPython.display.display``) before it is closed.
"""
import sys
from pathlib import Path

from se_numpy.atomic import atomic_write


def in_notebook():
    """True inside a Jupyter kernel (ipykernel has been imported), False in a plain script."""
    return "ipykernel" in sys.modules


def show(fig, path, dpi=90):
    """Write ``fig`` to ``path`` (atomically; format from the suffix), display it
    inline when running in a notebook, close it; returns ``path``.

    fig:  a ``matplotlib.figure.Figure``
    path: where the file goes; its folder must exist
    dpi:  resolution of the file (the inline image uses the notebook's own)
    """
    path = Path(path)
    if not path.suffix:
        raise ValueError(f"show: path needs a suffix naming the format (.png, .svg), got {path}")
    atomic_write(path, lambda stream: fig.savefig(stream, dpi=dpi, format=path.suffix[1:]))
    if in_notebook():
        from IPython.display import display
        display(fig)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
