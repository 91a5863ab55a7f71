"""MobileNetV2 blocks in strips of rows, for inference on CPU.

An inverted residual block widens its input (1x1 expansion, 2-4x the channels)
before its depthwise convolution, so at the early strides its expanded map is
the largest tensor of the network (AFFNet-S at 512x512: 128 x 256 x 256, 32 MiB).
On CPU each fresh buffer that large is page-faulted in on every call (glibc
maps and unmaps allocations above 32 MiB), a measurable share of the forward
(measurements: docs/benchmarks.md). ``inverted_residual_strips`` computes the block
for a strip of output rows at a time, from the rows of the input its depthwise
window reaches, so the expanded map never exists whole and each strip's buffers
are small. Every output pixel goes through the same convolutions as in the
whole-map form (``tests/unit/ops/test_affnet_fast_path.py``).
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .conv_bn import FoldedConv


def inverted_residual_strips(x: torch.Tensor, expand: Optional[FoldedConv],
                             depthwise: FoldedConv, project: FoldedConv, residual: bool,
                             strip_rows: int) -> torch.Tensor:
    """``project(depthwise(expand(x))) (+ x)`` for ``(B, C, H, W)`` maps, ``strip_rows``
    output rows at a time (``expand`` and ``project`` 1x1, ``expand`` may be absent).

    The depthwise convolution's zero padding is the expanded map's: strips at the
    top and bottom get zero rows of expanded channels, the others the real rows
    around them; the columns keep the convolution's own padding.
    """
    conv = depthwise.conv
    height = x.shape[2]
    (stride, _), (dilation, _), (pad, pad_w) = conv.stride, conv.dilation, conv.padding
    reach = dilation * (conv.kernel_size[0] - 1) + 1  # input rows one output row reads
    out_height = (height + 2 * pad - reach) // stride + 1
    strips = []
    for first in range(0, out_height, strip_rows):
        last = min(first + strip_rows, out_height)  # exclusive
        low, high = first * stride - pad, (last - 1) * stride - pad + reach
        rows = x[:, :, max(low, 0):min(high, height)]
        hidden = expand(rows) if expand is not None else rows
        top, bottom = max(-low, 0), max(high - height, 0)
        if top or bottom:
            hidden = F.pad(hidden, (0, 0, top, bottom))  # keeps the memory format
        strips.append(project(depthwise(hidden, (0, pad_w))))
    out = torch.cat(strips, dim=2)
    return out.add_(x) if residual else out
