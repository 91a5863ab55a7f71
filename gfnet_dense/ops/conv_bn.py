"""Convolution + BatchNorm as one convolution, for inference.

In eval mode a BatchNorm is a per-channel affine map with fixed statistics, so
``bn(conv(x)) == conv'(x)`` with ``w' = w * s`` and ``b' = beta + (b - mu) * s``,
``s = gamma / sqrt(var + eps)`` (the products in float32): one pass over the map
instead of two. Training keeps the two layers (batch statistics).
``conv_folded_silu`` adds the SiLU that follows, in place on the convolution's
output (no second map-sized buffer; oneDNN's fused SiLU was measured less
accurate than torch's against float64, so it is not used).
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def fold_batch_norm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """``conv``'s weight and bias with ``norm`` (eval statistics) folded in."""
    scale = norm.weight.float() * torch.rsqrt(norm.running_var.float() + norm.eps)
    weight = conv.weight.float() * scale.reshape(-1, 1, 1, 1)
    shift = norm.bias.float() - norm.running_mean.float() * scale
    if conv.bias is not None:
        shift = shift + conv.bias.float() * scale
    return weight.to(conv.weight.dtype), shift.to(conv.weight.dtype)


def conv_folded(x: torch.Tensor, conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor,
                padding: Optional[Sequence[int]] = None) -> torch.Tensor:
    """``conv`` with the folded ``weight`` and ``bias`` (``fold_batch_norm``), its own
    padding or ``padding``."""
    return F.conv2d(x, weight, bias, conv.stride, padding or conv.padding, conv.dilation,
                    conv.groups)


def conv_folded_silu(x: torch.Tensor, conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor,
                     padding: Optional[Sequence[int]] = None) -> torch.Tensor:
    """``silu(conv_folded(x, ...))``, for inference (the SiLU in place on the output)."""
    return F.silu(conv_folded(x, conv, weight, bias, padding), inplace=True)


class FoldedConv(NamedTuple):
    """A convolution with its BatchNorm folded in (``fold_batch_norm``),
    followed by SiLU when ``silu``."""
    conv: nn.Conv2d
    weight: torch.Tensor
    bias: torch.Tensor
    silu: bool

    def __call__(self, x: torch.Tensor, padding: Optional[Sequence[int]] = None) -> torch.Tensor:
        run = conv_folded_silu if self.silu else conv_folded
        return run(x, self.conv, self.weight, self.bias, padding)
