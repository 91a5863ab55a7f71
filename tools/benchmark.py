"""Benchmark GFNet-H and AFFNet (ours) side by side with ResNet-50, Swin-T, ConvNeXt-T, MobileViT-S.

Three modes, each measurement in a fresh process, median and spread over
repeats after warm-up, written as Markdown, JSON (and a log-log PNG plot):

- ``backbone`` (default): parameters, FLOPs (FFTs counted as in the GFNet paper),
  forward latency (eval, no autograd), forward+backward latency (train mode, sum
  of the outputs as loss) and peak memory.
- ``segmentor``: one UperNet training iteration (data preprocessing, loss,
  backward, AdamW step) with the ADE20K configs, ``--amp`` for bf16 AMP.
- ``filter``: the global filter layer of each GFNet-H-S stage alone, with its
  achieved memory bandwidth (input + filter + output bytes over the time) as a
  fraction of the device's measured copy bandwidth and, on known GPUs, of the
  nominal peak.

``--rounds N`` repeats the whole sweep N times with the models interleaved and
pools the samples. The backbone and segmentor tables end with the verdict on
each speed and memory target that the run measured: GFNet-H-S against its peers,
and AFFNet-S against MobileViT-S (timm's ``mobilevit_s``, the AFFNet paper's main
peer) and GFNet-H-Ti. A target is judged only when both of its rows were measured.
This file measures; the targets (``TARGETS``), verdicts, tables, JSON and plot are
tools/benchmark_report.py's. Sizes are HxW, or N for NxN.

The default models are the GFNet-H variants and their peers. ``--preset affnet``
is AFFNet-S, MobileViT-S and GFNet-H-Ti at 256x256, 512x512 and 1024x1024 (the
AFFNet targets); ``--models`` / ``--sizes`` given with it replace its own.

    python tools/benchmark.py --quick                      # a few minutes on 2 CPU cores
    python tools/benchmark.py --rounds 3 --threads 2       # the run behind BENCHMARKS.md
    python tools/benchmark.py --preset affnet --rounds 3 --threads 2 --out-dir work_dirs/benchmark_affnet
    python tools/benchmark.py --sizes 512x512 1024x1024 2048x1024 --threads 2
    python tools/benchmark.py --device cuda --amp --sizes 512x512 1024x1024
    python tools/benchmark.py --mode segmentor --device cuda --amp --batch 2 --sizes 512x512
    python tools/benchmark.py --mode filter --device cuda --amp --sizes 512x512 1024x1024
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time

import torch

from gfnet_dense.cli import format_size, parse_size
from gfnet_dense.flops import count_flops

# a sibling tool: tools/ is on sys.path when this runs as python tools/benchmark.py
from benchmark_report import LABELS, evaluate_targets, nominal_gbs, write_report


def build(name: str) -> torch.nn.Module:
    """Backbones only (no heads), as a dense-prediction model uses them."""
    if name.startswith('gfnet_h_'):
        from gfnet_dense import GFNetH
        return GFNetH(arch=name[len('gfnet_h_'):])
    if name == 'affnet_s':
        from gfnet_dense import AFFNet
        return AFFNet(arch='s')
    if name == 'resnet50':
        from mmseg.models.backbones import ResNetV1c
        return ResNetV1c(depth=50)
    if name == 'swin_t':
        from mmseg.models.backbones import SwinTransformer
        return SwinTransformer(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                               window_size=7, drop_path_rate=0.2)
    if name == 'convnext_t':
        import timm
        return timm.create_model('convnext_tiny', features_only=True, drop_path_rate=0.1)
    if name == 'mobilevit_s':  # 4.9M without the classifier (5.6M with it, as the papers count)
        import timm
        return timm.create_model('mobilevit_s', features_only=True)
    raise ValueError(f'unknown model {name!r}')


# the GFNet-H run behind BENCHMARKS.md; AFFNet-S and its peer MobileViT-S: --preset affnet
DEFAULT_MODELS = [m for m in LABELS if m not in ('affnet_s', 'mobilevit_s')]
DEFAULT_SIZES = ['512x512', '1024x1024', '2048x1024']
MODEL_CHOICES = list(LABELS)
PRESETS = {'affnet': dict(models=['affnet_s', 'mobilevit_s', 'gfnet_h_ti'],
                          sizes=['256x256', '512x512', '1024x1024'])}
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# UperNet on ADE20K: our configs and mmseg's own for the peers (ConvNeXt's needs mmpretrain)
SEGMENTOR_CONFIGS = {
    'gfnet_h_ti': 'configs/upernet_gfnet_h_ti_ade20k.py',
    'gfnet_h_s': 'configs/upernet_gfnet_h_s_ade20k.py',
    'gfnet_h_b': 'configs/upernet_gfnet_h_b_ade20k.py',
    'affnet_s': 'configs/upernet_affnet_s_ade20k.py',
    'resnet50': 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
    'swin_t': 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
}


def peak_memory(fn, device: torch.device) -> int:
    """Peak bytes of tensor memory allocated during one ``fn()``, above what was live before.

    CUDA's allocator statistics on GPU; on CPU the profiler's allocation events
    (every tensor allocation and free, kernels' temporaries included), so the
    number means the same on both and does not depend on how the C library
    returns freed memory to the system.
    """
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = prof.profiler.kineto_results.events()
    live = peak = 0
    for _, nbytes in sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == '[memory]'):
        live += nbytes
        peak = max(peak, live)
    return peak


def milliseconds(seconds):
    return [1e3 * t for t in seconds]


def timed(fn, device, warmup: int, repeats: int):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def measure(name, size, args, device):
    torch.manual_seed(0)
    model = build(name).to(device)
    x = torch.randn(args.batch, 3, *size, device=device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.amp else \
        (lambda: torch.autocast(device.type, enabled=False))
    row = dict(model=name, size=f'{size[0]}x{size[1]}', pixels=size[0] * size[1],
               params_m=sum(p.numel() for p in model.parameters()) / 1e6,
               gflops=count_flops(model, x, steady_state=True) / 1e9)

    def forward():
        with torch.no_grad(), autocast():
            model(x)

    def forward_backward():
        with autocast():
            outs = model(x)
        sum(o.float().sum() for o in outs).backward()
        model.zero_grad(set_to_none=True)

    model.eval()
    row.update(fwd_times_ms=milliseconds(timed(forward, device, args.warmup, args.repeats)),
               fwd_mem_mb=peak_memory(forward, device) / 2**20)
    if not args.no_backward:
        model.train()
        both = timed(forward_backward, device, args.warmup, args.repeats)
        row.update(fwdbwd_times_ms=milliseconds(both),
                   fwdbwd_mem_mb=peak_memory(forward_backward, device) / 2**20)
    return row


def _config_path(name: str) -> str:
    path = SEGMENTOR_CONFIGS[name]
    if path.startswith('mmseg::'):
        import mmseg
        return osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', path[len('mmseg::'):])
    return osp.join(ROOT, path)


def measure_segmentor(name, size, args, device):
    """One UperNet training iteration (``train_step``) on a random ADE20K-like batch."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    from gfnet_dense.mm.runtime import use_cpu_fallbacks
    cfg = Config.fromfile(_config_path(name))
    use_cpu_fallbacks(cfg)  # SyncBN -> BN: a single process
    cfg.model.backbone.init_cfg, cfg.model.pretrained = None, None
    cfg.model.data_preprocessor.size = size
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device).train()
    wrapper = dict(cfg.optim_wrapper)
    if args.amp:
        wrapper.update(type='AmpOptimWrapper', dtype='bfloat16')
    optim_wrapper = build_optim_wrapper(model, wrapper)
    inputs, samples = [], []
    for _ in range(args.batch):
        inputs.append(torch.randint(0, 256, (3, *size), dtype=torch.uint8))
        sample = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 150, (1, *size))))
        sample.set_metainfo(dict(img_shape=size, pad_shape=size, ori_shape=size))
        samples.append(sample)
    batch = dict(inputs=inputs, data_samples=samples)
    row = dict(model=name, size=f'{size[0]}x{size[1]}', pixels=size[0] * size[1],
               params_m=sum(p.numel() for p in model.parameters()) / 1e6)
    def step():
        model.train_step(batch, optim_wrapper)

    row.update(iter_times_ms=milliseconds(timed(step, device, args.warmup, args.repeats)),
               iter_mem_mb=peak_memory(step, device) / 2**20)
    return row


def copy_bandwidth(device: torch.device) -> float:
    """Bytes per second of a large device-to-device copy (read + write)."""
    numel = (1 << 28) if device.type == 'cuda' else (1 << 26)  # 1 GiB / 256 MiB fp32
    src = torch.ones(numel, device=device)
    dst = torch.empty_like(src)
    times = timed(lambda: dst.copy_(src), device, warmup=2, repeats=5)
    return 2 * src.numel() * src.element_size() / min(times)


def measure_filter(name, size, args, device):
    """The global filter layer of every stage of ``name`` alone, forward without autograd."""
    from gfnet_dense import GFNetH
    from gfnet_dense.layers import grid_after
    from gfnet_dense.models.gfnet import GFNET_H_PATCH_SIZES
    backbone = GFNetH(arch=name[len('gfnet_h_'):]).to(device).eval()
    dtype = torch.bfloat16 if args.amp else torch.float32
    rows, grid = [], size
    for stage, (blocks, patch) in enumerate(zip(backbone.blocks, GFNET_H_PATCH_SIZES)):
        grid = grid_after(grid, patch)
        layer = blocks[0].filter
        channels = layer.complex_weight.shape[2]
        x = torch.randn(args.batch, *grid, channels, device=device, dtype=dtype)
        with torch.no_grad():
            times = timed(lambda: layer(x), device, max(args.warmup, 1), args.repeats)
            filt = layer.filter_for(grid, channels_first=True)
        moved = 2 * x.numel() * x.element_size() + filt.numel() * filt.element_size()
        rows.append(dict(model=name, size=f'{size[0]}x{size[1]}', pixels=size[0] * size[1],
                         stage=stage + 1, channels=channels, grid=f'{grid[0]}x{grid[1]}',
                         filter_times_ms=milliseconds(times), bytes_moved=moved))
    return rows


TIMED = ('fwd', 'fwdbwd', 'iter', 'filter')
PEAKS = ('fwd_mem_mb', 'fwdbwd_mem_mb', 'iter_mem_mb')


def merge_rounds(results):
    """One row per (model, size, stage) from the rows of every round: the timing
    samples pooled, the peak memory the largest seen; then median and spread
    (max - min) of each timed quantity, and the filter's bandwidth at the median."""
    merged = {}
    for row in results:
        key = (row['model'], row['size'], row.get('stage'))
        if key not in merged:
            merged[key] = dict(row)
            continue
        into = merged[key]
        for name in TIMED:
            if f'{name}_times_ms' in row:
                into[f'{name}_times_ms'] = into[f'{name}_times_ms'] + row[f'{name}_times_ms']
        for name in PEAKS:
            if name in row:
                into[name] = max(into[name], row[name])
    for row in merged.values():
        for name in TIMED:
            times = row.get(f'{name}_times_ms')
            if times:
                row[f'{name}_ms'] = statistics.median(times)
                row[f'{name}_spread_ms'] = max(times) - min(times)
        if 'bytes_moved' in row:
            row['bandwidth_gbs'] = row['bytes_moved'] / row['filter_ms'] / 1e6
    return list(merged.values())


RESULT = 'BENCHMARK_RESULT '


def machine(device: torch.device) -> str:
    """The device the run measured on: the GPU's name, or the CPU and its threads."""
    return (f'{device.type}: ' + (torch.cuda.get_device_name() if device.type == 'cuda' else
            f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'))


def run_isolated(name: str, size: str, argv) -> dict:
    """Measure in a fresh process, so that peak memory and allocator state are the
    model's own and not left over from the previous measurement."""
    cmd = [sys.executable, osp.abspath(__file__), *argv, '--single', name, size]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f'measuring {name} at {size} failed:\n{proc.stderr[-3000:]}')
    return json.loads(lines[-1][len(RESULT):])


def _size(text: str) -> str:
    """A ``--sizes`` entry, checked by ``gfnet_dense.cli.parse_size`` and written as HxW
    (``512`` -> ``'512x512'``), the form of the rows' ``size`` and of the targets."""
    return format_size(parse_size(text))


MEASURE = {'backbone': measure, 'segmentor': measure_segmentor, 'filter': measure_filter}


def parse_args(argv=None):
    """The command line, with the defaults of the mode, ``--preset`` and ``--quick`` filled in."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--mode', default='backbone', choices=list(MEASURE),
                        help='backbone: whole backbones; segmentor: UperNet training '
                             'iterations; filter: the global filter layer and its bandwidth')
    parser.add_argument('--models', nargs='+', choices=MODEL_CHOICES,
                        help='default: the GFNet-H variants and their peers (backbone), '
                             'GFNet-H-S and Swin-T (segmentor), GFNet-H-S (filter)')
    parser.add_argument('--sizes', nargs='+', type=_size, metavar='HxW',
                        help=f'HxW (or N for NxN) list, default: {" ".join(DEFAULT_SIZES)}')
    parser.add_argument('--preset', choices=list(PRESETS),
                        help='affnet: ' + ', '.join(f'{k} {" ".join(v)}' for k, v in
                                                   PRESETS['affnet'].items())
                             + ' (the AFFNet-S targets); --models / --sizes replace its own')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast / AMP')
    parser.add_argument('--threads', type=int, default=None, help='CPU threads')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--rounds', type=int, default=1,
                        help='measure every (model, size) this many times, in fresh processes, '
                             'interleaving the models so that slow drifts of the machine hit '
                             'all alike; the samples are pooled')
    parser.add_argument('--no-backward', action='store_true')
    parser.add_argument('--quick', action='store_true',
                        help='GFNet-H-S and the peers (or the preset\'s models) at 512x512 '
                             'and 1024x1024, 2 repeats')
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    parser.add_argument('--single', nargs=2, metavar=('MODEL', 'SIZE'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1:
        parser.error('--rounds and --repeats must be at least 1')
    if args.preset:
        args.models = args.models or PRESETS[args.preset]['models']
        args.sizes = args.sizes or PRESETS[args.preset]['sizes']
    args.sizes = args.sizes or DEFAULT_SIZES
    if args.quick:
        args.sizes, args.warmup, args.repeats = ['512x512', '1024x1024'], 1, 2
    if not args.models:
        backbones = ['gfnet_h_s', 'swin_t', 'convnext_t'] if args.quick else DEFAULT_MODELS
        args.models = {'backbone': backbones, 'segmentor': ['gfnet_h_s', 'swin_t'],
                       'filter': ['gfnet_h_s']}[args.mode]
    supported = {'segmentor': SEGMENTOR_CONFIGS, 'filter': [m for m in LABELS if 'gfnet_h' in m]}
    unsupported = [m for m in args.models if m not in supported.get(args.mode, args.models)]
    if unsupported:
        parser.error(f'--mode {args.mode} cannot measure {unsupported}; '
                     f'choose from {list(supported[args.mode])}')
    if args.amp and args.mode == 'segmentor' and args.device == 'cpu':
        parser.error('--mode segmentor --amp needs a GPU (MMEngine AmpOptimWrapper); '
                     'drop --amp on CPU')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.single:  # child process: one measurement, as JSON on the last line
        result = MEASURE[args.mode](args.single[0], parse_size(args.single[1]), args, device)
        print(RESULT + json.dumps(result))
        return
    results = []
    for round_index in range(args.rounds):
        for size in args.sizes:
            for name in args.models:
                result = run_isolated(name, size, argv if argv is not None else sys.argv[1:])
                for row in result if isinstance(result, list) else [result]:
                    results.append(row)
                    summary = merge_rounds([row])[0]
                    print(json.dumps(dict(round=round_index + 1, **{
                        k: round(v, 2) if isinstance(v, float) else v for k, v in summary.items()
                        if not k.endswith('_times_ms')})), flush=True)
    rows = merge_rounds(results)
    extra = {'targets': evaluate_targets(rows)} if args.mode != 'filter' else {}
    if args.mode == 'filter':
        extra['copy_gbs'] = copy_bandwidth(device) / 1e9
        extra['nominal_gbs'] = nominal_gbs(
            torch.cuda.get_device_name() if device.type == 'cuda' else '')
    command = 'python tools/benchmark.py ' + ' '.join(sys.argv[1:] if argv is None else argv)
    table, written = write_report(args.out_dir, rows, extra, args, machine(device),
                                  torch.__version__, command)
    print(table)
    print(f'wrote {args.out_dir}/{written}')


if __name__ == '__main__':
    main()
