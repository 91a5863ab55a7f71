"""The 2-D real FFTs in the forms an ONNX file runs fast in ONNX Runtime, at any size.

Exported to ONNX, ``torch.fft.rfft2`` / ``irfft2`` become ``DFT`` nodes. ONNX
Runtime (1.32) runs them slowly on CPU (GFNet-H-S at 512x512: three quarters of
its time, 4.6x PyTorch's whole forward), and fails to run the inverse one-sided
one when H and W are symbolic ("Shape mismatch attempting to re-use buffer").
While a model is being exported (``config.onnx_export``) the FFTs therefore take
one of two forms (``config.onnx_dft_form``):

- ``'matmul'`` (default): each 1-D transform is a product with a DFT matrix
  built inside the graph from the symbolic size (cosines and sines of
  ``2 pi (k n mod N) / N``), so a transform is a few ``MatMul`` nodes;
- ``'dft'``: ``DFT`` nodes, the inverse written as the real part of the full
  complex inverse over the Hermitian-extended spectrum, which ONNX Runtime runs
  at any size.

Both give ``torch.fft``'s values to float32 rounding (``tests/unit/ops``).
Outside an export, ``rfft2`` / ``irfft2`` are ``torch.fft``'s.
"""
import math
from typing import Sequence, Tuple

import torch

from . import config

Dims = Tuple[int, int]


def irfft2_hermitian(spectrum: torch.Tensor, size: Sequence[int], dim: Dims = (-2, -1),
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


# ------------------------------------------------------------ DFT matrices
def dft_matrices(n, bins, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of ``2 pi k j / n`` for ``k < bins``, ``j < n``, each
    ``(bins, n)`` in ``like``'s dtype and device, scaled by ``1 / sqrt(n)`` (orthonormal).

    ``k j`` is reduced mod ``n`` in integers first and the entries are computed
    in float64, so each is ``like``'s dtype's rounding of the exact value at any ``n``.
    """
    k = torch.arange(bins, device=like.device)
    j = torch.arange(n, device=like.device)
    count = torch.full((), n, device=like.device)  # a tensor: exported with n symbolic
    angle = torch.remainder(k[:, None] * j[None, :], count).double() * (2 * math.pi / n)
    scale = torch.rsqrt(count.double())
    return (torch.cos(angle) * scale).to(like.dtype), (torch.sin(angle) * scale).to(like.dtype)


def _along(matrix: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
    """``matrix`` ``(m, n)`` applied along ``dim`` (size ``n``) of ``x``: that dim becomes ``m``."""
    dim %= x.dim()
    if dim == x.dim() - 1:
        return x @ matrix.t()
    lead, trail = x.shape[:dim], x.shape[dim + 1:]
    y = matrix @ x.reshape(*lead, x.shape[dim], -1)
    return y.reshape(*lead, matrix.shape[0], *trail)


def _complex_along(mat_real: torch.Tensor, mat_imag: torch.Tensor, real: torch.Tensor,
                   imag: torch.Tensor, dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(mat_real + i mat_imag)`` applied along ``dim`` of ``real + i imag``, as parts."""
    return (_along(mat_real, real, dim) - _along(mat_imag, imag, dim),
            _along(mat_real, imag, dim) + _along(mat_imag, real, dim))


def rfft2_matmul(x: torch.Tensor, dim: Dims = (-2, -1)) -> Tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of ``rfft2(x, dim=dim, norm='ortho')`` (real float32
    ``x``), each with ``dim[1]`` cut to ``W // 2 + 1`` bins: the one-sided real
    transform along ``dim[1]``, then the complex one along ``dim[0]``."""
    h_dim, w_dim = dim
    height, width = x.shape[h_dim], x.shape[w_dim]
    cos_w, sin_w = dft_matrices(width, width // 2 + 1, x)
    cos_h, sin_h = dft_matrices(height, height, x)
    real, imag = _along(cos_w, x, w_dim), -_along(sin_w, x, w_dim)
    return _complex_along(cos_h, -sin_h, real, imag, h_dim)


def irfft2_matmul(real: torch.Tensor, imag: torch.Tensor, size: Sequence[int],
                  dim: Dims = (-2, -1)) -> torch.Tensor:
    """``irfft2(real + i imag, s=size, dim=dim, norm='ortho')``: the complex inverse
    along ``dim[0]``, then the one-sided real inverse along ``dim[1]``, where each
    bin with a mirror counts twice and the imaginary parts of bin 0 (and of bin
    ``W / 2``, W even) drop out as in ``torch.fft.irfft``."""
    h_dim, w_dim = dim
    height, width = size
    cos_h, sin_h = dft_matrices(height, height, real)
    real, imag = _complex_along(cos_h, sin_h, real, imag, h_dim)
    bins = width // 2 + 1
    cos_w, sin_w = dft_matrices(width, bins, real)
    k = torch.arange(bins, device=real.device)
    mirrored = (k > 0) & (2 * k < width)  # bins whose conjugate mirror is not stored
    weight = torch.where(mirrored, 2.0, 1.0)[:, None]
    return _along((cos_w * weight).t(), real, w_dim) - _along((sin_w * weight).t(), imag, w_dim)


# --------------------------------------------------------------- the entry points
def _matmul_form() -> bool:
    return config.exporting_onnx() and config.onnx_dft_form() == 'matmul'


def _backward_scale(norm: str, size: Sequence[int]) -> float:
    """``torch.fft``'s ``norm='backward'`` forward transform over ``size`` is the
    orthonormal one times this (its inverse divided by it)."""
    if norm not in ('ortho', 'backward'):
        raise ValueError(f"norm must be 'ortho' or 'backward', got {norm!r}")
    return (size[0] * size[1]) ** 0.5 if norm == 'backward' else 1.0


def rfft2(x: torch.Tensor, dim: Dims = (-2, -1), norm: str = 'ortho') -> torch.Tensor:
    """``torch.fft.rfft2(x, dim=dim, norm=norm)`` (``'ortho'`` or ``'backward'``); its
    matrix form while exporting to ONNX with ``onnx_dft_form() == 'matmul'``."""
    if _matmul_form():
        scale = _backward_scale(norm, (x.shape[dim[0]], x.shape[dim[1]]))
        real, imag = rfft2_matmul(x, dim)
        return torch.complex(real * scale, imag * scale)
    return torch.fft.rfft2(x, dim=dim, norm=norm)


def irfft2(spectrum: torch.Tensor, size: Sequence[int], dim: Dims = (-2, -1),
           norm: str = 'ortho') -> torch.Tensor:
    """``torch.fft.irfft2(spectrum, s=size, dim=dim, norm=norm)``; while exporting to
    ONNX its matrix form or its Hermitian form (``onnx_dft_form``)."""
    if _matmul_form():
        return irfft2_matmul(spectrum.real, spectrum.imag, size, dim) / _backward_scale(norm, size)
    if config.exporting_onnx():
        return irfft2_hermitian(spectrum, size, dim, norm)
    return torch.fft.irfft2(spectrum, s=tuple(size), dim=dim, norm=norm)


def filter_spectrum(x: torch.Tensor, filt: torch.Tensor, dim: Dims = (-2, -1)) -> torch.Tensor:
    """``irfft2(rfft2(x) * filt, s=x's size)`` over ``dim`` (orthonormal) of real ``x``,
    ``filt`` complex and broadcasting against the spectrum.

    Exported in the matrix form, the product is written on real and imaginary
    parts, so the graph holds no complex tensor to split (ONNX Runtime copies
    each split out of the interleaved pairs).
    """
    size = (x.shape[dim[0]], x.shape[dim[1]])
    if not _matmul_form():
        return irfft2(rfft2(x, dim) * filt, size, dim)
    # chunk: one Split node (unbind's two Slices run several times slower in ONNX Runtime)
    f_real, f_imag = (t.squeeze(-1) for t in torch.view_as_real(filt).chunk(2, dim=-1))
    real, imag = rfft2_matmul(x, dim)
    return irfft2_matmul(real * f_real - imag * f_imag, real * f_imag + imag * f_real, size, dim)
