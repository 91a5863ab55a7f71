"""AFFNet's token mixer: a filter computed from the spectrum itself (Huang et al., ICCV 2023).

A small complex channel MLP (block-diagonal over channel groups) on the spectrum,
soft-shrunk, multiplies the spectrum: no weight depends on ``H x W``.
"""
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..deploy import onnx_fft
from ..ops.config import autocast_off, exporting_onnx
from .fx_leaf import fx_leaf


def spectral_filter(planes: torch.Tensor,
                    multiplier: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``irfft2(rfft2(x) * multiplier(rfft2(x)))`` (orthonormal) of ``(B, C, H, W)`` planes:
    a float32 ``(B, C, H, W)``, computed in float32 also under autocast (cuFFT has no
    general half-precision path); in place without autograd."""
    size = planes.shape[-2:]
    with autocast_off(planes):
        if exporting_onnx():  # export: the FFTs' ONNX form
            spectrum = onnx_fft.rfft2(planes.float())
            return onnx_fft.irfft2(spectrum * multiplier(spectrum), size)
        spectrum = torch.fft.rfft2(planes.float(), norm='ortho')  # plain
        mask = multiplier(spectrum)
        spectrum = spectrum * mask if torch.is_grad_enabled() else spectrum.mul_(mask)
        return torch.fft.irfft2(spectrum, s=size, norm='ortho')


@fx_leaf
class AdaptiveFrequencyFilter(nn.Module):
    """``z + irfft2(softshrink(MLP(Z)) * Z)`` with ``Z = rfft2(z)``: ``(B, C, H, W) -> same``.

    The MLP is complex, two layers, block-diagonal over ``groups`` channel groups
    (``w*[0]`` / ``w*[1]``: real / imaginary parts); ``act_layer`` acts on both parts
    after the first (SiLU: the public code takes the network's activation).
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
        """Per-group complex ``(re + i im) @ (weight[0] + i weight[1]) + bias`` on
        ``(B, G, 2c, N)`` (each group's real parts, then its imaginary parts) ->
        ``(B, G, 2o, N)``: one real product ``[[W0, -W1], [W1, W0]]^T [re; im]`` per
        group on contiguous rows, not one per strided part of a complex tensor."""
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
