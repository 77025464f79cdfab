"""Pure forward/backward pairs: ``out, cache = f_forward(...)``; ``grads = f_backward(dout, cache)``.

The math of every layer lives in these functions' docstrings.
"""
from .activation import (hard_sigmoid_backward, hard_sigmoid_forward, relu_backward,
                         relu_forward, sigmoid, sigmoid_backward, sigmoid_forward,
                         tanh_backward, tanh_forward)
from .linear import linear_backward, linear_forward
from .se import (excitation_backward, excitation_forward, hidden_width, scale_backward,
                 scale_forward, se_block_add_backward, se_block_add_forward, se_block_backward,
                 se_block_forward, squeeze_backward, squeeze_forward)
