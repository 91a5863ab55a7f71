"""AFFNet's token mixer: a filter computed from the spectrum itself (Huang et al., ICCV 2023).

Where GFNet learns one static filter per resolution, the adaptive frequency
filter computes its filter from the content: a small complex channel MLP
(block-diagonal over channel groups) on the spectrum, soft-shrunk, multiplies
the spectrum. No weight depends on ``H x W``, so any input size works as is.
"""
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.config import autocast_off
from ..ops.dft import irfft2, rfft2
from .fx_leaf import fx_leaf


def spectral_filter(planes: torch.Tensor,
                    multiplier: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``irfft2(rfft2(x) * multiplier(rfft2(x)))`` over the last two dims, in float32.

    ``planes`` is channels-first ``(B, C, H, W)`` so both FFTs run over
    contiguous planes; they run in float32 also under autocast (cuFFT has no
    general half-precision path) and the float32 result is returned. Without
    autograd the product happens in place.
    """
    height, width = planes.shape[-2:]
    with autocast_off(planes):
        spectrum = rfft2(planes.float())
        mask = multiplier(spectrum)
        spectrum = spectrum * mask if torch.is_grad_enabled() else spectrum.mul_(mask)
        return irfft2(spectrum, (height, width))


@fx_leaf
class AdaptiveFrequencyFilter(nn.Module):
    """``z + irfft2(softshrink(MLP(Z)) * Z)`` with ``Z = rfft2(z)``: ``(B, C, H, W) -> same``.

    The MLP is complex, two layers, block-diagonal over ``groups`` channel
    groups; ``w*[0]`` / ``w*[1]`` hold real and imaginary parts; ``act_layer``
    acts on real and imaginary parts after the first (SiLU: the public
    implementation takes the network's activation, swish in its recipes).
    """

    def __init__(self, dim: int, groups: int = 8, sparsity: float = 0.01,
                 act_layer: Callable[[], nn.Module] = nn.SiLU):
        super().__init__()
        if dim % groups:
            raise ValueError(f'AFF filter channels {dim} must be divisible by {groups} groups')
        size = dim // groups
        self.groups, self.sparsity = groups, sparsity
        self.w1 = nn.Parameter(0.02 * torch.randn(2, groups, size, size))
        self.b1 = nn.Parameter(0.02 * torch.randn(2, groups, size))
        self.w2 = nn.Parameter(0.02 * torch.randn(2, groups, size, size))
        self.b2 = nn.Parameter(0.02 * torch.randn(2, groups, size))
        self.act = act_layer()

    @staticmethod
    def _complex_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Per-group complex ``(re + i im) @ (weight[0] + i weight[1]) + bias``.

        ``x`` is ``(B, G, 2c, N)``: in each group the real parts in the first ``c``
        rows, the imaginary parts in the last ``c``; returns ``(B, G, 2o, N)`` laid
        out the same. One real product per group, ``[[W0, -W1], [W1, W0]]^T`` times
        ``[re; im]``, on contiguous rows (a product per part on the complex
        tensor's strided real and imaginary views is several times slower).
        """
        w_re, w_im = weight.transpose(-1, -2)  # each (G, o, c)
        block = torch.cat((torch.cat((w_re, -w_im), -1), torch.cat((w_im, w_re), -1)), -2)
        return torch.matmul(block, x) + bias.transpose(0, 1).flatten(1)[..., None]

    def mask(self, spectrum: torch.Tensor) -> torch.Tensor:
        """The content-dependent complex filter for a ``(B, C, H, W//2+1)`` spectrum."""
        b, c, h, w = spectrum.shape
        size = c // self.groups
        parts = torch.view_as_real(spectrum).reshape(b, self.groups, size, h * w, 2)
        x = parts.permute(0, 1, 4, 2, 3).reshape(b, self.groups, 2 * size, h * w)
        x = self._complex_linear(x, self.w1, self.b1)
        x = self._complex_linear(self.act(x), self.w2, self.b2)
        x = F.softshrink(x, self.sparsity).reshape(b, self.groups, 2, size, h * w)
        return torch.view_as_complex(x.permute(0, 1, 3, 4, 2).contiguous()).reshape(b, c, h, w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + spectral_filter(z, self.mask).to(z.dtype)
