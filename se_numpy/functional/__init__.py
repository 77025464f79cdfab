"""Pure forward/backward pairs: ``out, cache = f_forward(...)``; ``grads = f_backward(dout, cache)``.

The math of every layer lives in these functions' docstrings.
"""
from .activation import (hard_sigmoid_backward, hard_sigmoid_forward, hard_swish_backward,
                         hard_swish_forward, relu6_backward, relu6_forward, relu_backward,
                         relu_forward, sigmoid, sigmoid_backward, sigmoid_forward,
                         silu_backward, silu_forward, tanh_backward, tanh_forward)
from .cbam import (cbam_backward, cbam_forward, channel_attention_backward,
                   channel_attention_forward, channel_pool_backward, channel_pool_forward,
                   spatial_attention_backward, spatial_attention_forward)
from .conv import conv2d_backward, conv2d_forward, conv2d_output_shape
from .eca import eca_backward, eca_forward, eca_kernel_size
from .effective_se import effective_se_backward, effective_se_forward
from .gather_excite import (excite_backward, excite_forward, gather_backward,
                            gather_excite_backward, gather_excite_forward, gather_forward)
from .linear import linear_backward, linear_forward
from .loss import log_softmax, softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .nosqueeze import nosqueeze_backward, nosqueeze_forward
from .norm import (batch_norm2d_backward, batch_norm2d_forward, batch_norm2d_relu_forward,
                   update_running_stats)
from .scse import scse_backward, scse_forward
from .pool import (avg_pool2d_backward, avg_pool2d_forward, global_avg_pool_backward,
                   global_avg_pool_forward, max_pool2d_backward, max_pool2d_forward)
from .se import (excitation_backward, excitation_forward, hidden_width, make_divisible,
                 scale_backward,
                 scale_forward, se_block_add_backward, se_block_add_forward, se_block_backward,
                 se_block_forward, squeeze_backward, squeeze_forward)
from .selective_kernel import (path_softmax_backward, path_softmax_forward, path_squeeze_backward,
                               path_squeeze_forward, select_backward, select_forward)
