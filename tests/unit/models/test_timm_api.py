"""timm's classifier contract beyond the forward pass: ``global_pool``, heads on the
model's device / dtype / mode, timm's ``device`` / ``dtype`` factory arguments, copies
of a model whose eval caches are filled (timm's own suite checks all of this too:
``tests/unit/test_timm_suite.py``)."""
import copy

import pytest
import timm
import torch

import gfnet_dense  # noqa: F401  registers the models

SMALLEST = ['gfnet_ti', 'gfnet_h_ti', 'affnet_et']


@pytest.mark.parametrize('name', SMALLEST)
def test_global_pool_and_head(name):
    model = timm.create_model(name, num_classes=0, global_pool='').eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        features = model.forward_features(x)
        torch.testing.assert_close(model(x), features)  # unpooled, no head
        model.reset_classifier(5)  # keeps global_pool='': logits at every position
        channel = 1 if model.output_fmt == 'NCHW' else -1
        logit_maps, head = model(x), model.head
        assert logit_maps.shape[channel] == 5 and logit_maps.dim() == 4
        model.reset_classifier(5, 'avg')
        model.head = head  # the same head on pooled features: the mean of the maps
        logits = model(x)
        torch.testing.assert_close(logits, logit_maps.mean(dim=(1, 2) if channel == -1 else (2, 3)))
    with pytest.raises(ValueError, match="global_pool must be one of"):
        model.reset_classifier(5, 'max')


@pytest.mark.parametrize('name', SMALLEST)
def test_factory_device_and_dtype(name):
    model = timm.create_model(name, device='meta', dtype=torch.bfloat16)
    tensors = list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]
    assert {(t.device.type, t.dtype) for t in tensors} == {('meta', torch.bfloat16)}
    out = model.eval()(torch.randn(1, 3, 64, 64, device='meta', dtype=torch.bfloat16))
    assert out.shape == (1, 1000) and out.dtype == torch.bfloat16
    with pytest.raises(TypeError):
        timm.create_model(name, not_a_model_arg=1)


def test_new_head_follows_the_model():
    model = timm.create_model('gfnet_ti', num_classes=3).to(torch.float64).eval()
    model.reset_classifier(7)
    assert model.head.weight.dtype == torch.float64 and not model.head.training


@pytest.mark.parametrize('name', SMALLEST)
def test_copies_leave_the_eval_caches_behind(name):
    """A filled eval cache (oneDNN's prepacked weights on CPU cannot be copied) stays
    with its model: ``copy.deepcopy`` works and the copy computes the same."""
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
        copied = copy.deepcopy(model)
        assert not any('_eval_cache' in m.__dict__ for m in copied.modules())
        torch.testing.assert_close(copied(x), expected)
