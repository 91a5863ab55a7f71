"""FLOPs (MACs) counted as the papers count them (FFTs included) match their tables, and
the counters users run -- mmengine's ``get_model_complexity_info`` (what MMSeg's and
MMDet's ``get_flops.py`` call) and torch's ``FlopCounterMode`` -- count the same."""
import math
import warnings

import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from gfnet_dense.flop_handles import MMENGINE_HANDLES, register_mmengine_handles
from gfnet_dense.flops import EXTRA_FORMULAS, count_flops
from gfnet_dense.ops import fast_path

PAPER_GFLOPS = {'gfnet_ti': 1.3, 'gfnet_xs': 2.9, 'gfnet_s': 4.5, 'gfnet_b': 7.9,
                'gfnet_h_ti': 2.1, 'gfnet_h_s': 4.6, 'gfnet_h_b': 8.6}
# AFFNet's table (at 256x256) gives one decimal
AFFNET_PAPER_GFLOPS = {'affnet_et': 0.4, 'affnet_t': 0.8, 'affnet_s': 1.5}


@pytest.mark.parametrize('name', sorted(PAPER_GFLOPS))
def test_flops_match_paper_within_3_percent(name):
    gflops = count_flops(timm.create_model(name), torch.randn(1, 3, 224, 224)) / 1e9
    assert abs(gflops - PAPER_GFLOPS[name]) / PAPER_GFLOPS[name] < 0.03, gflops


@pytest.mark.parametrize('name', sorted(AFFNET_PAPER_GFLOPS))
def test_affnet_flops_round_to_the_paper(name):
    gflops = count_flops(timm.create_model(name), torch.randn(1, 3, 256, 256)) / 1e9
    assert round(gflops, 1) == AFFNET_PAPER_GFLOPS[name], gflops


def test_fft_is_counted_as_n_c_log_n():
    from gfnet_dense.layers import GlobalFilter
    layer = GlobalFilter(5, (8, 16))
    # rfft2 + irfft2 over 8x16 = 128 points, 5 channels, batch 2
    expected = 2 * (2 * 5 * 128 * math.ceil(math.log2(128)))
    assert count_flops(layer, torch.randn(2, 8, 16, 5)) == expected


def _mmengine():
    pytest.importorskip('mmengine')
    if not register_mmengine_handles():
        pytest.skip('mmengine is not the version whose default op table is extended')
    from mmengine.analysis import FlopAnalyzer, get_model_complexity_info
    return FlopAnalyzer, get_model_complexity_info


def test_mmengine_and_flop_counter_mode_count_ffts_and_norms():
    flop_analyzer, _ = _mmengine()
    from gfnet_dense.layers import GlobalFilter
    layer = GlobalFilter(5, (8, 16)).eval()
    x = torch.randn(2, 8, 16, 5)
    fft = 2 * 2 * 5 * 128 * math.ceil(math.log2(128))
    with fast_path(False):
        assert flop_analyzer(layer, (x,)).total() == fft
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            layer(x)
    assert counter.get_total_flops() == 2 * fft
    # fvcore's norm and resampling counts, which torch does not have
    x = torch.randn(2, 8, 6, 6)
    for module, macs in ((torch.nn.BatchNorm2d(8).eval(), 2 * x.numel()),
                         (torch.nn.GroupNorm(2, 8), 5 * x.numel()),
                         (torch.nn.Upsample(size=(9, 9), mode='bilinear'), 4 * 2 * 8 * 81),
                         (torch.nn.AdaptiveAvgPool2d(3), x.numel())):
        assert flop_analyzer(module, (x,)).total() == macs, module
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(x)
        assert counter.get_total_flops() == 2 * macs, module


def test_mmengine_table_is_left_alone_on_other_versions(monkeypatch):
    pytest.importorskip('mmengine')
    import mmengine
    from mmengine.analysis import complexity_analysis

    from gfnet_dense import flop_handles
    table = dict(complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS)
    for name in MMENGINE_HANDLES:
        table.pop(name, None)
    monkeypatch.setattr(complexity_analysis, '_DEFAULT_SUPPORTED_FLOP_OPS', table)
    monkeypatch.setattr(mmengine, '__version__', '0.11.0')
    monkeypatch.setitem(flop_handles._state, 'warned', False)
    with pytest.warns(UserWarning, match='add_mmengine_handles'):
        assert not register_mmengine_handles()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert not register_mmengine_handles()  # warned once
    assert not set(MMENGINE_HANDLES) & set(table)


@pytest.mark.parametrize('name', ['gfnet_ti', 'gfnet_h_ti', 'affnet_et'])
def test_mmengine_and_flop_counter_mode_agree_with_count_flops(name):
    flop_analyzer, get_model_complexity_info = _mmengine()
    from gfnet_dense.layers import release_eval_caches
    model = timm.create_model(name).eval()
    for size in (224, 512):
        x = torch.randn(1, 3, size, size)
        expected = count_flops(model, x)
        # each counter on a fresh model (no eval cache), as users run them; the fast
        # path is off until it turns itself off under tracing and FlopCounterMode
        with fast_path(False):
            release_eval_caches(model)
            if size == 224 and name != 'affnet_et':  # the tool (passes forward a tuple of
                # inputs); it traces twice, slowly for AFFNet's many modules
                macs = get_model_complexity_info(model, input_shape=(3, size, size),
                                                 show_table=False, show_arch=False)['flops']
            else:  # the analyzer it runs (and an activation count, not needed here)
                macs = flop_analyzer(model, (x,)).unsupported_ops_warnings(False) \
                    .uncalled_modules_warnings(False).total()
            release_eval_caches(model)
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(x)
        torch_macs = counter.get_total_flops() // 2
        assert abs(macs / expected - 1) < 0.03, (size, macs, expected)
        assert abs(torch_macs / expected - 1) < 0.03, (size, torch_macs, expected)


def _profiled_flops(events) -> int:
    """FLOPs of the operators a profiler recorded with their arguments (the fast
    path's too: a profiler is no dispatch mode), by the formulas ``count_flops``
    uses; an op counts unless one it runs within did (as FlopCounterMode sees them)."""
    from torch.utils.flop_counter import flop_registry, shape_wrapper
    formulas = {op._qualified_op_name: formula for op, formula in flop_registry.items()}
    formulas.update({op._qualified_op_name: shape_wrapper(formula)
                     for op, formula in EXTRA_FORMULAS.items()})

    def counted_within(event):
        parent = event.cpu_parent
        while parent is not None:
            if parent.name in formulas:
                return True
            parent = parent.cpu_parent
        return False

    total = 0
    for event in events:
        if event.name not in formulas or counted_within(event):
            continue
        args = [value if value is not None else (shape or None)
                for shape, value in zip(event.input_shapes, event.concrete_inputs)]
        out = None
        if event.name == 'aten::convolution':
            (batch, _, *spatial), weight = args[0], args[1]
            stride, padding, dilation = args[3:6]
            out = torch.empty(batch, weight[0], *(
                (n + 2 * p - d * (k - 1) - 1) // s + 1
                for n, k, s, p, d in zip(spatial, weight[2:], stride, padding, dilation)),
                device='meta')
        total += formulas[event.name](*args, out_val=out)
    return total


def test_fast_path_counts_like_the_reference(monkeypatch):
    # the fast path's operators -- several MLP row chunks (oneDNN's fused linears
    # where available) and FFT channel groups -- do the plain formulation's products
    from gfnet_dense import GFNetH
    from gfnet_dense.ops import _torch_private, config
    monkeypatch.setattr(config, 'MLP_CHUNK_ELEMENTS', 1 << 12)
    monkeypatch.setattr(config, 'FFT_GROUP_ELEMENTS', 1 << 8)
    monkeypatch.setattr(config, 'FFT_GROUP_ALIGN', 1)
    model = GFNetH(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
                   pretrain_img_size=64).eval()
    x = torch.randn(1, 3, 96, 80)
    reference = count_flops(model, x, steady_state=True)
    with fast_path(True), torch.no_grad():
        model(x)  # fills the caches: resized filters, prepacked weights
        from torch.profiler import profile
        with profile(record_shapes=True) as prof:
            model(x)
    events = prof.events()
    names = [e.name for e in events]
    assert names.count('aten::_fft_r2c') > 4  # channel groups
    if _torch_private.ONEDNN_LINEAR_AVAILABLE:
        assert names.count('mkldnn::_linear_pointwise') > 2 * 4  # row chunks
    assert _profiled_flops(events) == 2 * reference


def test_count_flops_counts_the_first_pass_unless_steady_state():
    # a grid other than the pretraining one: the first pass resizes filters and pos_embed
    model = timm.create_model('gfnet_ti', depth=2)
    x = torch.randn(1, 3, 96, 96)
    first, steady = count_flops(model, x), count_flops(model, x, steady_state=True)
    assert steady < first
    assert count_flops(model, x) == first  # the eval caches are dropped each time
