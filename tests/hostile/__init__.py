"""Crafted hostile files for the loaders and checkpoints, shared by tests/test_hostile_*.py.

``pickles.py`` writes pickle programs opcode by opcode (the layout of the
official Python 2 CIFAR files and attacks on it), ``archives.py`` gzip, IDX and
zip bombs and damaged checkpoints. Each builder returns bytes, so a test knows
exactly what the file holds without asking the code under test. ``compare.py``
runs the whole catalogue, one process per attack, against any source tree.
"""
