"""Side-by-side backbone benchmark: GFNet-H (ours) against ResNet-50, Swin-T and ConvNeXt-T.

For every model and input size: parameters, FLOPs (FFTs counted as in the GFNet
paper), forward latency (eval, no autograd), forward+backward latency (train
mode, sum of the outputs as loss) and peak memory; median and spread over
repeats after warm-up. Writes a Markdown table and a log-log PNG plot.

    python tools/benchmark.py --quick                      # a few minutes on 2 CPU cores
    python tools/benchmark.py --sizes 512x512 1024x1024 2048x1024 --threads 2
    python tools/benchmark.py --device cuda --amp --sizes 512x512 1024x1024
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

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402

from gfnet_dense.flops import count_flops  # noqa: E402


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
    raise ValueError(f'unknown model {name!r}')


LABELS = {'gfnet_h_ti': 'GFNet-H-Ti (ours)', 'gfnet_h_s': 'GFNet-H-S (ours)',
          'gfnet_h_b': 'GFNet-H-B (ours)', 'affnet_s': 'AFFNet-S (ours)', 'resnet50': 'ResNet-50 (mmseg V1c)',
          'swin_t': 'Swin-T (mmseg)', 'convnext_t': 'ConvNeXt-T (timm)'}
DEFAULT_MODELS = [m for m in LABELS if m != 'affnet_s']  # AFFNet: --models affnet_s
MODEL_CHOICES = list(LABELS)


class PeakMemory:
    """Peak memory of a block of work: CUDA allocator stats, or the process's RSS
    high-water mark on CPU (reset through /proc/self/clear_refs)."""

    def __init__(self, device: torch.device):
        self.device = device

    @staticmethod
    def _status(field: str) -> int:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # resets VmHWM to the current RSS
            self.base = self._status('VmRSS')
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.peak = self._status('VmHWM') - self.base


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
    x = torch.randn(1, 3, *size, device=device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.amp else \
        (lambda: torch.autocast(device.type, enabled=False))
    row = dict(model=name, size=f'{size[0]}x{size[1]}', pixels=size[0] * size[1],
               params_m=sum(p.numel() for p in model.parameters()) / 1e6,
               gflops=count_flops(model, x) / 1e9)

    def forward():
        with torch.no_grad(), autocast():
            model(x)

    def forward_backward():
        with autocast():
            outs = model(x)
        sum(o.float().sum() for o in outs).backward()
        model.zero_grad(set_to_none=True)

    model.eval()
    with PeakMemory(device) as mem:
        fwd = timed(forward, device, args.warmup, args.repeats)
    row.update(fwd_ms=1e3 * statistics.median(fwd), fwd_spread_ms=1e3 * (max(fwd) - min(fwd)),
               fwd_mem_mb=mem.peak / 2**20)
    if not args.no_backward:
        model.train()
        with PeakMemory(device) as mem:
            both = timed(forward_backward, device, args.warmup, args.repeats)
        row.update(fwdbwd_ms=1e3 * statistics.median(both),
                   fwdbwd_spread_ms=1e3 * (max(both) - min(both)), fwdbwd_mem_mb=mem.peak / 2**20)
    return row


def markdown(rows, args, device) -> str:
    header = ('| model | input | params (M) | GFLOPs | forward ms (spread) | fwd peak MiB | '
              'fwd+bwd ms (spread) | fwd+bwd peak MiB |\n|---|---|---|---|---|---|---|---|\n')
    lines = []
    for r in rows:
        both = (f"{r['fwdbwd_ms']:.0f} ({r['fwdbwd_spread_ms']:.0f}) | {r['fwdbwd_mem_mb']:.0f}"
                if 'fwdbwd_ms' in r else '- | -')
        lines.append(f"| {LABELS.get(r['model'], r['model'])} | {r['size']} | {r['params_m']:.1f} | "
                     f"{r['gflops']:.1f} | {r['fwd_ms']:.0f} ({r['fwd_spread_ms']:.0f}) | "
                     f"{r['fwd_mem_mb']:.0f} | {both} |")
    machine = (f'{device.type}: ' + (torch.cuda.get_device_name() if device.type == 'cuda' else
               f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'))
    return (f'Machine: {machine}; torch {torch.__version__}; batch 1; '
            f"{'bf16 autocast' if args.amp else 'fp32'}; warm-up {args.warmup}, "
            f'median of {args.repeats}, spread = max - min.\n\n' + header + '\n'.join(lines) + '\n')


def plot(rows, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [('fwd_ms', 'forward latency (ms)'), ('fwdbwd_ms', 'forward+backward latency (ms)'),
              ('fwdbwd_mem_mb', 'forward+backward peak memory (MiB)')]
    panels = [p for p in panels if any(p[0] in r for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, (key, title) in zip(list(axes) if len(panels) > 1 else [axes], panels):
        for name in dict.fromkeys(r['model'] for r in rows):
            pts = sorted((r['pixels'], r[key]) for r in rows if r['model'] == name and key in r)
            ax.plot([p for p, _ in pts], [v for _, v in pts], marker='o',
                    label=LABELS.get(name, name), linestyle='-' if 'gfnet' in name else '--')
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('pixels')
        ax.set_title(title)
        ax.grid(True, which='both', alpha=0.3)
    axes_list = list(axes) if len(panels) > 1 else [axes]
    axes_list[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


RESULT = 'BENCHMARK_RESULT '


def run_isolated(name: str, size: str, argv) -> dict:
    """Measure in a fresh process, so that peak memory and allocator state are the
    model's own and not left over from the previous measurement."""
    cmd = [sys.executable, osp.abspath(__file__), *argv, '--single', name, size]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f'measuring {name} at {size} failed:\n{proc.stderr[-3000:]}')
    return json.loads(lines[-1][len(RESULT):])


def parse_size(text: str):
    h, _, w = text.lower().partition('x')
    return int(h), int(w or h)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=DEFAULT_MODELS, choices=MODEL_CHOICES)
    parser.add_argument('--sizes', nargs='+', default=['512x512', '1024x1024', '2048x1024'],
                        help='HxW list')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast')
    parser.add_argument('--threads', type=int, default=None, help='CPU threads')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--no-backward', action='store_true')
    parser.add_argument('--quick', action='store_true',
                        help='GFNet-H-S and the peers at 512x512 and 1024x1024, 1 repeat')
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    parser.add_argument('--single', nargs=2, metavar=('MODEL', 'SIZE'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.models = ['gfnet_h_s', 'swin_t', 'convnext_t']
        args.sizes, args.warmup, args.repeats = ['512x512', '1024x1024'], 1, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.single:  # child process: one measurement, as JSON on the last line
        print(RESULT + json.dumps(measure(args.single[0], parse_size(args.single[1]), args, device)))
        return
    rows = []
    for size in args.sizes:
        for name in args.models:
            rows.append(run_isolated(name, size, argv if argv is not None else sys.argv[1:]))
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v
                              for k, v in rows[-1].items()}), flush=True)
    table = markdown(rows, args, device)
    command = 'python tools/benchmark.py ' + ' '.join(sys.argv[1:] if argv is None else argv)
    with open(osp.join(args.out_dir, 'benchmark.md'), 'w') as f:
        f.write(f'Command: `{command}`\n\n{table}')
    with open(osp.join(args.out_dir, 'benchmark.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    plot(rows, osp.join(args.out_dir, 'benchmark.png'))
    print(table)
    print(f'wrote {args.out_dir}/benchmark.md, benchmark.json, benchmark.png')


if __name__ == '__main__':
    main()
