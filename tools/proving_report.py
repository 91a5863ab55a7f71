"""Tables and plots of tools/proving_ground.py's results (results.json, results.md,
learning_curves.png, resolution_transfer.png)."""
import json
import re
from pathlib import Path
from typing import Dict, List

SIZE_LABELS = {'0.5x0.5': '0.5x', '0.75x0.75': '0.75x', '1.0x1.0': '1x (train)',
               '1.5x1.5': '1.5x', '2.0x2.0': '2x', '1.0x1.5': '1x H, 1.5x W',
               '1.5x1.0': '1.5x H, 1x W'}
DISPLAY = {'gfnet_h_ti': 'GFNet-H-Ti', 'resnet18': 'ResNet-18', 'convnext_nano': 'ConvNeXt-Nano'}


def read_scalars(work_dir: Path) -> dict:
    """MMEngine's ``vis_data/scalars.json`` of every (resumed) run in ``work_dir``:
    ``loss`` as ``[[iter, loss], ...]`` and the last validation's ``metrics`` (empty
    when the evaluator had nothing to score, e.g. a detector without detections)."""
    loss, metrics = {}, None
    for path in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if 'loss' in row:
                loss[row['step']] = row['loss']
            elif 'lr' not in row:  # a validation row: metrics plus data_time / time
                metrics = {k: v for k, v in row.items()
                           if k not in ('step', 'data_time', 'time')}
    if metrics is None:
        raise RuntimeError(f'no validation in {work_dir}/*/vis_data/scalars.json')
    return dict(loss=sorted([k, v] for k, v in loss.items()), metrics=metrics)


def pretrain_loss_curve(log_txt: Path) -> List[list]:
    """``[[iteration, loss], ...]`` from tools/pretrain.py's log.txt."""
    points = {}
    pattern = re.compile(r'epoch (\d+) \[(\d+)/(\d+)\] loss ([\d.]+)')
    for match in pattern.finditer(Path(log_txt).read_text()):
        epoch, step, steps, loss = match.groups()
        points[int(epoch) * int(steps) + int(step)] = float(loss)
    return [[i, loss] for i, loss in sorted(points.items())]


def count_params_m(model: str) -> float:
    import timm

    import gfnet_dense  # noqa: F401  (registers the GFNet models)
    net = timm.create_model(model, num_classes=10)
    return round(sum(p.numel() for p in net.parameters()) / 1e6, 2)


def _seg_label(r: dict) -> str:
    start = 'Fashion-MNIST' if r['pretrained'] else 'scratch'
    mode = f', filters {r["filter_resize"]}' if r['model'] == 'gfnet_h_ti' and r['pretrained'] \
        else ''
    return f'{DISPLAY[r["model"]]} ({start}{mode})'


def tables(results: Dict[str, dict], meta: dict) -> str:
    lines = [f'Command: `{meta["command"]}`: {meta["runs_s"] / 60:.1f} min of runs '
             f'(this invocation {meta["wall_s"] / 60:.1f} min wall; finished runs are kept)', '']
    pre = {k: v for k, v in results.items() if k.startswith('pretrain/')}
    if pre:
        lines += ['### Pretraining: Fashion-MNIST at 32x32', '',
                  '| model | params (M) | epochs | top-1 | top-5 | train time (s) |',
                  '|---|---|---|---|---|---|']
        for r in pre.values():
            lines.append(f'| {DISPLAY[r["model"]]} | {r["params_m"]} | {len(r["epochs"])} | '
                         f'{r["top1"]:.2f} | {r["top5"]:.2f} | {r["seconds"]:.0f} |')
        lines.append('')
    seg = {k: v for k, v in results.items() if k.startswith('seg/')}
    if seg:
        lines += ['### Segmentation: brain MRI lobes (16 classes), Semantic FPN, 217x181', '',
                  '| backbone (start) | mIoU | train time (s) |', '|---|---|---|']
        lines += [f'| {_seg_label(r)} | {r["mIoU"]:.2f} | {r["seconds"]:.0f} |'
                  for r in seg.values()]
        lines.append('')
    det = {k: v for k, v in results.items() if k.startswith('det/')}
    if det:
        lines += ['### Detection: tree crowns, RetinaNet, validation on other sites', '',
                  '| backbone (start) | bbox mAP | mAP@50 | train time (s) |', '|---|---|---|---|']
        for r in det.values():
            start = 'Fashion-MNIST' if r['pretrained'] else 'scratch'
            start += ', no box above the score threshold' if r.get('no_detections') else ''
            lines.append(f'| {DISPLAY[r["model"]]} ({start}) | {100 * r["bbox_mAP"]:.1f} | '
                         f'{100 * r["bbox_mAP_50"]:.1f} | {r["seconds"]:.0f} |')
        lines.append('')
    res = {k: v for k, v in results.items() if k.startswith('resolution/')}
    if res:
        sizes = list(next(iter(res.values()))['sizes'])
        first = next(iter(res.values()))['sizes']
        lines += ['### Resolution transfer: mIoU at test sizes (trained at 217x181)', '',
                  '| backbone (start) | ' + ' | '.join(
                      f'{SIZE_LABELS.get(s, s)} {first[s]["height"]}x{first[s]["width"]}'
                      for s in sizes) + ' |',
                  '|---' * (len(sizes) + 1) + '|']
        for name, r in res.items():
            label = _seg_label(results[name.replace('resolution/', 'seg/')])
            lines.append(f'| {label} | ' + ' | '.join(f'{r["sizes"][s]["mIoU"]:.2f}'
                                                       for s in sizes) + ' |')
        lines.append('')
    return '\n'.join(lines)


def plot_learning_curves(results: Dict[str, dict], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = [('pretrain/', 'Fashion-MNIST pretraining', 'iteration (128 images)', 'loss_curve'),
              ('seg/', 'Brain-lobe segmentation (FPN)', 'iteration', 'curve'),
              ('det/', 'Tree-crown detection (RetinaNet)', 'iteration', 'curve')]
    panels = [p for p in panels if any(k.startswith(p[0]) for k in results)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5), squeeze=False)
    for ax, (prefix, title, xlabel, key) in zip(axes[0], panels):
        for name, r in results.items():
            if name.startswith(prefix) and r.get(key):
                xs, ys = zip(*r[key])
                label = _seg_label(r) if prefix == 'seg/' else \
                    f'{DISPLAY[r["model"]]}' + ('' if prefix == 'pretrain/' else
                                                 f' ({"pretrained" if r["pretrained"] else "scratch"})')
                ax.plot(xs, ys, label=label, linewidth=1.5, marker='o' if len(xs) < 12 else None)
        ax.set(title=title, xlabel=xlabel, ylabel='training loss')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_resolution(results: Dict[str, dict], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, r in results.items():
        if not name.startswith('resolution/'):
            continue
        seg = results[name.replace('resolution/', 'seg/')]
        square = [(float(s.split('x')[0]), v['mIoU']) for s, v in r['sizes'].items()
                  if s.split('x')[0] == s.split('x')[1]]
        xs, ys = zip(*sorted(square))
        line, = ax.plot(xs, ys, marker='o', label=_seg_label(seg))
        for s, v in r['sizes'].items():
            fh, fw = map(float, s.split('x'))
            if fh != fw:  # other aspect ratios: at the geometric mean of the factors
                ax.scatter([(fh * fw) ** 0.5], [v['mIoU']], marker='^' if fw > fh else 'v',
                           color=line.get_color(), s=50)
    ax.set(xscale='log', xlabel='test size / training size (217x181); triangles: '
           'width x1.5 (up), height x1.5 (down)', ylabel='mIoU (%)',
           title='Resolution transfer: brain-lobe segmentation')
    ax.set_xticks([0.5, 0.75, 1, 1.5, 2])
    ax.set_xticklabels(['0.5', '0.75', '1', '1.5', '2'])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, results: Dict[str, dict], meta: dict) -> dict:
    """Write results.json / results.md / plots into ``out``; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    summary = dict(meta=meta, results=results)
    (out / 'results.json').write_text(json.dumps(summary, indent=1))
    (out / 'results.md').write_text('# Proving ground results\n\n' + tables(results, meta))
    if any(k.startswith(('pretrain/', 'seg/', 'det/')) for k in results):
        plot_learning_curves(results, out / 'learning_curves.png')
    if any(k.startswith('resolution/') for k in results):
        plot_resolution(results, out / 'resolution_transfer.png')
    return summary
