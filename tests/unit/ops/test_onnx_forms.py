"""The export forms (``ops.config.onnx_export``) compute what the eager forms do."""
import pytest
import torch

from gfnet_dense import GFNetH
from gfnet_dense.layers.filter_resize import _interpolation_matrix, traced_interpolation_matrix
from gfnet_dense.ops import fast_path
from gfnet_dense.ops.config import exporting_onnx, onnx_export, use_fast_path
from gfnet_dense.ops.dft import irfft2_hermitian


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


@pytest.mark.parametrize('mode', ['bicubic', 'bilinear'])
@pytest.mark.parametrize('align_corners', [True, False])
def test_traced_interpolation_matrix_equals_torchs(mode, align_corners):
    for src in (1, 2, 7, 14):
        for dst in (1, 2, 3, 9, 14, 33):
            torch.testing.assert_close(
                traced_interpolation_matrix(src, dst, mode, align_corners, torch.device('cpu')),
                _interpolation_matrix(src, dst, mode, align_corners, torch.device('cpu')),
                rtol=0, atol=1e-6)


@pytest.mark.parametrize('resize', ['bicubic', 'bilinear', 'spatial'])
def test_export_mode_gives_the_same_backbone_outputs(resize):
    """Export mode: plain formulation, traced resizes, Hermitian inverse FFTs, pad
    always; the same maps as eager at odd and at the stored sizes."""
    torch.manual_seed(0)
    model = GFNetH(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
                   pretrain_img_size=64, filter_resize=resize).eval()
    for size in ((64, 64), (70, 90), (33, 47)):
        x = torch.randn(1, 3, *size)
        with torch.no_grad(), fast_path(False):
            eager = model(x)
        with torch.no_grad(), onnx_export():
            assert exporting_onnx() and not use_fast_path()
            exported = model(x)
        for a, b in zip(exported, eager):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert not exporting_onnx()
