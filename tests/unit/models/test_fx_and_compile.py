"""Graph capture of the classifiers: where the fast path is eligible (one decision,
``gfnet_dense.ops.fast_path_eligible``), FX feature extraction (torchvision's
``create_feature_extractor`` with timm's FX leaves, as timm's FX features call it)
and ``torch.compile``."""
import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.feature_extraction import create_feature_extractor

import gfnet_dense  # noqa: F401  registers the models
from gfnet_dense.ops import capturing_graph, fast_path, fast_path_eligible

CLASSIFIERS = sorted(timm.list_models(module=['gfnet', 'affnet']))
SMALLEST = ['gfnet_ti', 'gfnet_h_ti', 'affnet_et']


class Probe(torch.nn.Module):
    """Doubles its input on the fast path, triples it on the plain formulation."""

    def forward(self, x):
        return x * 2 if fast_path_eligible(x) else x * 3


def takes_fast_path(run) -> bool:
    """Whether ``run(probe, x)`` (which returns what it computed) took the fast path."""
    x = torch.ones(2)
    out = run(Probe(), x)
    assert torch.equal(out, 2 * x) or torch.equal(out, 3 * x)
    return torch.equal(out, 2 * x)


def counted(model, x):
    with FlopCounterMode(display=False):
        return model(x)


def test_fast_path_eligible_only_where_the_model_runs():
    assert takes_fast_path(lambda m, x: m(x))
    assert takes_fast_path(lambda m, x: torch.compile(m, backend='eager')(x))
    with fast_path(False):
        assert not takes_fast_path(lambda m, x: m(x))
    assert not takes_fast_path(lambda m, x: torch.fx.symbolic_trace(m)(x))
    assert not takes_fast_path(lambda m, x: torch.jit.trace(m, x, check_trace=False)(x))
    assert not takes_fast_path(lambda m, x: torch.export.export(m, (x,)).module()(x))
    assert not takes_fast_path(counted)
    assert not capturing_graph(torch.ones(1))
    assert not fast_path_eligible(torch.ones(1, device='meta'))  # shapes only


def test_flop_counter_counts_the_plain_formulation():
    """The same count inside as outside ``fast_path(False)``: the fused kernels never run."""
    model = timm.create_model('gfnet_h_ti', num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    counts = []
    for switch in (True, False):
        with fast_path(switch), torch.no_grad():
            for _ in range(2):  # the first fills the eval caches (resized filters)
                with FlopCounterMode(display=False) as counter:
                    model(x)
        counts.append(counter.get_flop_counts())
    assert counts[0] == counts[1]


@pytest.mark.parametrize('name', CLASSIFIERS)
def test_create_feature_extractor(name):
    """torchvision's FX feature extraction with a plain ``torch.fx.Tracer``: every
    feature level and the logits, equal to ``forward_intermediates`` and ``forward``,
    in eval and training (the filters are one node each: ``layers.fx_leaf``)."""
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10).eval()
    x = torch.randn(2, 3, 64, 96)
    levels = [info['module'] for info in model.feature_info]  # a module name: its last node
    extractor = create_feature_extractor(model, levels + ['head'])
    with torch.no_grad():
        *maps, logits = extractor(x).values()
        # in the layout the blocks put out: GFNet's (B, h, w, D) tokens, AFFNet's NCHW maps
        _, expected = model.forward_intermediates(x, output_fmt=model.output_fmt)
        torch.testing.assert_close(logits, model(x), rtol=1e-4, atol=1e-5)
    assert len(maps) == len(expected)
    for got, want in zip(maps, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)

    extractor.train()  # the graph traced in training mode (drop path)
    extractor(x)['head'].sum().backward()
    assert all(p.grad is not None for p in extractor.parameters())


@pytest.mark.parametrize('name', SMALLEST)
def test_classifier_is_one_graph_for_torch_compile(name):
    """Dynamo traces the whole classifier in inference, fast path included, without a
    break (training: ``tests/unit/ops/test_fast_path.py``, block and backbone)."""
    model = timm.create_model(name, num_classes=10).eval()
    with torch.no_grad():
        explained = torch._dynamo.explain(model)(torch.randn(2, 3, 64, 96))
    torch._dynamo.reset()
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), \
        [b.reason for b in explained.break_reasons]


#: shallow variants of the smallest classifiers: the same layers and fast path,
#: fewer blocks, so inductor compiles each in seconds rather than minutes on 2 cores
SHALLOW = {'gfnet_ti': dict(depth=2), 'gfnet_h_ti': dict(depths=[1, 1, 2, 1]),
           'affnet_et': dict(widths=(16, 32, 48, 64, 80))}


@pytest.mark.slow  # inductor's compile
@pytest.mark.parametrize('name', sorted(SHALLOW))
def test_compiled_classifier_equals_eager(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10, **SHALLOW[name]).eval()
    x = torch.randn(2, 3, 64, 96)
    compiled = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
