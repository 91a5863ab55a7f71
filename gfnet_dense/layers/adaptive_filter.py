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

from ..ops.dft import irfft2


def spectral_filter(planes: torch.Tensor,
                    multiplier: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``irfft2(rfft2(x) * multiplier(rfft2(x)))`` over the last two dims, in float32.

    ``planes`` is channels-first ``(B, C, H, W)`` so both FFTs run over
    contiguous planes; they run in float32 also under autocast (cuFFT has no
    general half-precision path) and the float32 result is returned. Without
    autograd the product happens in place.
    """
    height, width = planes.shape[-2:]
    with torch.autocast(device_type=planes.device.type, enabled=False):
        spectrum = torch.fft.rfft2(planes.float(), norm='ortho')
        mask = multiplier(spectrum)
        spectrum = spectrum * mask if torch.is_grad_enabled() else spectrum.mul_(mask)
        return irfft2(spectrum, (height, width), norm='ortho')


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
    def _complex_linear(real, imag, weight, bias):
        """Per-group ``(real + i imag) @ (weight[0] + i weight[1]) + bias`` on ``(B, G, c, H, W)``."""
        def mix(t, w):
            return torch.einsum('bgihw,gio->bgohw', t, w)
        return (mix(real, weight[0]) - mix(imag, weight[1]) + bias[0][..., None, None],
                mix(imag, weight[0]) + mix(real, weight[1]) + bias[1][..., None, None])

    def mask(self, spectrum: torch.Tensor) -> torch.Tensor:
        """The content-dependent complex filter for a ``(B, C, H, W//2+1)`` spectrum."""
        b, c, h, w = spectrum.shape
        grouped = spectrum.reshape(b, self.groups, c // self.groups, h, w)
        real, imag = self._complex_linear(grouped.real, grouped.imag, self.w1, self.b1)
        real, imag = self._complex_linear(self.act(real), self.act(imag), self.w2, self.b2)
        return torch.complex(F.softshrink(real, self.sparsity),
                             F.softshrink(imag, self.sparsity)).reshape(b, c, h, w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + spectral_filter(z, self.mask).to(z.dtype)
