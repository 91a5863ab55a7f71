"""The 2-D real FFTs in the forms an ONNX export records (the layers' export branch).

Exported as they are, ``torch.fft``'s become ``DFT`` nodes, which ONNX Runtime runs
slowly on CPU and, for the one-sided inverse at symbolic H and W, not at all. The
form is ``ops.config.onnx_dft_form()``: ``'matmul'``, products with DFT matrices
built in the graph from the (symbolic) sizes (along H in four-step factored form
where ``_factorable``), or ``'dft'``, ``DFT`` nodes with the inverse as the real
part of a complex one (``irfft2_hermitian``). Each equals ``torch.fft``'s to
float32 rounding.
"""
import math
from typing import Sequence, Tuple

import torch

from ..ops.config import onnx_dft_form

Dims = Tuple[int, int]


# --------------------------------------------------------------- the entry points
def rfft2(x: torch.Tensor, dim: Dims = (-2, -1), norm: str = 'ortho') -> torch.Tensor:
    """``torch.fft.rfft2(x, dim=dim, norm=norm)`` (``'ortho'`` or ``'backward'``)."""
    if onnx_dft_form() != 'matmul':
        return torch.fft.rfft2(x, dim=dim, norm=norm)
    scale = _backward_scale(norm, (x.shape[dim[0]], x.shape[dim[1]]))
    real, imag = rfft2_matmul(x, dim)
    return torch.complex(real * scale, imag * scale)


def irfft2(spectrum: torch.Tensor, size: Sequence[int], dim: Dims = (-2, -1),
           norm: str = 'ortho') -> torch.Tensor:
    """``torch.fft.irfft2(spectrum, s=size, dim=dim, norm=norm)``."""
    if onnx_dft_form() != 'matmul':
        return irfft2_hermitian(spectrum, size, dim, norm)
    return irfft2_matmul(spectrum.real, spectrum.imag, size, dim) / _backward_scale(norm, size)


def filter_spectrum(x: torch.Tensor, filt: torch.Tensor, dim: Dims = (-2, -1)) -> torch.Tensor:
    """``irfft2(rfft2(x) * filt, s=x's size)`` over ``dim`` (orthonormal) of real ``x``,
    ``filt`` complex and broadcasting against the spectrum.

    The matrix form multiplies real and imaginary parts, so that the graph splits
    no complex tensor; it takes the factored form where ``_factorable``.
    """
    size = (x.shape[dim[0]], x.shape[dim[1]])
    if onnx_dft_form() != 'matmul':
        return irfft2(rfft2(x, dim) * filt, size, dim)
    parts = torch.view_as_real(filt)
    if _factorable(x, parts, dim):
        return _filter_factored(x, parts)
    return _filter_direct(x, parts, dim)


def _backward_scale(norm: str, size: Sequence[int]) -> float:
    """The ``norm='backward'`` forward transform over ``size`` is the orthonormal one
    times this (its inverse divided by it)."""
    if norm not in ('ortho', 'backward'):
        raise ValueError(f"norm must be 'ortho' or 'backward', got {norm!r}")
    return (size[0] * size[1]) ** 0.5 if norm == 'backward' else 1.0


# ------------------------------------------------------------------ the DFT form
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


# --------------------------------------------------------------- the matrix form
def _cos_sin(products: torch.Tensor, n, orthonormal: bool = True
             ) -> Tuple[torch.Tensor, torch.Tensor]:
    """float64 ``cos`` and ``sin`` of ``2 pi p / n`` for integer ``products`` ``p``
    (``orthonormal``: times ``1 / sqrt(n)``); ``p`` reduced mod ``n`` in integers
    first, so each entry rounds to the exact value in float32 at any ``n``."""
    count = torch.full((), n, device=products.device)  # a tensor: exported with n symbolic
    angle = torch.remainder(products, count).double() * (2 * math.pi / n)
    if not orthonormal:
        return torch.cos(angle), torch.sin(angle)
    scale = torch.rsqrt(count.double())
    return torch.cos(angle) * scale, torch.sin(angle) * scale


def dft_matrices(n, bins, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal ``cos`` and ``sin`` of ``2 pi k j / n``, each ``(bins, n)`` in
    ``like``'s dtype and device."""
    k = torch.arange(bins, device=like.device)
    j = torch.arange(n, device=like.device)
    cos, sin = _cos_sin(k[:, None] * j[None, :], n)
    return cos.to(like.dtype), sin.to(like.dtype)


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
    """Real and imaginary parts of ``rfft2(x, dim=dim, norm='ortho')``, ``dim[1]`` cut
    to ``W // 2 + 1`` bins."""
    h_dim, w_dim = dim
    height, width = x.shape[h_dim], x.shape[w_dim]
    cos_w, sin_w = dft_matrices(width, width // 2 + 1, x)
    cos_h, sin_h = dft_matrices(height, height, x)
    real, imag = _along(cos_w, x, w_dim), -_along(sin_w, x, w_dim)
    return _complex_along(cos_h, -sin_h, real, imag, h_dim)


def irfft2_matmul(real: torch.Tensor, imag: torch.Tensor, size: Sequence[int],
                  dim: Dims = (-2, -1)) -> torch.Tensor:
    """``irfft2(real + i imag, s=size, dim=dim, norm='ortho')``; as in ``torch.fft``, the
    imaginary parts of bin 0 (and of bin ``W / 2``, W even) drop out."""
    h_dim, w_dim = dim
    height, width = size
    cos_h, sin_h = dft_matrices(height, height, real)
    real, imag = _complex_along(cos_h, sin_h, real, imag, h_dim)
    cos_w, sin_w = dft_matrices(width, width // 2 + 1, real)
    weight = _mirror_weight(width, real)
    return _along((cos_w * weight).t(), real, w_dim) - _along((sin_w * weight).t(), imag, w_dim)


def _mirror_weight(width, like: torch.Tensor) -> torch.Tensor:
    """``(W // 2 + 1, 1)``: 2 for the bins whose conjugate mirror is not stored, else 1."""
    k = torch.arange(width // 2 + 1, device=like.device)
    return torch.where((k > 0) & (2 * k < width), 2.0, 1.0).to(like.dtype)[:, None]


def _filter_direct(x: torch.Tensor, filt: torch.Tensor, dim: Dims = (1, 2)) -> torch.Tensor:
    """``filter_spectrum`` by ``rfft2_matmul`` / ``irfft2_matmul``, ``filt`` the real view."""
    size = (x.shape[dim[0]], x.shape[dim[1]])
    # chunk: one Split node (unbind exports as two Slices, slower in ONNX Runtime)
    f_real, f_imag = (t.squeeze(-1) for t in filt.chunk(2, dim=-1))
    real, imag = rfft2_matmul(x, dim)
    return irfft2_matmul(real * f_real - imag * f_imag, real * f_imag + imag * f_real, size, dim)


# ------------------------------------------------------ the factored global filter
#: radix ``r`` of the factored transform along H (``H = r m``), used from ``H = 4 r`` on
FACTOR_RADIX = 16


def use_factored(height: int) -> bool:
    """Whether ``filter_spectrum`` factors the transform along a grid of ``height`` rows."""
    return height % FACTOR_RADIX == 0 and height >= 4 * FACTOR_RADIX


def _factorable(x: torch.Tensor, parts: torch.Tensor, dim: Dims) -> bool:
    """A channels-last grid of fixed size whose height ``use_factored`` accepts, with a
    whole ``(H, W // 2 + 1, C)`` filter (real view ``parts``) of ``x``'s dtype.

    A symbolic H keeps the direct form: splitting it into ``(r, m)`` makes
    torch.export guard on ``H % r == 0``, fixing the choice for every size.
    """
    if x.dim() != 4 or tuple(d % 4 for d in dim) != (1, 2):
        return False
    if not all(isinstance(n, int) for n in x.shape):
        return False
    _, height, width, channels = x.shape
    return (use_factored(height) and parts.dtype == x.dtype
            and tuple(parts.shape) == (height, width // 2 + 1, channels, 2))


def _real_form(real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
    """Complex matrices ``real + i imag`` ``(..., a, b)`` as real ones ``(..., a, 2, b, 2)``
    acting on ``(b, [re, im])`` vectors."""
    return torch.stack([torch.stack([real, -imag], -1), torch.stack([imag, real], -1)], -3)


def _blocks(rows) -> torch.Tensor:
    """``[[M00, M01], ...]`` of real forms ``(r, a, 2, b, 2)`` as ``(r, E a 2, F b 2)``:
    rows ``(e, a, q)``, columns ``(f, b, p)``."""
    grid = torch.stack([torch.stack(row, -3) for row in rows], 1)  # (r, E, a, 2, F, b, 2)
    r, e, a, _, f, b, _ = grid.shape
    return grid.reshape(r, e * a * 2, f * b * 2)


def _factored_matrices(height: int, radix: int, like: torch.Tensor
                       ) -> Tuple[Tuple[torch.Tensor, ...], torch.Tensor]:
    """The four matrices of ``_filter_factored`` for ``H = radix * m``, and the natural
    row ``k = k1 + r k2`` of each factored spectrum row ``(k1, k2)``, flat.

    With ``n = n1 m + n2``, the DFT along H is, per ``k1``, ``T_k1 (A x)[k1]``: ``A``
    the length-``r`` DFT, ``T_k1[k2, n2] = w^(n2 k)`` the twiddles (``w = exp(-2 pi
    i / H)``, orthonormal scale in ``T``). ``A x`` is kept as ``P = Re(A) x`` beside
    ``Q = Im(A) x``, so each step is one real product:

    - ``outer`` ``(2r, r)``: rows ``(k1, [Re A, Im A])``;
    - ``forward`` ``(r, 4m, 4m)``: ``[[T, i T], [i T, -T]]``: ``(P, Q)`` to ``Z`` and ``i Z``;
    - ``inverse`` ``(r, 4m, 2m)``: ``[T^H; i T^H]``: filtered spectrum to ``G`` and ``i G``;
    - ``outer_inverse`` ``(r, 2r)``: ``x = Re(A) G - Im(A) (i G)`` (``A`` is symmetric).
    """
    m = height // radix
    device = like.device
    k1 = torch.arange(radix, device=device)
    a_cos, a_sin = _cos_sin(k1[:, None] * k1[None, :] * m, height, orthonormal=False)
    k = k1[:, None] + radix * torch.arange(m, device=device)[None, :]  # (r, m): k of (k1, k2)
    n2 = torch.arange(m, device=device)
    t_cos, t_sin = _cos_sin(k[:, :, None] * n2[None, None, :], height)  # (r, k2, n2)
    t = _real_form(t_cos, -t_sin)  # w^(n2 k) = cos - i sin
    i_t = _real_form(t_sin, t_cos)
    minus_t = _real_form(-t_cos, t_sin)
    t_h = _real_form(t_cos.transpose(1, 2), t_sin.transpose(1, 2))
    i_t_h = _real_form(-t_sin.transpose(1, 2), t_cos.transpose(1, 2))
    outer = torch.stack([a_cos, -a_sin], 1).reshape(2 * radix, radix)
    forward = _blocks([[t, i_t], [i_t, minus_t]])
    inverse = _blocks([[t_h], [i_t_h]])
    outer_inverse = torch.stack([a_cos, a_sin], -1).reshape(radix, 2 * radix)
    return tuple(x.to(like.dtype) for x in (outer, forward, inverse, outer_inverse)), k.reshape(-1)


def _real_axis_matrices(width, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The one-sided real transform along W as ``(2 bins, W)`` (rows ``(part, bin)``)
    and its inverse ``(W, 2 bins)``."""
    cos, sin = dft_matrices(width, width // 2 + 1, like)
    weight = _mirror_weight(width, like)
    return torch.cat([cos, -sin]), torch.cat([cos * weight, -sin * weight]).t()


def _filter_factored(x: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
    """``irfft2(rfft2(x) * filt, dim=(1, 2))`` of ``(B, H, W, C)`` ``x``, ``filt`` the real
    view ``(H, W // 2 + 1, C, 2)``: the spectrum is ``(B, H, [re, im], bins, C)`` with
    its rows in factored order ``(k1, k2)``, the filter's rows gathered to match."""
    batch, height, width, channels = x.shape
    radix, bins = FACTOR_RADIX, width // 2 + 1
    m, rest = height // radix, bins * channels
    (outer, forward, inverse, outer_inverse), order = _factored_matrices(height, radix, x)
    to_spectrum, from_spectrum = _real_axis_matrices(width, x)
    spectrum = to_spectrum @ x  # (B, H, 2 bins, C)
    steps = outer @ spectrum.reshape(batch, radix, m * 2 * rest)
    both = forward @ steps.reshape(batch, radix, 4 * m, rest)  # Z and i Z
    parts = filt.index_select(0, order).movedim(-1, 0)  # (2, H, bins, C) in (k1, k2) order
    parts = parts.reshape(2, radix, m, 1, rest).transpose(0, 1)
    filtered = (both.reshape(batch, radix, 2, m, 2, rest) * parts).sum(2)  # Z Re f + i Z Im f
    steps = inverse @ filtered.reshape(batch, radix, 2 * m, rest)
    spectrum = outer_inverse @ steps.reshape(batch, 2 * radix, m * 2 * rest)
    return from_spectrum @ spectrum.reshape(batch, height, 2 * bins, channels)
