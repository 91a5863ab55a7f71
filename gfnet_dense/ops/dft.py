"""The inverse real 2-D FFT, in a form ONNX Runtime runs at every input size.

Exported to ONNX, ``torch.fft.irfft2`` becomes an inverse one-sided ``DFT`` node,
which ONNX Runtime (1.32) fails to run when H and W are symbolic ("Shape mismatch
attempting to re-use buffer"), even at the export size. While a model is being
exported (``config.onnx_export``), ``irfft2`` is therefore written as the real
part of the full complex inverse over the Hermitian-extended spectrum: the same
values (to float rounding), from a complex ``DFT`` node ONNX Runtime runs at any
size. Otherwise it is ``torch.fft.irfft2``.
"""
from typing import Sequence, Tuple

import torch

from . import config


def irfft2_hermitian(spectrum: torch.Tensor, size: Sequence[int], dim: Tuple[int, int] = (-2, -1),
                     norm: str = 'ortho') -> torch.Tensor:
    """``irfft2(spectrum, s=size, dim=dim)`` as ``Re(ifft2(X))``, ``X`` the Hermitian
    extension of the ``W // 2 + 1`` stored bins to all ``W``:
    ``X[h, W - k] = conj(X[-h mod H, k])`` for ``0 < k < W - W // 2``."""
    h_dim, w_dim = (d % spectrum.dim() for d in dim)  # positions in the real view too
    height, width = size
    device = spectrum.device
    # gathers with index tensors keep H, W symbolic when exported (slices would not),
    # on the real view (the ONNX exporter has no complex gather)
    columns = width - torch.arange(width // 2 + 1, width, device=device)  # W - k
    rows = torch.arange(height, device=device)
    rows = torch.where(rows > 0, height - rows, rows)  # -h mod H
    parts = torch.view_as_real(spectrum)
    conj = torch.tensor([1.0, -1.0], dtype=parts.dtype, device=device)
    tail = parts.index_select(w_dim, columns).index_select(h_dim, rows) * conj
    full = torch.view_as_complex(torch.cat([parts, tail], dim=w_dim).contiguous())
    return torch.fft.ifft2(full, dim=dim, norm=norm).real


def irfft2(spectrum: torch.Tensor, size: Sequence[int], dim: Tuple[int, int] = (-2, -1),
           norm: str = 'ortho') -> torch.Tensor:
    """``torch.fft.irfft2``; its Hermitian form while exporting to ONNX."""
    if config.exporting_onnx():
        return irfft2_hermitian(spectrum, size, dim, norm)
    return torch.fft.irfft2(spectrum, s=tuple(size), dim=dim, norm=norm)
