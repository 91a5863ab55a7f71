"""AFFNet: parameter counts, shapes at odd sizes, gradients, registries, bad input."""
import pytest
import timm
import torch

from gfnet_dense import AFFNet, CheckpointMismatchError
from gfnet_dense.layers import AdaptiveFrequencyFilter

PAPER_PARAMS_M = {'affnet_et': 1.4, 'affnet_t': 2.6, 'affnet_s': 5.5}


@pytest.mark.parametrize('name', sorted(PAPER_PARAMS_M))
def test_parameter_counts_round_to_the_papers(name):
    # equal to the public implementation's (tests/unit/test_cvnets_layout.py)
    count = sum(p.numel() for p in timm.create_model(name).parameters()) / 1e6
    assert round(count, 1) == PAPER_PARAMS_M[name] or abs(count - PAPER_PARAMS_M[name]) < 0.07


@pytest.mark.parametrize('size,expected', [
    ((333, 517), [(84, 130), (42, 65), (21, 33), (11, 17)]),
    ((64, 97), [(16, 25), (8, 13), (4, 7), (2, 4)]),
])
def test_backbone_shapes_at_odd_sizes(size, expected):
    model = AFFNet(arch='et').eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert [tuple(o.shape[2:]) for o in outs] == expected
    assert [o.shape[1] for o in outs] == [48, 64, 104, 144]


def test_every_parameter_gets_a_gradient():
    model = AFFNet(arch='et', drop_path_rate=0.1).train()
    sum(o.mean() for o in model(torch.randn(2, 3, 70, 90))).backward()
    assert all(p.requires_grad for p in model.parameters())  # stage 0 runs, it is not an output
    assert all(p.grad is not None and p.grad.any()
               for n, p in model.named_parameters() if p.requires_grad), \
        [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


def test_with_cp_matches():
    plain = AFFNet(arch='et').train()
    cp = AFFNet(arch='et', with_cp=True).train()
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 48)
    for model in (plain, cp):
        sum(o.square().mean() for o in model(x)).backward()
    for (name, a), b in zip(plain.named_parameters(), cp.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
def test_registered_under_downstream_scopes(scope):
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    assert type(registry.build(dict(type='AFFNet', arch='t'))).__name__ == 'AFFNet'


def test_filter_weights_do_not_depend_on_size_and_match_the_formula():
    layer = AdaptiveFrequencyFilter(16)
    for size in ((5, 7), (12, 9)):
        z = torch.randn(2, 16, *size)
        spec = torch.fft.rfft2(z, dim=(2, 3), norm='ortho')
        expected = z + torch.fft.irfft2(layer.mask(spec) * spec, s=size, dim=(2, 3), norm='ortho')
        torch.testing.assert_close(layer(z), expected, atol=1e-5, rtol=1e-4)
        with torch.no_grad():
            torch.testing.assert_close(layer(z), expected, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # a zero mask leaves the input unchanged
        for p in layer.parameters():
            p.zero_()
        z = torch.randn(1, 16, 6, 6)
        torch.testing.assert_close(layer(z), z)


def _mask_by_parts(layer, spectrum):
    """The filter MLP written per part (real, imaginary), the paper's formula."""
    b, c, h, w = spectrum.shape
    grouped = spectrum.reshape(b, layer.groups, c // layer.groups, h, w)

    def linear(real, imag, weight, bias):
        def mix(t, m):
            return torch.einsum('bgihw,gio->bgohw', t, m)
        return (mix(real, weight[0]) - mix(imag, weight[1]) + bias[0][..., None, None],
                mix(imag, weight[0]) + mix(real, weight[1]) + bias[1][..., None, None])
    real, imag = linear(grouped.real, grouped.imag, layer.w1, layer.b1)
    real, imag = linear(layer.act(real), layer.act(imag), layer.w2, layer.b2)
    shrink = torch.nn.functional.softshrink
    return torch.complex(shrink(real, layer.sparsity),
                         shrink(imag, layer.sparsity)).reshape(b, c, h, w)


def test_filter_mask_is_the_complex_mlp():
    """One real block product per group (the layer) equals the complex MLP by parts."""
    torch.manual_seed(0)
    layer = AdaptiveFrequencyFilter(32, groups=4).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.3)
    spectrum = torch.randn(2, 32, 6, 5, dtype=torch.complex128)
    torch.testing.assert_close(layer.mask(spectrum), _mask_by_parts(layer, spectrum),
                               rtol=0, atol=1e-12)


def test_fft_in_float32_under_autocast():
    layer = AdaptiveFrequencyFilter(16)
    z = torch.randn(1, 16, 8, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(z.bfloat16())
    assert out.dtype == torch.bfloat16


def test_frozen_stages_norm_eval_and_train_returns_self():
    model = AFFNet(arch='et', frozen_stages=2, norm_eval=True)
    assert model.train() is model
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(p.requires_grad for p in model.stages[1].parameters())
    assert all(p.requires_grad for p in model.stages[2].parameters())
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)


def test_loads_classifier_checkpoint(tmp_path):
    source = timm.create_model('affnet_t')
    path = tmp_path / 'affnet-t.pth'
    torch.save({'model': source.state_dict()}, path)
    model = AFFNet(arch='t', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    torch.testing.assert_close(model.stages[3].blocks[0].filter.w1,
                               source.stages[3].blocks[0].filter.w1)
    wrong = AFFNet(arch='s', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match='shape mismatch'):
        wrong.init_weights()


def test_bad_input():
    model = AFFNet(arch='et')
    with pytest.raises(ValueError, match='3 input channels but got 1'):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match='4-D'):
        model(torch.randn(3, 32))
    with pytest.raises(ValueError, match='empty batch'):
        model(torch.randn(0, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown arch 'xl'"):
        AFFNet(arch='xl')
    with pytest.raises(ValueError, match='divisible by 8 groups'):
        AdaptiveFrequencyFilter(12)


def test_classifier_runs():
    logits = timm.create_model('affnet_et', num_classes=7)(torch.randn(2, 3, 65, 80))
    assert logits.shape == (2, 7)
