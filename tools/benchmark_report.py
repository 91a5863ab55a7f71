"""Targets, verdicts, tables and plots of tools/benchmark.py's measurements
(benchmark.md, benchmark.json, benchmark.png).

The rows are benchmark.py's merged measurements (``merge_rounds``): one dict per
model and input size (and stage, in filter mode) with the medians (``fwd_ms``,
``fwdbwd_ms``, ``iter_ms``, ``filter_ms``), their spreads and the peak memory. The
targets compare two rows of a run: GFNet-H-S against its peers, AFFNet-S against
MobileViT-S (the AFFNet paper's main peer) and GFNet-H-Ti; a target is judged only
when both of its rows were measured.
"""
import collections
import json
import os.path as osp
from typing import Optional, Tuple

LABELS = {'gfnet_h_ti': 'GFNet-H-Ti (ours)', 'gfnet_h_s': 'GFNet-H-S (ours)',
          'gfnet_h_b': 'GFNet-H-B (ours)', 'affnet_s': 'AFFNet-S (ours)',
          'resnet50': 'ResNet-50 (mmseg V1c)',
          'swin_t': 'Swin-T (mmseg)', 'convnext_t': 'ConvNeXt-T (timm)',
          'mobilevit_s': 'MobileViT-S (timm)'}
# nominal DRAM bandwidth (bytes/s) of GPUs this project is measured on, by name
NOMINAL_BANDWIDTH = {'H100 80GB HBM3': 3.35e12, 'H100 PCIe': 2.0e12, 'H100 NVL': 3.9e12,
                     'H200': 4.8e12, 'A100-SXM4-80GB': 2.04e12, 'A100-SXM4-40GB': 1.555e12}


def nominal_gbs(device_name: str) -> Optional[float]:
    """The nominal DRAM bandwidth in GB/s of the GPU called ``device_name`` (as
    ``torch.cuda.get_device_name`` gives it), ``None`` when it is not in the table."""
    nominal = [v for k, v in NOMINAL_BANDWIDTH.items() if k in device_name]
    return nominal[0] / 1e9 if nominal else None


# A speed or memory target: ``model``'s ``key`` at input ``size`` below (``strict``) or
# at most (not strict: 'no slower than') that of ``peer``
Target = collections.namedtuple('Target', 'model what key size peer strict')
TARGETS = [
    # GFNet-H-S against the usual backbones
    Target('gfnet_h_s', 'forward', 'fwd_ms', '1024x1024', 'convnext_t', False),
    Target('gfnet_h_s', 'forward', 'fwd_ms', '1024x1024', 'swin_t', True),
    Target('gfnet_h_s', 'forward+backward', 'fwdbwd_ms', '1024x1024', 'convnext_t', False),
    Target('gfnet_h_s', 'forward+backward', 'fwdbwd_ms', '1024x1024', 'swin_t', True),
    Target('gfnet_h_s', 'forward+backward', 'fwdbwd_ms', '2048x1024', 'convnext_t', False),
    Target('gfnet_h_s', 'forward+backward', 'fwdbwd_ms', '2048x1024', 'swin_t', True),
    Target('gfnet_h_s', 'forward peak memory', 'fwd_mem_mb', '2048x1024', 'swin_t', True),
    Target('gfnet_h_s', 'forward+backward peak memory', 'fwdbwd_mem_mb', '2048x1024', 'swin_t',
           True),
    Target('gfnet_h_s', 'UperNet training iteration', 'iter_ms', '512x512', 'swin_t', True),
    # AFFNet-S against MobileViT-S (the AFFNet paper's main peer) and GFNet-H-Ti: --preset affnet
    *(Target('affnet_s', what, key, size, 'mobilevit_s', False)
      for size in ('256x256', '512x512', '1024x1024')
      for what, key in (('forward', 'fwd_ms'), ('forward+backward', 'fwdbwd_ms'))),
    Target('affnet_s', 'forward', 'fwd_ms', '512x512', 'gfnet_h_ti', False),
    Target('affnet_s', 'forward+backward', 'fwdbwd_ms', '512x512', 'gfnet_h_ti', False),
]


def evaluate_targets(rows, targets=TARGETS):
    """The targets this run measured (both rows there): dicts with both values, their
    ratio and ``met``."""
    lookup = {(r['model'], r['size']): r for r in rows}
    verdicts = []
    for t in targets:
        ours, theirs = lookup.get((t.model, t.size), {}), lookup.get((t.peer, t.size), {})
        if t.key not in ours or t.key not in theirs:
            continue
        value, reference = ours[t.key], theirs[t.key]
        verdicts.append(dict(t._asdict(), value=value, reference=reference,
                             ratio=value / reference,
                             met=value < reference if t.strict else value <= reference))
    return verdicts


def target_lines(verdicts):
    """One table per model of ours, in the order of the targets."""
    verdicts = list(verdicts)
    lines = []
    for model in dict.fromkeys(v['model'] for v in verdicts):
        lines += ([''] if lines else []) + [
            f'| target for {LABELS[model]} | ours | peer | ratio | status |',
            '|---|---|---|---|---|']
        for v in (v for v in verdicts if v['model'] == model):
            unit = 'MiB' if v['key'].endswith('_mb') else 'ms'
            if unit == 'MiB':
                relation = 'below'
            else:
                relation = 'faster than' if v['strict'] else 'no slower than'
            lines.append(f"| {v['what']} at {v['size']}, {relation} {LABELS[v['peer']]} | "
                         f"{v['value']:.0f} {unit} | {v['reference']:.0f} {unit} | "
                         f"{v['ratio']:.2f} | {'met' if v['met'] else '**not met**'} |")
    return lines


def _backbone_lines(rows):
    header = ('| model | input | params (M) | GFLOPs | forward ms (spread) | fwd peak MiB | '
              'fwd+bwd ms (spread) | fwd+bwd peak MiB |\n|---|---|---|---|---|---|---|---|')
    lines = [header]
    for r in rows:
        both = (f"{r['fwdbwd_ms']:.0f} ({r['fwdbwd_spread_ms']:.0f}) | {r['fwdbwd_mem_mb']:.0f}"
                if 'fwdbwd_ms' in r else '- | -')
        lines.append(f"| {LABELS.get(r['model'], r['model'])} | {r['size']} | "
                     f"{r['params_m']:.1f} | {r['gflops']:.1f} | "
                     f"{r['fwd_ms']:.0f} ({r['fwd_spread_ms']:.0f}) | "
                     f"{r['fwd_mem_mb']:.0f} | {both} |")
    return lines


def _segmentor_lines(rows):
    lines = ['| UperNet + backbone | input | params (M) | train iteration ms (spread) | peak MiB |',
             '|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {LABELS.get(r['model'], r['model'])} | {r['size']} | "
                     f"{r['params_m']:.1f} | {r['iter_ms']:.0f} ({r['iter_spread_ms']:.0f}) | "
                     f"{r['iter_mem_mb']:.0f} |")
    return lines


def _filter_lines(rows, copy_gbs, nominal_gbs):
    cols = '| model | input | stage | C | grid | forward ms (spread) | GB/s | of copy |'
    cols += ' of nominal |' if nominal_gbs else ''
    lines = [cols, '|---' * (cols.count('|') - 1) + '|']
    for r in rows:
        line = (f"| {LABELS.get(r['model'], r['model'])} | {r['size']} | {r['stage']} | "
                f"{r['channels']} | {r['grid']} | "
                f"{r['filter_ms']:.2f} ({r['filter_spread_ms']:.2f}) | "
                f"{r['bandwidth_gbs']:.1f} | {r['bandwidth_gbs'] / copy_gbs:.0%} |")
        lines.append(line + (f" {r['bandwidth_gbs'] / nominal_gbs:.0%} |" if nominal_gbs else ''))
    return lines


def markdown(rows, args, machine: str, torch_version: str, copy_gbs=None, nominal_gbs=None,
             targets=()) -> str:
    """The Markdown table of ``args.mode`` (with the verdicts on ``targets`` after it)
    under a line naming the machine, the torch version and the settings."""
    if args.mode == 'segmentor':
        lines = _segmentor_lines(rows)
    elif args.mode == 'filter':
        lines = _filter_lines(rows, copy_gbs, nominal_gbs)
    else:
        lines = _backbone_lines(rows)
    notes = ''
    if args.mode == 'filter':
        notes = (f' Bandwidth = (input + output + filter bytes) / time; device copy bandwidth '
                 f'{copy_gbs:.0f} GB/s'
                 + (f', nominal {nominal_gbs:.0f} GB/s' if nominal_gbs else '')
                 + '.')
    samples = f'{args.repeats} x {args.rounds} rounds' if args.rounds > 1 else f'{args.repeats}'
    if targets:
        lines += ['', 'Targets, from the rows above:', ''] + target_lines(targets)
    return (f'Machine: {machine}; torch {torch_version}; batch {args.batch}; '
            f"{'bf16 autocast' if args.amp else 'fp32'}; warm-up {args.warmup}, "
            f'median of {samples}, spread = max - min.{notes}\n\n' + '\n'.join(lines) + '\n')


def plot(rows, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [('fwd_ms', 'forward latency (ms)'), ('fwdbwd_ms', 'forward+backward latency (ms)'),
              ('fwd_mem_mb', 'forward peak memory (MiB)'),
              ('fwdbwd_mem_mb', 'forward+backward peak memory (MiB)'),
              ('iter_ms', 'UperNet training iteration (ms)'), ('iter_mem_mb', 'peak memory (MiB)')]
    panels = [p for p in panels if any(p[0] in r for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, (key, title) in zip(list(axes) if len(panels) > 1 else [axes], panels):
        for name in dict.fromkeys(r['model'] for r in rows):
            pts = sorted((r['pixels'], r[key]) for r in rows if r['model'] == name and key in r)
            ax.plot([p for p, _ in pts], [v for _, v in pts], marker='o',
                    label=LABELS.get(name, name),
                    linestyle='-' if '(ours)' in LABELS.get(name, '') else '--')
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('pixels')
        ax.set_title(title)
        ax.grid(True, which='both', alpha=0.3)
    axes_list = list(axes) if len(panels) > 1 else [axes]
    axes_list[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_report(out_dir: str, rows, extra: dict, args, machine: str, torch_version: str,
                 command: str) -> Tuple[str, str]:
    """Write ``benchmark.md`` (``command``, then the table), ``benchmark.json`` (the rows
    and ``extra``: verdicts on the targets, copy and nominal bandwidth) and, except in
    filter mode, ``benchmark.png`` into ``out_dir``. Returns the table and the names
    of the files written."""
    table = markdown(rows, args, machine, torch_version, **extra)
    with open(osp.join(out_dir, 'benchmark.md'), 'w') as f:
        f.write(f'Command: `{command}`\n\n{table}')
    with open(osp.join(out_dir, 'benchmark.json'), 'w') as f:
        json.dump(dict(rows=rows, **extra), f, indent=1)
    written = 'benchmark.md, benchmark.json'
    if args.mode != 'filter':
        plot(rows, osp.join(out_dir, 'benchmark.png'))
        written += ', benchmark.png'
    return table, written
