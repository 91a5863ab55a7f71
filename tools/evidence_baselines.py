"""Trivial baselines on the Fashion-MNIST scenes and on Fashion-MNIST itself.

Makes the training scenes (from the 60,000 training images, seed ``--seed``) and the
validation scenes (from the 10,000 test images, fixed seed) of
``gfnet_dense.datasets.fmnist_scenes``, scores every baseline of
``gfnet_dense.datasets.baselines`` on the validation scenes, and prints Markdown tables:
segmentation (mIoU, aAcc and garment-vs-background IoU, as MMSeg's IoUMetric),
classification (Fashion-MNIST test top-1) and detection (COCO bbox mAP@50 and mAP, as
MMDet's CocoMetric). A trained model is evidence only where it beats every row.

    python tools/evidence_baselines.py                      # defaults: about 2 minutes
    python tools/evidence_baselines.py --num-train 500 --num-val 200 --no-cls-full
    python tools/evidence_baselines.py --write data/fmnist_scenes   # also write the set
"""
import argparse
import dataclasses
import time

import numpy as np

from gfnet_dense.datasets import baselines as B
from gfnet_dense.datasets import fmnist_scenes as F
from gfnet_dense.datasets.fashion_mnist import balanced_subset, load_split


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--num-train', type=int, default=2000, help='training scenes')
    p.add_argument('--num-val', type=int, default=500, help='validation scenes')
    p.add_argument('--canvas', type=int, nargs=2, default=[128, 128], metavar=('H', 'W'))
    p.add_argument('--val-canvas', type=int, nargs=2, default=None, metavar=('H', 'W'),
                   help='validation canvas (default: the training one); objects keep '
                   'their pixel size, counts scale with the area')
    p.add_argument('--object-px', type=int, nargs=2, default=[28, 42], metavar=('LO', 'HI'))
    p.add_argument('--count', type=int, nargs=2, default=[2, 6], metavar=('LO', 'HI'),
                   help='garments per 128x128 pixels')
    p.add_argument('--background', choices=F.BACKGROUNDS, default='noise')
    p.add_argument('--seed', type=int, default=0, help='seed of the training scenes')
    p.add_argument('--random-seeds', type=int, nargs='+', default=[0, 1, 2],
                   help='seeds of the random baselines')
    p.add_argument('--nn-side', type=int, default=32,
                   help='nearest-image baselines compare images downsampled to this side')
    p.add_argument('--cls-per-class', type=int, default=2000,
                   help='training images per class of the classification subset')
    p.add_argument('--no-cls-full', action='store_true',
                   help='skip the classification baselines on all 60,000 images')
    p.add_argument('--write', metavar='DIR', default=None,
                   help='also write the scenes there (MMSeg layout + COCO json)')
    return p.parse_args(argv)


def pct(x: float) -> str:
    return f'{100 * x:.2f}'


def mean_std(values) -> str:
    v = np.asarray(values, np.float64) * 100
    return f'{v.mean():.2f} ± {v.std():.2f}' if len(v) > 1 else f'{v[0]:.2f}'


def table(header, rows) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in r) + ' |' for r in rows]
    return '\n'.join(lines)


def segmentation(train, val, nn_side, seeds, num_classes):
    masks, images = val['masks'], val['images']
    hw = images.shape[1:]
    rows = []

    def score(name, pred, seed='-'):
        m = B.seg_metrics(pred, masks, num_classes)
        fg = B.foreground_iou(pred, masks)
        rows.append((name, seed, pct(m['mIoU']), pct(m['aAcc']), pct(fg)))

    score('background everywhere', B.predict_background(masks.shape))
    prior = B.location_prior(train['masks'], num_classes)
    score('location prior (per-pixel majority training label)',
          B.apply_location_prior(prior, len(masks), hw))
    copied, nn_idx = B.nearest_image_labels(train['images'], train['masks'], images, nn_side)
    score(f'nearest training image, label copy (L2 on {nn_side}x{nn_side})', copied)
    t, above, label = B.best_threshold(train['images'], train['masks'])
    score(f'intensity threshold ({">" if above else "<="} {t} -> {F.SEG_CLASSES[label]})',
          B.apply_threshold(images, t, above, label))
    lut = B.intensity_lut(train['images'], train['masks'], num_classes)
    score('intensity lookup (majority training label per gray value)', lut[images])
    freq = B.label_frequencies(train['masks'], num_classes)
    for s in seeds:
        score('random pixels at training label frequencies',
              B.random_pixels(freq, masks.shape, s), s)
    return rows, nn_idx


def classification(tr_x, tr_y, te_x, te_y, per_class, full):
    rows = []
    subsets = [(f'{per_class} per class', balanced_subset(tr_y, per_class))]
    if full:
        subsets.append(('all 60,000', np.arange(len(tr_y))))
    for name, idx in subsets:
        t0 = time.time()
        acc = B.top1(B.nearest_centroid(tr_x[idx], tr_y[idx], te_x), te_y)
        rows.append(('nearest class centroid (raw pixels)', name, pct(acc),
                     f'{time.time() - t0:.1f}'))
        t0 = time.time()
        acc = B.top1(B.logistic_regression(tr_x[idx], tr_y[idx], te_x), te_y)
        rows.append(('logistic regression (raw pixels, L-BFGS)', name, pct(acc),
                     f'{time.time() - t0:.1f}'))
    return rows


def detection(train, val, nn_idx, train_hw, seeds):
    hw = val['images'].shape[1:]
    n = len(val['images'])
    gt = (val['boxes'], val['box_labels'])
    ncls = len(F.CLASSES)
    rows = []
    prior = B.box_prior(train['boxes'], train['box_labels'], train_hw, hw)
    m = B.coco_map(*gt, [prior] * n, hw, ncls)
    rows.append(('box prior (k-means sizes x location x class frequency, 100/class)', '-',
                 pct(m['bbox_mAP_50']), pct(m['bbox_mAP'])))
    m = B.coco_map(*gt, B.copy_boxes(train['boxes'], train['box_labels'], nn_idx, train_hw, hw),
                   hw, ncls)
    rows.append(('nearest training image, box copy', '-', pct(m['bbox_mAP_50']),
                 pct(m['bbox_mAP'])))
    m50, m_all = [], []
    for s in seeds:
        m = B.coco_map(*gt, B.random_boxes(train['boxes'], train['box_labels'], hw, n, s), hw, ncls)
        m50.append(m['bbox_mAP_50'])
        m_all.append(m['bbox_mAP'])
    rows.append(('random boxes (training sizes and class frequencies, 100/image)',
                 ','.join(map(str, seeds)), mean_std(m50), mean_std(m_all)))
    return rows


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    spec = F.SceneSpec(canvas_hw=tuple(args.canvas), object_px=tuple(args.object_px),
                       count=tuple(args.count), background=args.background, seed=args.seed)
    val_spec = spec if args.val_canvas is None else dataclasses.replace(
        spec, canvas_hw=tuple(args.val_canvas))
    timing = {}
    t0 = time.time()
    arrays = {split: load_split(split) for split in ('train', 'val')}
    timing['load Fashion-MNIST'] = time.time() - t0
    scenes = {}
    for split, sp, num in (('train', spec, args.num_train), ('val', val_spec, args.num_val)):
        t0 = time.time()
        images, labels = arrays[split]
        seed = F.scene_seed(sp, split)
        scenes[split] = F.stack([F.make_scene(sp, i, images, labels, seed) for i in range(num)])
        timing[f'make {num} {split} scenes'] = time.time() - t0
    train, val = scenes['train'], scenes['val']
    nc = len(F.SEG_CLASSES)

    t0 = time.time()
    seg_rows, nn_idx = segmentation(train, val, args.nn_side, args.random_seeds, nc)
    timing['segmentation baselines'] = time.time() - t0
    t0 = time.time()
    det_rows = detection(train, val, nn_idx, spec.canvas_hw, args.random_seeds)
    timing['detection baselines'] = time.time() - t0
    t0 = time.time()
    cls_rows = classification(*arrays['train'], *arrays['val'], args.cls_per_class,
                              not args.no_cls_full)
    timing['classification baselines'] = time.time() - t0
    if args.write:
        t0 = time.time()
        F.write_scene_dataset(args.write, spec, args.num_train, args.num_val)
        timing[f'write {args.write}'] = time.time() - t0

    n_obj = [len(b) for b in val['boxes']]
    print(f'## Fashion-MNIST scenes: {args.num_train} train (seed {args.seed}) / '
          f'{args.num_val} val (seed {F.VAL_SEED}) scenes, canvas {spec.canvas_hw[0]}x'
          f'{spec.canvas_hw[1]} (val {val_spec.canvas_hw[0]}x{val_spec.canvas_hw[1]}), '
          f'garments {spec.object_px[0]}-{spec.object_px[1]} px, {args.background} background; '
          f'val: {np.mean(n_obj):.2f} garments/scene, '
          f'{100 * np.mean(val["masks"] > 0):.1f}% garment pixels\n')
    print('### Segmentation (11 classes incl. background; MMSeg IoUMetric rules)\n')
    print(table(('baseline', 'seed', 'mIoU', 'aAcc', 'garment IoU'), seg_rows) + '\n')
    print('### Detection (10 classes; COCO eval as MMDet CocoMetric, maxDets 1000)\n')
    print(table(('baseline', 'seeds', 'bbox mAP@50', 'bbox mAP'), det_rows) + '\n')
    print('### Classification (Fashion-MNIST 10,000 test images, top-1)\n')
    print(table(('baseline', 'training set', 'top-1', 'seconds'), cls_rows) + '\n')
    print('### Timing (seconds)\n')
    timing['total'] = time.time() - start
    print(table(('step', 'seconds'), [(k, f'{v:.1f}') for k, v in timing.items()]))


if __name__ == '__main__':
    main()
