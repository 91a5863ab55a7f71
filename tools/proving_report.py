"""Tables and plots of tools/proving_ground.py's runs: results.json, results.md,
canvas_study.png, scale_study.png, learning_curves.png.

Every learned number is the mean over the seeds that finished, with their min-max,
beside the best baseline of the same validation set; a difference between two models is
called only where their seed ranges do not overlap (``compare``).
"""
import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

DISPLAY = {'gfnet_h_ti': 'GFNet-H-Ti', 'resnet18': 'ResNet-18',
           'convnext_nano': 'ConvNeXt-Nano', 'pvt_v2_b1': 'PVT-v2-B1'}
SEG_BASELINES = ('background everywhere', 'location prior', 'nearest training scene',
                 'intensity lookup', 'intensity threshold')


def config_name(run: str) -> str:
    """'seg/gfnet_h_ti-bicubic-s2' -> 'seg/gfnet_h_ti-bicubic' (the seeds of one cell)."""
    return re.sub(r'-s\d+$', '', run)


def label(r: dict) -> str:
    out = DISPLAY.get(r['model'], r['model'])
    if r.get('filter_resize') and r['model'] == 'gfnet_h_ti':
        out += f' ({r["filter_resize"]})'
    if r.get('random_resize'):
        out += ' + random resize'
    return out


def group(results: Dict[str, dict], prefix: str) -> Dict[str, List[dict]]:
    """Runs starting with ``prefix``, grouped by configuration (the seeds of a cell)."""
    out: Dict[str, List[dict]] = {}
    for name, r in results.items():
        if name.startswith(prefix):
            out.setdefault(config_name(name), []).append(r)
    return out


def spread(values: Sequence[float]) -> dict:
    v = np.asarray(values, np.float64)
    return dict(mean=float(v.mean()), min=float(v.min()), max=float(v.max()), n=len(v))


def cell(s: dict) -> str:
    if s['n'] == 1:
        return f'{s["mean"]:.2f}'
    return f'{s["mean"]:.2f} ({s["min"]:.2f}-{s["max"]:.2f})'


def compare(a: dict, b: dict) -> str:
    """'>' / '<' where the seed ranges of ``a`` and ``b`` do not overlap, '~' where they
    do (no difference is called), '?' with one seed on either side (no range)."""
    if a['n'] < 2 or b['n'] < 2:
        return '?'
    if a['min'] > b['max']:
        return '>'
    if a['max'] < b['min']:
        return '<'
    return '~'


def margin_text(mean: float, worst: float, n_seeds: int) -> str:
    """``+13.18 (+11.78)``: the margin of the mean over the best baseline and, in brackets
    where there are several seeds, the worst seed's."""
    return f'{mean:+.2f}' if n_seeds == 1 else f'{mean:+.2f} ({worst:+.2f})'


def smallest_margin(c: dict, key: str = 'margin') -> str:
    """The smallest of a configuration's per-column margins (``c[key]``), as in the
    tables."""
    return margin_text(min(c[key].values()), min(c[f'{key}_worst_seed'].values()),
                       len(c['seeds']))


def margin_key(field: str) -> str:
    """Where a configuration keeps its margins of ``field`` ('whole', 'slide' or
    'scale'): ``margin`` / ``margin_slide``, each with its ``_worst_seed`` twin."""
    return 'margin_slide' if field == 'slide' else 'margin'


def margins(stats: Dict[str, dict], best: Dict[str, float]) -> tuple:
    """Per column: the mean's margin over the best baseline, and the worst seed's."""
    return ({k: s['mean'] - best[k] for k, s in stats.items()},
            {k: s['min'] - best[k] for k, s in stats.items()})


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    return (['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
            + ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows] + [''])


# --------------------------------------------------------------------------- summaries

def seg_summary(runs: List[dict], study: str, key: str, inference: str = 'whole') -> dict:
    """mIoU spread over seeds of one configuration at one canvas / scale."""
    if study == 'canvas':
        return spread([r['canvas'][key][inference]['mIoU'] for r in runs])
    return spread([r['scale'][key]['mIoU'] for r in runs])


def best_baseline(baselines: dict, study: str, key: str) -> tuple:
    rows = baselines[study][key]
    name = max(SEG_BASELINES, key=lambda n: rows[n]['mIoU'])
    return name, rows[name]['mIoU']


def summarise(results: Dict[str, dict]) -> dict:
    """The numbers the tables and plots show, as one JSON-able dict."""
    base = results.get('baselines')
    out = dict(pretrain={}, canvas={}, scale={}, det={})
    for cfg, runs in group(results, 'pretrain/').items():
        out['pretrain'][cfg] = dict(label=DISPLAY.get(runs[0]['model']), top1=spread(
            [r['top1'] for r in runs]), params_m=runs[0]['params_m'],
            gflops_32=runs[0].get('gflops_32', '-'), epochs=len(runs[0]['history']),
            seeds=sorted(r['seed'] for r in runs))
    for cfg, runs in group(results, 'seg/').items():
        r0 = runs[0]
        info = dict(label=label(r0), params_m=r0['params_m'], gflops_64=r0['gflops_64'],
                    iters=r0['iters'], seeds=sorted(r['seed'] for r in runs))
        if not r0['random_resize']:
            out['canvas'][cfg] = dict(info, whole={k: seg_summary(runs, 'canvas', k, 'whole')
                                                   for k in r0['canvas']},
                                      slide={k: seg_summary(runs, 'canvas', k, 'slide')
                                             for k in r0['canvas']})
        out['scale'][cfg] = dict(info, random_resize=r0['random_resize'],
                                 scale={k: seg_summary(runs, 'scale', k) for k in r0['scale']})
    for cfg, runs in group(results, 'det/').items():
        out['det'][cfg] = dict(label=label(runs[0]), params_m=runs[0]['params_m'],
                               gflops_128=runs[0].get('gflops_128', '-'), iters=runs[0]['iters'],
                               seeds=sorted(r['seed'] for r in runs),
                               mAP50=spread([r['bbox_mAP_50'] for r in runs]),
                               mAP=spread([r['bbox_mAP'] for r in runs]))
    if base:
        for study, fields in (('canvas', ('whole', 'slide')), ('scale', ('scale',))):
            for c in out[study].values():
                best = {k: best_baseline(base, study, k)[1] for k in c[fields[0]]}
                for field in fields:
                    key = margin_key(field)
                    c[key], c[f'{key}_worst_seed'] = margins(c[field], best)
        prior = base['det']['box prior']['bbox_mAP_50']
        for d in out['det'].values():
            d['margin'], d['margin_worst_seed'] = (d['mAP50']['mean'] - prior,
                                                   d['mAP50']['min'] - prior)
        lr = base['cls']['logistic regression']['top1']
        for p in out['pretrain'].values():
            p['margin'], p['margin_worst_seed'] = p['top1']['mean'] - lr, p['top1']['min'] - lr
    return out


# ------------------------------------------------------------------------------ tables

def tables(results: Dict[str, dict], meta: dict) -> str:
    base, summ = results.get('baselines'), summarise(results)
    how = 'Tables redrawn from the finished runs by' if meta.get('report_only') else 'Command:'
    threads = meta.get('threads', '?')
    lines = [f'{how} `{meta["command"]}` ({threads} thread{"" if threads == 1 else "s"}). Every '
             'learned cell: mean over the seeds that finished (min-max); "margin": the mean minus '
             'the best baseline of the same validation set and, in brackets, the worst seed '
             'minus it.', '']
    if base:
        cls = base['cls']
        lines += ['### Pretraining: Fashion-MNIST, 10 classes, 32x32, test set (10,000 images)', '']
        rows = [(n, '-', '-', '-', '-', f'{v["top1"]:.2f}', '-') for n, v in cls.items()]
        rows += [(p['label'], p['params_m'], p['gflops_32'], p['epochs'], len(p['seeds']),
                  cell(p['top1']), margin_text(p['margin'], p['margin_worst_seed'],
                                               len(p['seeds'])))
                 for p in summ['pretrain'].values()]
        lines += _table(('model', 'params (M)', 'GFLOPs at 32x32', 'epochs', 'seeds', 'top-1 %',
                         'margin over logistic regression'), rows)
    for study, title, keys_of in (
            ('canvas', 'Canvas study: mIoU on canvases of other sizes, garments at their '
             'training size (trained on 64x64 crops)', lambda c: list(c['whole'])),
            ('scale', 'Scale study: mIoU with garments 0.5x-2x their training size, 128x128 '
             'canvas, whole-image inference', lambda c: list(c['scale']))):
        if summ[study]:
            keys = keys_of(next(iter(summ[study].values())))
        elif base:
            keys = list(base[study])
        else:
            continue
        for inference in (('whole', 'slide') if study == 'canvas' else ('scale',)):
            what = {'whole': ', whole-image inference',
                    'slide': ', sliding window 64 / stride 48'}.get(inference, '')
            lines += [f'### {title}{what}', '']
            rows = []
            if base:
                for n in SEG_BASELINES:
                    rows.append([n, '-', '-', '-', '-'] +
                                [f'{base[study][k][n]["mIoU"]:.2f}' for k in keys] + ['-'])
            for c in summ[study].values():
                vals = c[inference]
                margin = smallest_margin(c, margin_key(inference)) if base else '-'
                rows.append([c['label'], c['params_m'], c['gflops_64'], c['iters'],
                             len(c['seeds'])] + [cell(vals[k]) for k in keys] + [margin])
            lines += _table(['model', 'params (M)', 'GFLOPs at 64x64', 'iterations', 'seeds']
                            + keys + ['smallest margin'], rows)
    if summ['det'] or base:
        lines += ['### Detection: RetinaNet on 128x128 validation scenes (COCO mAP, %)', '']
        rows, b = [], base['det']['box prior'] if base else None
        if b:
            rows.append(['box prior', '-', '-', '-', '-', f'{b["bbox_mAP_50"]:.2f}',
                         f'{b["bbox_mAP"]:.2f}', '-'])
        rows += [[d['label'], d['params_m'], d['gflops_128'], d['iters'], len(d['seeds']),
                  cell(d['mAP50']), cell(d['mAP']),
                  margin_text(d['margin'], d['margin_worst_seed'], len(d['seeds']))
                  if b else '-']
                 for d in summ['det'].values()]
        lines += _table(('model', 'params (M)', 'GFLOPs at 128x128', 'iterations', 'seeds',
                         'mAP@50', 'mAP', 'margin (mAP@50)'), rows)
    lines += findings(summ)
    return '\n'.join(lines)


def findings(summ: dict) -> List[str]:
    """Pairwise calls, GFNet-H (each mode) against each other configuration (each pair
    of modes once), per column: only where the seed ranges do not overlap."""
    out = []
    for study, field in (('canvas', 'whole'), ('canvas', 'slide'), ('scale', 'scale')):
        cfgs = summ[study]
        gf = [k for k in cfgs if 'gfnet_h_ti' in k]
        for g in gf:
            for other in cfgs:
                if other == g or other in gf[:gf.index(g)]:
                    continue
                calls = {k: compare(cfgs[g][field][k], cfgs[other][field][k])
                         for k in cfgs[g][field]}
                out.append(f'| {study} ({field}) | {cfgs[g]["label"]} vs {cfgs[other]["label"]} | '
                           + ', '.join(f'{k} {v}' for k, v in calls.items()) + ' |')
    if not out:
        return []
    return ['### Calls', '', '`>` / `<`: the seed ranges do not overlap; `~`: they overlap (no '
            'difference called); `?`: one seed (no range).', '',
            '| study | pair | per column |', '|---|---|---|'] + out + ['']


# ------------------------------------------------------------------------------- plots

def _axes(n: int, width: float = 6.5):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, n, figsize=(width * n, 5), squeeze=False)
    return plt, fig, axes[0]


def _legend_on_top(ax) -> None:
    """y from 0 (baselines and models on one scale) with room for the legend above."""
    top = ax.get_ylim()[1]
    ax.set_ylim(0, top * 1.45)
    ax.legend(fontsize=8, loc='upper center', ncol=2)


def _errorbar(ax, xs, stats, **kw):
    mean = np.array([s['mean'] for s in stats])
    lo = mean - np.array([s['min'] for s in stats])
    hi = np.array([s['max'] for s in stats]) - mean
    return ax.errorbar(xs, mean, yerr=[lo, hi], capsize=4, marker='o', linewidth=1.5, **kw)


def _seeds(c: dict) -> str:
    return '1 seed' if len(c['seeds']) == 1 else f'{len(c["seeds"])} seeds'


def plot_canvas(summ: dict, base: Optional[dict], path: Path) -> None:
    plt, fig, axes = _axes(2)
    cfgs = summ['canvas']
    keys = list(next(iter(cfgs.values()))['whole'])
    xs = np.arange(len(keys))
    for ax, inference in zip(axes, ('whole', 'slide')):
        for i, c in enumerate(cfgs.values()):
            _errorbar(ax, xs + (i - len(cfgs) / 2) * 0.04, [c[inference][k] for k in keys],
                      label=f'{c["label"]} ({_seeds(c)})')
        if base:
            ax.plot(xs, [best_baseline(base, 'canvas', k)[1] for k in keys], 'k--',
                    label='best trivial baseline')
        ax.set_xticks(xs)
        ax.set_xticklabels(keys)
        ax.set(xlabel='validation canvas H x W (training crops 64x64)', ylabel='mIoU (%)',
               title='Canvas study, ' + ('whole image' if inference == 'whole' else
                                         'sliding window 64/48') + ': mean, min-max over seeds')
        ax.grid(alpha=0.3)
        _legend_on_top(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scale(summ: dict, base: Optional[dict], path: Path) -> None:
    plt, fig, axes = _axes(1, 9)
    ax = axes[0]
    cfgs = summ['scale']
    keys = list(next(iter(cfgs.values()))['scale'])
    xs = np.array([float(k.rstrip('x')) for k in keys])
    for c in cfgs.values():
        _errorbar(ax, xs, [c['scale'][k] for k in keys],
                  linestyle='--' if c['random_resize'] else '-',
                  label=f'{c["label"]} ({_seeds(c)})')
    if base:
        ax.plot(xs, [best_baseline(base, 'scale', k)[1] for k in keys], 'k:',
                label='best trivial baseline')
    ax.set(xscale='log', xlabel='garment size / training size (128x128 canvas)', ylabel='mIoU (%)',
           title='Scale study: mean, min-max over seeds (dashed: trained with random resize 0.5-2)')
    ax.set_xticks(xs)
    ax.set_xticklabels([f'{x:g}' for x in xs])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    _legend_on_top(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning_curves(results: Dict[str, dict], path: Path) -> None:
    panels = [(p, t) for p, t in (('seg/', 'Segmentation (Semantic FPN), seed 0'),
                                  ('det/', 'Detection (RetinaNet), seed 0'))
              if any(k.startswith(p) for k in results)]
    plt, fig, axes = _axes(len(panels))
    for ax, (prefix, title) in zip(axes, panels):
        for name, r in results.items():
            if name.startswith(prefix) and r.get('seed') == 0 and r.get('curve'):
                xs, ys = zip(*r['curve'])
                ax.plot(xs, ys, label=label(r), linewidth=1.5)
        ax.set(title=title, xlabel='iteration', ylabel='training loss (mean of 25 iterations)',
               yscale='log')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, results: Dict[str, dict], meta: dict) -> dict:
    """Write results.json / results.md / plots into ``out``; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    summ = summarise(results)
    summary = dict(meta=meta, summary=summ, results=results)
    (out / 'results.json').write_text(json.dumps(summary, indent=1))
    (out / 'results.md').write_text('# Proving ground results\n\n' + tables(results, meta))
    base = results.get('baselines')
    if summ['canvas']:
        plot_canvas(summ, base, out / 'canvas_study.png')
    if summ['scale']:
        plot_scale(summ, base, out / 'scale_study.png')
    if any(k.startswith(('seg/', 'det/')) for k in results):
        plot_learning_curves(results, out / 'learning_curves.png')
    return summary
