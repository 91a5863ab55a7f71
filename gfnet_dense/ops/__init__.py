"""Kernel configuration: the fast-path switch and the device decisions.

The tunable sizes are constants of ``gfnet_dense.ops.config`` (patch them there).
"""
from .config import (decision_device, fast_path, fft_channel_groups, force_device_type,
                     mlp_row_chunk, row_chunks, set_fast_path, use_fast_path, use_onednn_mlp,
                     use_tiled_transpose)

__all__ = [
    'decision_device', 'fast_path', 'fft_channel_groups', 'force_device_type', 'mlp_row_chunk',
    'row_chunks', 'set_fast_path', 'use_fast_path', 'use_onednn_mlp', 'use_tiled_transpose',
]
