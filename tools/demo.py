"""The quick-start demo: Semantic FPN + GFNet-H-Ti trained from scratch on real brain MRI.

Trains on the bundled slices (data/brain_lobes_demo: Colin27 T1 with AAL atlas lobe
labels, 16 classes) on CPU for about five minutes, evaluates the 30 validation slices
(mIoU, per-class IoU and pixel accuracy) next to two baselines that do not learn,
predicting background everywhere and copying the labels of the most similar training
slice (L2 on pixels; neighbouring slices of one brain are near-copies, so this
baseline is strong: the demo's short training from scratch stays below it), and
draws input / ground truth / prediction of three of them into WORK_DIR/demo.png.
A second run trains afresh in the same work dir.

    python tools/demo.py [--work-dir work_dirs/demo] [--iters N]
"""
import argparse
import glob
import os
import os.path as osp
import sys

import numpy as np
from mmengine.config import Config
from PIL import Image

from gfnet_dense.datasets.baselines import nearest_image_labels, seg_metrics

# sibling tools: tools/ is on sys.path when this runs as python tools/demo.py
import image_demo
import train
from make_demo_data import BRAIN_LOBES_DEMO

HERE = osp.dirname(osp.abspath(__file__))
CONFIG = osp.join(osp.dirname(HERE), 'configs/demo/fpn_gfnet_h_ti_brain_lobes_demo.py')
FIGURE_AT = (0.3, 0.5, 0.7)  # the figure's slices: these fractions of the sorted val set


def train_options(data_root, iters):
    options = [f'{loader}.dataset.data_root={data_root}'
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    if iters:  # the config's schedule, scaled: 10% warm-up, then poly decay
        options += [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
                    f'default_hooks.checkpoint.interval={iters}',
                    f'param_scheduler.0.end={max(1, iters // 10)}',
                    f'param_scheduler.1.begin={max(1, iters // 10)}',
                    f'param_scheduler.1.end={iters}']
    return options


def evaluate(model, data_root):
    """(name, image, truth, prediction) of every val slice, sorted by name."""
    from mmseg.apis import inference_model
    images = sorted(glob.glob(osp.join(data_root, 'img_dir', 'val', '*.png')))
    slices = []
    for path in images:
        truth = np.array(Image.open(path.replace('img_dir', 'ann_dir')))
        pred = inference_model(model, path).pred_sem_seg.data[0].numpy()
        slices.append((osp.basename(path)[:-4], np.array(Image.open(path)), truth, pred))
    return slices


def nearest_slice_baseline(data_root, slices, n):
    """Label copy from the training slice nearest to each validation slice (L2 on pixels
    at 128x128), scored as the model is (``seg_metrics``)."""
    paths = sorted(glob.glob(osp.join(data_root, 'img_dir', 'train', '*.png')))
    train_images = np.stack([np.array(Image.open(p).convert('L')) for p in paths])
    train_masks = np.stack([np.array(Image.open(p.replace('img_dir', 'ann_dir'))) for p in paths])
    query = np.stack([np.array(Image.fromarray(image).convert('L')) for _, image, _, _ in slices])
    copied, _ = nearest_image_labels(train_images, train_masks, query, side=128)
    return seg_metrics(copied, [truth for _, _, truth, _ in slices], n)


def report(slices, classes, nearest=None):
    """Print mIoU, per-class IoU, pixel accuracy of the (name, image, truth, prediction)
    ``slices`` and the baselines: all background and, when given, ``nearest`` (the
    nearest-slice label copy's ``seg_metrics``)."""
    truths = [truth for _, _, truth, _ in slices]
    metrics = seg_metrics([pred for *_, pred in slices], truths, len(classes))
    counts = sum(np.bincount(t.ravel(), minlength=len(classes)) for t in truths)
    share = counts / counts.sum()
    print(f'\nvalidation, {int(counts.sum())} pixels of {len(classes)} classes\n'
          f'{"class":<18}{"IoU %":>7}{"pixels %":>10}')
    for name, value, part in zip(classes, metrics['IoU'], share):
        print(f'{name:<18}{100 * value:7.1f}{100 * part:10.1f}')
    miou = metrics['mIoU']
    print(f'mIoU {100 * miou:.1f}%, pixel accuracy {100 * metrics["aAcc"]:.1f}%; all-background '
          f'baseline: mIoU {100 * share[0] / len(classes):.1f}%, pixel accuracy '
          f'{100 * share[0]:.1f}%')
    out = dict(mIoU=miou, aAcc=metrics['aAcc'], IoU=dict(zip(classes, metrics['IoU'].tolist())))
    if nearest is not None:
        print(f'nearest training slice (label copy, no learning): mIoU '
              f'{100 * nearest["mIoU"]:.1f}%, pixel accuracy {100 * nearest["aAcc"]:.1f}%; '
              f'the model {"beats" if miou > nearest["mIoU"] else "is below"} it by '
              f'{100 * abs(miou - nearest["mIoU"]):.1f} mIoU points')
        out.update(nearest_mIoU=nearest['mIoU'], nearest_aAcc=nearest['aAcc'])
    return out


def draw(slices, meta, title, out):
    """Rows: slices; columns: input, ground truth, prediction; each panel upscaled 2x."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    palette = np.array(meta['palette'], np.uint8)
    fig, axes = plt.subplots(len(slices), 3, figsize=(13.5, 4.8 * len(slices) + 0.6), dpi=100,
                             squeeze=False, gridspec_kw=dict(wspace=0.02, hspace=0.1))
    for row, (name, image, truth, pred) in zip(axes, slices):
        acc = 100 * (truth == pred).mean()
        panels = ((image, f'{name}: T1 input'), (palette[truth], 'ground truth (AAL lobes)'),
                  (palette[pred], f'prediction, pixel accuracy {acc:.1f}%'))
        for ax, (panel, caption) in zip(row, panels):
            ax.imshow(panel.repeat(2, 0).repeat(2, 1), cmap='gray', interpolation='nearest')
            ax.set_title(caption, fontsize=12)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel("anterior up, subject's left on the left", fontsize=11)
    handles = [Patch(facecolor=palette[i] / 255, edgecolor='black', label=name)
               for i, name in enumerate(meta['classes'])]
    fig.legend(handles=handles, loc='center left', bbox_to_anchor=(0.81, 0.5), fontsize=12,
               frameon=False)
    fig.suptitle(title, fontsize=14)
    fig.subplots_adjust(left=0.03, right=0.8, bottom=0.01, top=0.94)
    fig.savefig(out)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default=BRAIN_LOBES_DEMO)
    parser.add_argument('--iters', type=int, default=None, help='override max_iters')
    args = parser.parse_args(argv)
    if not glob.glob(osp.join(args.data_root, 'img_dir', 'val', '*.png')):
        sys.exit(f'no demo data under {args.data_root}: restore data/brain_lobes_demo from '
                 'git, or rebuild it with python tools/make_demo_data.py --brain-lobes')

    for old in glob.glob(osp.join(args.work_dir, 'iter_*.pth')):  # an earlier run's
        os.remove(old)
    train.main([CONFIG, '--work-dir', args.work_dir,
                '--cfg-options', *train_options(args.data_root, args.iters)])
    checkpoint = open(osp.join(args.work_dir, 'last_checkpoint')).read().strip()

    from mmseg.apis import init_model
    model = image_demo.build(init_model, Config.fromfile(CONFIG), checkpoint, 'cpu')
    slices = evaluate(model, args.data_root)
    classes = model.dataset_meta['classes']
    metrics = report(slices, classes, nearest_slice_baseline(args.data_root, slices,
                                                             len(classes)))
    iters = args.iters or Config.fromfile(CONFIG).train_cfg.max_iters
    out = osp.join(args.work_dir, 'demo.png')
    draw([slices[int(len(slices) * f)] for f in FIGURE_AT], model.dataset_meta,
         f'Semantic FPN + GFNet-H-Ti, {iters} iterations from scratch: validation mIoU '
         f'{100 * metrics["mIoU"]:.1f}% over {len(classes)} classes', out)
    print(f'demo done: checkpoint {checkpoint}, figure {out}')
    return metrics


if __name__ == '__main__':
    main()
