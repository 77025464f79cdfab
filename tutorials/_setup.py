"""Notebook setup: make ``se_numpy`` importable in a fresh Jupyter kernel.

The first code cell of every tutorial runs this file (``%run _setup.py``; in
the ``.py`` files that line is a comment, so a script never runs it). Where
``se_numpy`` is already importable it does nothing. Otherwise it installs the
clone this file sits in, with its dependencies, into the kernel's own Python
(``pip install -e``, the same as ``pip install -e .`` in the clone), and puts
the clone on ``sys.path`` so that the running kernel can import it without a
restart.
"""
import importlib.util
import subprocess
import sys
from pathlib import Path

CLONE = Path(__file__).resolve().parent.parent        # tutorials/.. is the repository

if importlib.util.find_spec("se_numpy") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-e", str(CLONE)], check=True)
    sys.path.insert(0, str(CLONE))
