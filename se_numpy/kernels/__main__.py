"""``python -m se_numpy.kernels``: print the kernel table of docs/kernels.md from the contract."""
from .contract import markdown_table

print(markdown_table())
