"""The export forms (``ops.config.onnx_export``) compute what the eager forms do."""
import pytest
import torch

from gfnet_dense import GFNetH
from gfnet_dense.layers.filter_resize import _interpolation_matrix, traced_interpolation_matrix
from gfnet_dense.ops import fast_path
from gfnet_dense.ops.config import exporting_onnx, onnx_export, use_fast_path
from gfnet_dense.deploy import onnx_fft as dft
from gfnet_dense.deploy.onnx_fft import irfft2_hermitian, irfft2_matmul, rfft2_matmul


@pytest.mark.parametrize('size', [(8, 8), (7, 9), (6, 5), (1, 3), (4, 1), (16, 2)])
def test_hermitian_irfft2_equals_irfft2(size):
    """Also for spectra that are not Hermitian along H (a filter's product)."""
    gen = torch.Generator().manual_seed(0)
    for shape, dim in (((2, 3, size[0], size[1] // 2 + 1), (-2, -1)),
                       ((2, size[0], size[1] // 2 + 1, 3), (1, 2))):
        x = torch.randn(shape, dtype=torch.complex128, generator=gen)
        torch.testing.assert_close(irfft2_hermitian(x, size, dim),
                                   torch.fft.irfft2(x, s=size, dim=dim, norm='ortho'),
                                   rtol=0, atol=1e-12)


SIZES = [(8, 8), (7, 9), (6, 5), (1, 3), (4, 1), (16, 2), (33, 64)]


def _layouts(size, gen, dtype=torch.float64):
    """Channels-first planes and channels-last grids of ``size``, with their FFT dims."""
    return [(torch.randn(2, 3, *size, dtype=dtype, generator=gen), (-2, -1)),
            (torch.randn(2, *size, 3, dtype=dtype, generator=gen), (1, 2))]


@pytest.mark.parametrize('size', SIZES)
def test_matmul_rfft2_equals_rfft2(size):
    """DFT matrices, odd and even sizes, both layouts (float64: the matrices are exact
    to rounding; the float32 export is checked end to end below and in the export tests)."""
    gen = torch.Generator().manual_seed(0)
    for x, dim in _layouts(size, gen):
        expected = torch.fft.rfft2(x, dim=dim, norm='ortho')
        real, imag = rfft2_matmul(x, dim)
        torch.testing.assert_close(torch.complex(real, imag), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize('size', SIZES)
def test_matmul_irfft2_equals_irfft2(size):
    """Also for spectra that are not Hermitian (a filter's product): the imaginary
    parts of bin 0 and of the Nyquist bin drop out as in torch.fft.irfft2."""
    gen = torch.Generator().manual_seed(1)
    for x, dim in _layouts(size, gen):
        spectrum = torch.fft.rfft2(x, dim=dim, norm='ortho')
        spectrum = spectrum * torch.randn(spectrum.shape, dtype=spectrum.dtype, generator=gen)
        torch.testing.assert_close(
            irfft2_matmul(spectrum.real, spectrum.imag, size, dim),
            torch.fft.irfft2(spectrum, s=size, dim=dim, norm='ortho'), rtol=0, atol=1e-12)


@pytest.mark.parametrize('form', ['matmul', 'dft'])
@pytest.mark.parametrize('norm', ['ortho', 'backward'])
def test_export_forms_of_the_entry_points(form, norm):
    """``rfft2`` / ``irfft2`` / ``filter_spectrum`` in each export form equal torch.fft."""
    gen = torch.Generator().manual_seed(2)
    for size in ((12, 10), (9, 7)):
        for x, dim in _layouts(size, gen, torch.float32):
            spectrum = torch.fft.rfft2(x, dim=dim, norm=norm)
            filt = torch.randn(spectrum.shape[1:], dtype=spectrum.dtype, generator=gen)
            with onnx_export(form):
                got = (dft.rfft2(x, dim, norm), dft.irfft2(spectrum, size, dim, norm),
                       dft.filter_spectrum(x, filt, dim))
            expected = (spectrum, torch.fft.irfft2(spectrum, s=size, dim=dim, norm=norm),
                        torch.fft.irfft2(torch.fft.rfft2(x, dim=dim, norm='ortho') * filt,
                                         s=size, dim=dim, norm='ortho'))
            for g, e in zip(got, expected):
                torch.testing.assert_close(g, e, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize('size', [(64, 64), (80, 7), (128, 10), (112, 33), (48, 8), (60, 16)])
def test_factored_global_filter_equals_torch_fft(size, monkeypatch):
    """The matrix form of a channels-last global filter factors the transform along
    H where H is a multiple of FACTOR_RADIX from 4 FACTOR_RADIX on, with the
    spectrum's rows in factored order and the filter gathered to match; float64."""
    height, width = size
    factored = height in (64, 80, 128, 112)  # multiples of 16 from 64 on
    calls = []
    original = dft._filter_factored
    monkeypatch.setattr(dft, '_filter_factored', lambda *a: calls.append(1) or original(*a))
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, height, width, 3, dtype=torch.float64, generator=gen)
    filt = torch.randn(height, width // 2 + 1, 3, dtype=torch.complex128, generator=gen)
    expected = torch.fft.irfft2(torch.fft.rfft2(x, dim=(1, 2), norm='ortho') * filt,
                                s=size, dim=(1, 2), norm='ortho')
    with onnx_export('matmul'):
        got = dft.filter_spectrum(x, filt, (1, 2))
    assert len(calls) == int(factored)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_factored_global_filter_float32_error():
    """In float32 the factored form is as accurate as the direct matrix form, against
    float64 FFTs (128x96 grid, 32 channels): root-mean-square error no larger
    (0.84x measured over ten seeds), largest error within 1.5x (1.09-1.33x)."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 128, 96, 32, dtype=torch.float64, generator=gen)
    filt = torch.randn(128, 49, 32, dtype=torch.complex128, generator=gen)
    exact = torch.fft.irfft2(torch.fft.rfft2(x, dim=(1, 2), norm='ortho') * filt,
                             s=(128, 96), dim=(1, 2), norm='ortho')
    parts = torch.view_as_real(filt.to(torch.complex64))
    with onnx_export('matmul'):
        factored = dft._filter_factored(x.float(), parts).double() - exact
        direct = dft._filter_direct(x.float(), parts).double() - exact
    assert factored.pow(2).mean() <= direct.pow(2).mean()
    assert factored.abs().max() <= 1.5 * direct.abs().max()


@pytest.mark.parametrize('filter_shape,dtype', [
    ((64, 9, 1), torch.complex64), ((64, 1, 3), torch.complex64), ((1, 9, 3), torch.complex64),
    ((64, 9, 3), torch.complex128)])
def test_broadcasting_or_promoting_filters_keep_the_direct_form(filter_shape, dtype, monkeypatch):
    """The factored form takes whole filters of the grid's precision only; a filter
    that broadcasts, or one of higher precision, gets the direct form's result."""
    monkeypatch.setattr(dft, '_filter_factored', None)  # would raise if called
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 64, 16, 3, generator=gen)
    filt = torch.randn(filter_shape, dtype=dtype, generator=gen)
    expected = torch.fft.irfft2(torch.fft.rfft2(x, dim=(1, 2), norm='ortho') * filt,
                                s=(64, 16), dim=(1, 2), norm='ortho')
    with onnx_export('matmul'):
        got = dft.filter_spectrum(x, filt, (1, 2))
    assert got.dtype == expected.dtype  # float64 from a complex128 filter, as torch.fft
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_export_form_is_checked():
    with pytest.raises(ValueError, match="'fft'"):
        with onnx_export('fft'):
            pass
    assert not exporting_onnx()
    with pytest.raises(ValueError, match='norm'):
        with onnx_export():
            dft.rfft2(torch.randn(4, 4), norm='forward')


@pytest.mark.parametrize('mode', ['bicubic', 'bilinear'])
@pytest.mark.parametrize('align_corners', [True, False])
def test_traced_interpolation_matrix_equals_torchs(mode, align_corners):
    for src in (1, 2, 7, 14):
        for dst in (1, 2, 3, 9, 14, 33):
            torch.testing.assert_close(
                traced_interpolation_matrix(src, dst, mode, align_corners, torch.device('cpu')),
                _interpolation_matrix(src, dst, mode, align_corners, torch.device('cpu')),
                rtol=0, atol=1e-6)


@pytest.mark.parametrize('form', ['matmul', 'dft'])
@pytest.mark.parametrize('resize', ['bicubic', 'bilinear', 'spatial'])
def test_export_mode_gives_the_same_backbone_outputs(resize, form):
    """Export mode: plain formulation, traced resizes, FFTs in each export form, pad
    always; the same maps as eager at odd and at the stored sizes."""
    torch.manual_seed(0)
    model = GFNetH(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
                   pretrain_img_size=64, filter_resize=resize).eval()
    for size in ((64, 64), (70, 90), (33, 47)):
        x = torch.randn(1, 3, *size)
        with torch.no_grad(), fast_path(False):
            eager = model(x)
        with torch.no_grad(), onnx_export(form):
            assert exporting_onnx() and not use_fast_path()
            exported = model(x)
        for a, b in zip(exported, eager):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert not exporting_onnx()
