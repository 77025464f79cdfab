"""The ``numpy`` backend: the readable reference for every kernel, one idea per function.

Every backend implements these functions with these signatures
(``kernels/contract.py``) and is tested against them. Read ``se.py`` first.
"""
from .. import contract
from . import channel_pool, conv, gather, norm, pool, residual, se, spatial_gate

NAME = "numpy"
conv_output_size = contract.conv_output_size

contract.bind(globals(), se, conv, norm, residual, pool, channel_pool, spatial_gate, gather)
