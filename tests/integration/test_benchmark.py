"""tools/benchmark.py end to end on tiny inputs: every mode writes its table and JSON."""
import json
import os.path as osp

from helpers import ROOT, run_tool

FAST = ['--sizes', '64x96', '--warmup', '0', '--repeats', '1', '--threads', '1']


def _result(out_dir):
    with open(osp.join(out_dir, 'benchmark.json')) as f:
        result = json.load(f)
    with open(osp.join(out_dir, 'benchmark.md')) as f:
        return result, f.read()


def test_backbone_mode_table_json_and_plot(tmp_path):
    run_tool('benchmark.py', '--models', 'gfnet_h_ti', 'resnet50', '--out-dir', str(tmp_path),
             *FAST)
    result, table = _result(tmp_path)
    assert [r['model'] for r in result['rows']] == ['gfnet_h_ti', 'resnet50']
    for row in result['rows']:
        assert row['size'] == '64x96' and row['gflops'] > 0 and row['params_m'] > 1
        assert row['fwd_ms'] > 0 and row['fwdbwd_ms'] > 0 and row['fwdbwd_mem_mb'] >= 0
    assert 'GFNet-H-Ti (ours) | 64x96' in table and 'ResNet-50' in table
    assert table.startswith('Command: `python tools/benchmark.py --models gfnet_h_ti resnet50')
    assert osp.getsize(osp.join(tmp_path, 'benchmark.png')) > 1000


def test_segmentor_mode_runs_upernet_training_iterations(tmp_path):
    run_tool('benchmark.py', '--mode', 'segmentor', '--models', 'gfnet_h_ti', 'swin_t',
             '--batch', '2', '--out-dir', str(tmp_path), *FAST)
    result, table = _result(tmp_path)
    assert [r['model'] for r in result['rows']] == ['gfnet_h_ti', 'swin_t']
    assert all(r['iter_ms'] > 0 for r in result['rows'])
    assert 'train iteration ms' in table and 'batch 2' in table


def test_filter_mode_reports_bandwidth_per_stage(tmp_path):
    run_tool('benchmark.py', '--mode', 'filter', '--out-dir', str(tmp_path), *FAST)
    result, table = _result(tmp_path)
    rows = result['rows']
    assert [(r['stage'], r['channels'], r['grid']) for r in rows] == \
        [(1, 96, '16x24'), (2, 192, '8x12'), (3, 384, '4x6'), (4, 768, '2x3')]
    assert result['copy_gbs'] > 0 and all(r['bandwidth_gbs'] > 0 for r in rows)
    assert 'of copy' in table and not osp.exists(osp.join(tmp_path, 'benchmark.png'))


def test_unsupported_requests_fail_with_the_reason(tmp_path):
    proc = run_tool('benchmark.py', '--mode', 'filter', '--models', 'swin_t', '--out-dir',
                    str(tmp_path), check=False)
    assert proc.returncode == 2 and "cannot measure ['swin_t']" in proc.stderr
    proc = run_tool('benchmark.py', '--mode', 'segmentor', '--amp', '--out-dir', str(tmp_path),
                    check=False)
    assert proc.returncode == 2 and 'needs a GPU' in proc.stderr


def test_cpu_peak_memory_counts_tensor_allocations():
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    import torch
    from benchmark import peak_memory
    held = []

    def work():
        a = torch.ones(1 << 20)  # 4 MiB, freed before the next
        b = a * 2  # 4 MiB live together with a: peak 8 MiB
        del a
        held.append(b + 1)  # 4 MiB more while b lives: still 8 MiB

    peak = peak_memory(work, torch.device('cpu'))
    assert 8 << 20 <= peak < 9 << 20, peak


def _benchmark_module():
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    import benchmark
    return benchmark


def _report_module():
    """tools/benchmark_report.py: the targets, verdicts and tables of benchmark.py's rows."""
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    import benchmark_report
    return benchmark_report


def test_rounds_pool_the_samples_of_every_round(tmp_path):
    run_tool('benchmark.py', '--models', 'gfnet_h_ti', '--rounds', '2', '--no-backward',
             '--out-dir', str(tmp_path), *FAST)
    result, table = _result(tmp_path)
    (row,) = result['rows']
    low, high = sorted(row['fwd_times_ms'])  # one sample from each round
    assert row['fwd_ms'] == (low + high) / 2 and row['fwd_spread_ms'] == high - low
    assert 'median of 1 x 2 rounds' in table


def test_merge_rounds_takes_median_spread_and_largest_peak():
    benchmark = _benchmark_module()
    first = dict(model='m', size='8x8', fwd_times_ms=[5.0, 9.0], fwd_mem_mb=10.0)
    second = dict(model='m', size='8x8', fwd_times_ms=[6.0], fwd_mem_mb=12.0)
    other = dict(model='n', size='8x8', fwd_times_ms=[1.0], fwd_mem_mb=1.0)
    merged = benchmark.merge_rounds([first, other, second])
    assert [r['model'] for r in merged] == ['m', 'n']
    assert merged[0]['fwd_ms'] == 6.0 and merged[0]['fwd_spread_ms'] == 4.0
    assert merged[0]['fwd_mem_mb'] == 12.0 and first['fwd_times_ms'] == [5.0, 9.0]


def test_targets_are_judged_from_the_rows():
    report = _report_module()
    rows = [dict(model='gfnet_h_s', size='1024x1024', fwd_ms=100.0, fwdbwd_ms=300.0),
            dict(model='convnext_t', size='1024x1024', fwd_ms=100.0, fwdbwd_ms=299.0),
            dict(model='swin_t', size='1024x1024', fwd_ms=100.0, fwdbwd_ms=400.0)]
    verdicts = {(v['key'], v['peer']): v for v in report.evaluate_targets(rows)}
    # 'no slower than' admits a tie, 'faster than' does not; unmeasured targets are left out
    assert verdicts['fwd_ms', 'convnext_t']['met'] is True
    assert verdicts['fwd_ms', 'swin_t']['met'] is False
    assert verdicts['fwdbwd_ms', 'convnext_t']['met'] is False
    assert verdicts['fwdbwd_ms', 'swin_t']['met'] is True
    assert len(verdicts) == 4
    lines = '\n'.join(report.target_lines(verdicts.values()))
    assert 'forward at 1024x1024, no slower than ConvNeXt-T (timm) | 100 ms | 100 ms | 1.00 | met' \
        in lines
    assert '**not met**' in lines


def test_affnet_targets_are_judged_from_the_rows():
    report = _report_module()
    rows = [dict(model='affnet_s', size='256x256', fwd_ms=10.0, fwdbwd_ms=30.0),
            dict(model='mobilevit_s', size='256x256', fwd_ms=10.0, fwdbwd_ms=29.0),
            dict(model='affnet_s', size='512x512', fwd_ms=40.0, fwdbwd_ms=120.0),
            dict(model='mobilevit_s', size='512x512', fwd_ms=50.0, fwdbwd_ms=150.0),
            dict(model='gfnet_h_ti', size='512x512', fwd_ms=39.0, fwdbwd_ms=120.0),
            dict(model='affnet_s', size='1024x1024', fwd_ms=160.0),  # no backward measured
            dict(model='mobilevit_s', size='1024x1024', fwd_ms=200.0, fwdbwd_ms=600.0),
            dict(model='gfnet_h_s', size='1024x1024', fwd_ms=100.0, fwdbwd_ms=300.0),
            dict(model='swin_t', size='1024x1024', fwd_ms=100.0, fwdbwd_ms=400.0)]
    verdicts = report.evaluate_targets(rows)
    assert [v['model'] for v in verdicts] == ['gfnet_h_s'] * 2 + ['affnet_s'] * 7
    ours = {(v['key'], v['size'], v['peer']): v for v in verdicts if v['model'] == 'affnet_s'}
    met = {k: v['met'] for k, v in ours.items()}
    # 'no slower than' everywhere: a tie is met; the unmeasured 1024x1024 fwd+bwd is left out
    assert met == {('fwd_ms', '256x256', 'mobilevit_s'): True,
                   ('fwdbwd_ms', '256x256', 'mobilevit_s'): False,
                   ('fwd_ms', '512x512', 'mobilevit_s'): True,
                   ('fwdbwd_ms', '512x512', 'mobilevit_s'): True,
                   ('fwd_ms', '1024x1024', 'mobilevit_s'): True,
                   ('fwd_ms', '512x512', 'gfnet_h_ti'): False,
                   ('fwdbwd_ms', '512x512', 'gfnet_h_ti'): True}
    assert ours['fwd_ms', '1024x1024', 'mobilevit_s']['ratio'] == 0.8
    assert all(v['strict'] is False for v in ours.values())
    # one table per model of ours, GFNet-H-S's first as before
    lines = report.target_lines(verdicts)
    assert lines[0].startswith('| target for GFNet-H-S (ours) |') and lines[4] == ''
    assert lines[5].startswith('| target for AFFNet-S (ours) |') and len(lines) == 4 + 1 + 9
    text = '\n'.join(lines)
    assert ('forward at 512x512, no slower than MobileViT-S (timm) | 40 ms | 50 ms | 0.80 | met'
            in text)
    assert ('forward at 512x512, no slower than GFNet-H-Ti (ours) | 40 ms | 39 ms | 1.03 | '
            '**not met**' in text)


def test_affnet_preset_and_default_models():
    benchmark = _benchmark_module()
    args = benchmark.parse_args(['--preset', 'affnet'])
    assert args.models == ['affnet_s', 'mobilevit_s', 'gfnet_h_ti']
    assert args.sizes == ['256x256', '512x512', '1024x1024']
    assert benchmark.parse_args(['--preset', 'affnet', '--sizes', '64x64']).sizes == ['64x64']
    default = benchmark.parse_args([])
    assert default.models == ['gfnet_h_ti', 'gfnet_h_s', 'gfnet_h_b', 'resnet50', 'swin_t',
                              'convnext_t']
    assert default.sizes == ['512x512', '1024x1024', '2048x1024']


def test_mobilevit_s_gives_feature_maps_and_its_attention_is_counted():
    import torch
    from gfnet_dense.flops import count_flops
    benchmark = _benchmark_module()
    model = benchmark.build('mobilevit_s').eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs = model(x)
    assert isinstance(outs, list) and len(outs) == 5
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4, 2] and all(o.dim() == 4 for o in outs)
    # CPU's fused attention kernel has no FLOP formula in torch: count_flops has one,
    # equal to the products of timm's unfused path
    import gfnet_dense.flops as flops
    fused = [m for m in model.modules() if getattr(m, 'fused_attn', False)]
    assert len(fused) == 9
    with_attention = count_flops(model, x)
    formula = flops.EXTRA_FORMULAS.pop(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu)
    try:
        assert count_flops(model, x) < with_attention  # the attention counts
    finally:
        flops.EXTRA_FORMULAS[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = formula
    for m in fused:
        m.fused_attn = False
    assert count_flops(model, x) == with_attention
