"""Performance code: the kernels behind the layers' fast path, and their configuration.

Each kernel computes what a layer's ``forward`` writes plainly, and the layer
calls it only where ``fast_path_eligible(x)``: the fast path on (``fast_path``,
``set_fast_path``, ``GFNET_FAST_PATH=0``) and the model run rather than recorded
as a graph or its operators counted:

* ``global_filter`` (``fft_filter``): ``GlobalFilter``'s ``irfft2(rfft2(x) * filter)``;
* ``residual_mlp`` (``mlp``): ``GFBlock``'s ``x + drop_path(gamma * mlp(norm2(y)))``;
* ``conv_bn``: AFFNet's inference convolutions with their BatchNorm folded in and
  their SiLU in place;
* ``mbconv``: AFFNet's inference MobileNetV2 blocks in strips of rows (CPU).

The forms the FFTs take in an ONNX export (``config.onnx_export``) are
``gfnet_dense.deploy.onnx_fft``'s.

``config`` holds the switch and every device decision; the tunable sizes are
its constants (patch them there). The switch is per thread (a ``fast_path`` block
holds in its own thread only; ``set_fast_path`` sets the process-wide default).
Private torch APIs are confined to ``_torch_private``.
"""
from .config import (capturing_graph, decision_device, fast_path, fast_path_eligible,
                     fft_channel_groups, force_device_type, mlp_row_chunk, recompute_contexts,
                     row_chunks, set_fast_path, use_fast_path, use_onednn_mlp,
                     use_tiled_transpose)
from .fft_filter import global_filter, to_channels_first
from .mlp import residual_mlp

__all__ = [
    'capturing_graph', 'decision_device', 'fast_path', 'fast_path_eligible',
    'fft_channel_groups', 'force_device_type', 'global_filter', 'mlp_row_chunk',
    'recompute_contexts', 'residual_mlp', 'row_chunks', 'set_fast_path', 'to_channels_first',
    'use_fast_path', 'use_onednn_mlp', 'use_tiled_transpose',
]
