"""Trivial baselines and the metrics to score them, for the Fashion-MNIST scenes
(``fmnist_scenes``) and Fashion-MNIST classification. Every baseline is a pure function
of the training data (and, where it is random, a seed); trained models are worth
something only where they beat all of these on the same validation split.

Segmentation (masks ``(S, H, W)`` integer, 0 = background):
    ``predict_background``, ``location_prior`` + ``apply_location_prior``,
    ``nearest_image_labels``, ``random_pixels`` (chance), ``intensity_lut`` /
    ``best_threshold`` (per-pixel intensity rules, to show that intensity alone does not
    segment the scenes);
    scored with ``seg_metrics`` (MMSegmentation's ``IoUMetric``: aAcc, mIoU).
Classification (images ``(N, 28, 28)`` or ``(N, D)``):
    ``nearest_centroid``, ``logistic_regression``; scored with ``top1``.
Detection (boxes per image ``(N, 4)`` x1, y1, x2, y2; labels 0..C-1):
    ``box_prior``, ``random_boxes``, ``copy_boxes``; scored with ``coco_map``
    (pycocotools as MMDetection's ``CocoMetric``: bbox_mAP and bbox_mAP_50).
"""
import contextlib
import io
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .fmnist_scenes import resize_matrix

Detections = Tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (K, 4), scores (K,), labels (K,)


# ----------------------------------------------------------------------------- metrics

def intersect_and_union(pred: np.ndarray, label: np.ndarray, num_classes: int,
                        ignore_index: int = 255) -> Tuple[np.ndarray, ...]:
    """Per-class pixel counts (intersect, union, pred, label), each (num_classes,) int64,
    as MMSeg's ``IoUMetric.intersect_and_union``: pixels labelled ``ignore_index`` are
    left out, and values outside 0..num_classes-1 count in no class."""
    pred = np.asarray(pred).ravel().astype(np.int64)
    label = np.asarray(label).ravel().astype(np.int64)
    keep = label != ignore_index
    pred, label = pred[keep], label[keep]

    def hist(v):
        v = v[(v >= 0) & (v < num_classes)]
        return np.bincount(v, minlength=num_classes)

    inter = hist(pred[pred == label])
    area_pred, area_label = hist(pred), hist(label)
    return inter, area_pred + area_label - inter, area_pred, area_label


def seg_metrics(preds, labels, num_classes: int, ignore_index: int = 255) -> Dict[str, object]:
    """aAcc and mIoU over a whole set as MMSeg's ``IoUMetric`` computes them: pixel counts
    summed over all images first; per-class IoU = intersect / union, nan for a class with
    zero union (absent from both ground truth and prediction), mIoU = nanmean; aAcc =
    correct / labelled pixels. ``preds``, ``labels``: sequences (or stacked arrays) of
    (H, W) integer maps. Returns fractions (MMSeg prints them x100, rounded to 2 places):
    ``dict(aAcc=float, mIoU=float, IoU=(num_classes,) float64 with nan)``."""
    total = [np.zeros(num_classes, np.int64) for _ in range(4)]
    for p, t in zip(preds, labels):
        for acc, part in zip(total, intersect_and_union(p, t, num_classes, ignore_index)):
            acc += part
    inter, union, _, area_label = total
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else float('nan')
    return dict(aAcc=float(inter.sum() / max(area_label.sum(), 1)), mIoU=miou, IoU=iou)


def foreground_iou(preds, labels) -> float:
    """IoU of "any garment" (label > 0) between predictions and labels over the set."""
    inter = union = 0
    for p, t in zip(preds, labels):
        pf, tf = np.asarray(p) > 0, np.asarray(t) > 0
        inter += int(np.sum(pf & tf))
        union += int(np.sum(pf | tf))
    return inter / union if union else float('nan')


def top1(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of ``pred`` equal to ``labels`` (both (N,))."""
    return float(np.mean(np.asarray(pred) == np.asarray(labels)))


# -------------------------------------------------------------------- segmentation

def predict_background(shape: Sequence[int]) -> np.ndarray:
    """All background: zeros of ``shape`` (e.g. (S, H, W)), uint8."""
    return np.zeros(tuple(shape), np.uint8)


def location_prior(train_masks: np.ndarray, num_classes: int) -> np.ndarray:
    """(H, W) uint8: at each pixel the most frequent training label there (ties go to
    the lower label). ``train_masks``: (S, H, W) integer, values < num_classes."""
    s, h, w = train_masks.shape
    flat = train_masks.reshape(s, -1).astype(np.int64)
    counts = np.zeros((num_classes, h * w), np.int64)
    for c in range(num_classes):
        counts[c] = (flat == c).sum(axis=0)
    return counts.argmax(axis=0).reshape(h, w).astype(np.uint8)


def resize_nearest(label_map: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """A label map (H, W) resized to ``hw`` by nearest neighbour on pixel centres."""
    h, w = label_map.shape
    ys = np.minimum(((np.arange(hw[0]) + 0.5) * h / hw[0]).astype(int), h - 1)
    xs = np.minimum(((np.arange(hw[1]) + 0.5) * w / hw[1]).astype(int), w - 1)
    return label_map[ys][:, xs]


def apply_location_prior(prior: np.ndarray, num: int, hw: Tuple[int, int]) -> np.ndarray:
    """(num, *hw) predictions from a ``location_prior`` map: the map itself when the
    validation canvas ``hw`` equals the training one, else the map resized by nearest
    neighbour (the prior is a function of relative position in the canvas)."""
    p = prior if tuple(prior.shape) == tuple(hw) else resize_nearest(prior, hw)
    return np.broadcast_to(p, (num, *hw)).copy()


def downsample(images: np.ndarray, side: int) -> np.ndarray:
    """(S, H, W) images to (S, side*side) float32 features by the antialiased linear
    filter of ``fmnist_scenes.resize_matrix``, values 0..1."""
    s, h, w = images.shape
    r, c = resize_matrix(h, side), resize_matrix(w, side)
    x = images.astype(np.float32) / 255.0
    out = np.matmul(np.matmul(r.astype(np.float32), x), c.T.astype(np.float32))
    return out.reshape(s, -1)


def nearest_neighbours(train_images: np.ndarray, query_images: np.ndarray, side: int = 32,
                       chunk: int = 256) -> np.ndarray:
    """(Q,) int64 index of the training image nearest (L2 on pixels, both downsampled
    to side x side with ``downsample``) to each query image. Images (S, H, W) uint8; the
    two sets may have different canvases (both go to side x side)."""
    a = downsample(train_images, side).astype(np.float64)
    b = downsample(query_images, side).astype(np.float64)
    a2 = (a * a).sum(axis=1)
    out = np.empty(len(b), np.int64)
    for i in range(0, len(b), chunk):
        d = a2[None, :] - 2.0 * b[i:i + chunk] @ a.T  # |b|^2 is the same for every column
        out[i:i + chunk] = d.argmin(axis=1)
    return out


def nearest_image_labels(train_images: np.ndarray, train_masks: np.ndarray,
                         query_images: np.ndarray, side: int = 32
                         ) -> Tuple[np.ndarray, np.ndarray]:
    """Label copy from the nearest training image (``nearest_neighbours``):
    (predictions (Q, H, W) uint8 on the query canvas — the neighbour's mask, resized by
    nearest neighbour if the canvases differ —, neighbour indices (Q,))."""
    idx = nearest_neighbours(train_images, query_images, side)
    hw = query_images.shape[1:]
    masks = train_masks[idx]
    if masks.shape[1:] != hw:
        masks = np.stack([resize_nearest(m, hw) for m in masks])
    return masks.astype(np.uint8), idx


def label_frequencies(masks: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes,) float64 fraction of the pixels of ``masks`` with each label."""
    return np.bincount(np.asarray(masks).ravel(), minlength=num_classes)[:num_classes] \
        / np.asarray(masks).size


def random_pixels(freq: np.ndarray, shape: Sequence[int], seed: int) -> np.ndarray:
    """Chance: every pixel of ``shape`` an independent draw from the label frequencies
    ``freq`` (e.g. ``label_frequencies`` of the training masks), uint8."""
    cum = np.cumsum(freq) / np.sum(freq)
    u = np.random.default_rng(seed).random(tuple(shape))
    return np.minimum(np.searchsorted(cum, u, side='right'), len(freq) - 1).astype(np.uint8)


def _joint_counts(images: np.ndarray, masks: np.ndarray, num_classes: int,
                  chunk: int = 64) -> np.ndarray:
    """(256, num_classes) int64 pixel counts of (gray value, label), a chunk at a time."""
    counts = np.zeros(256 * num_classes, np.int64)
    for i in range(0, len(images), chunk):
        key = images[i:i + chunk].astype(np.int64).ravel() * num_classes \
            + masks[i:i + chunk].astype(np.int64).ravel()
        counts += np.bincount(key, minlength=256 * num_classes)
    return counts.reshape(256, num_classes)


def intensity_lut(train_images: np.ndarray, train_masks: np.ndarray,
                  num_classes: int) -> np.ndarray:
    """(256,) uint8: for each gray value the most frequent training label of pixels with
    that value (background for unseen values). ``lut[image]`` is the best per-pixel
    intensity rule for pixel accuracy on the training set (it contains every threshold)."""
    counts = _joint_counts(train_images, train_masks, num_classes)
    lut = counts.argmax(axis=1)
    lut[counts.sum(axis=1) == 0] = 0
    return lut.astype(np.uint8)


def best_threshold(train_images: np.ndarray, train_masks: np.ndarray) -> Tuple[int, bool, int]:
    """(t, above, label): the gray-level threshold and side that maximise the training
    foreground IoU of ``(image > t) if above else (image <= t)`` against ``mask > 0``, and
    the most frequent training garment label, to paint the foreground with."""
    counts = _joint_counts(train_images, train_masks, int(train_masks.max()) + 1)
    n_fg, n_bg = counts[:, 1:].sum(axis=1), counts[:, 0]
    total_fg = n_fg.sum()
    best = (-1.0, 0, True)
    for above in (True, False):
        # pixels predicted garment for each t: values > t (above) or <= t
        tp = np.cumsum(n_fg[::-1])[::-1][1:] if above else np.cumsum(n_fg)[:-1]
        fp = np.cumsum(n_bg[::-1])[::-1][1:] if above else np.cumsum(n_bg)[:-1]
        iou = tp / np.maximum(total_fg + fp, 1)
        t = int(iou.argmax())
        if iou[t] > best[0]:
            best = (float(iou[t]), t, above)
    per_label = counts.sum(axis=0)[1:]
    label = int(per_label.argmax()) + 1 if per_label.sum() else 1
    return best[1], best[2], label


def apply_threshold(images: np.ndarray, t: int, above: bool, label: int) -> np.ndarray:
    """Predictions of ``best_threshold``'s rule: ``label`` where the rule fires, else 0."""
    fires = images > t if above else images <= t
    return np.where(fires, label, 0).astype(np.uint8)


# ------------------------------------------------------------------ classification

def _features(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape(len(x), -1).astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)


def nearest_centroid(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """(N_test,) int64: the class whose training mean (raw pixels, uint8 scaled to 0..1)
    is nearest in L2 to each test sample. ``train_x`` (N, ...) uint8 or float."""
    a, b = _features(train_x).astype(np.float64), _features(test_x).astype(np.float64)
    classes = np.unique(train_y)
    centres = np.stack([a[train_y == c].mean(axis=0) for c in classes])
    d = (centres * centres).sum(axis=1)[None, :] - 2.0 * b @ centres.T
    return classes[d.argmin(axis=1)].astype(np.int64)


def logistic_regression(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                        weight_decay: float = 1e-4, max_iter: int = 100) -> np.ndarray:
    """(N_test,) int64: multinomial logistic regression on raw pixels (uint8 scaled to
    0..1, centred by the training mean), full-batch L-BFGS on the mean cross-entropy plus
    ``weight_decay / 2 * |W|^2`` (bias not decayed), from zero weights: deterministic."""
    import torch

    mean = _features(train_x).mean(axis=0)
    a = torch.from_numpy(_features(train_x) - mean).double()
    b = torch.from_numpy(_features(test_x) - mean).double()
    classes = np.unique(train_y)
    y = torch.from_numpy(np.searchsorted(classes, train_y).astype(np.int64))
    weight = torch.zeros(a.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(a @ weight + bias, y) \
            + 0.5 * weight_decay * (weight * weight).sum()
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # L-BFGS's many small vector ops crawl when threads contend
    try:
        opt.step(closure)
        with torch.no_grad():
            return classes[(b @ weight + bias).argmax(dim=1).numpy()].astype(np.int64)
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------- detection

def _kmeans_sizes(wh: np.ndarray, k: int, iters: int = 30) -> np.ndarray:
    """k (w, h) cluster centres of box sizes, initialised at area quantiles:
    deterministic. (k', 2) float64 with k' <= k (empty clusters dropped)."""
    order = np.argsort(wh[:, 0] * wh[:, 1], kind='stable')
    centres = wh[order[((np.arange(k) + 0.5) * len(wh) / k).astype(int)]].astype(np.float64)
    for _ in range(iters):
        d = ((wh[:, None, :] - centres[None]) ** 2).sum(axis=2)
        assign = d.argmin(axis=1)
        centres = np.stack([wh[assign == j].mean(axis=0) if np.any(assign == j) else centres[j]
                            for j in range(len(centres))])
    d = ((wh[:, None, :] - centres[None]) ** 2).sum(axis=2)
    used = np.unique(d.argmin(axis=1))
    return centres[used]


def box_prior(train_boxes: Sequence[np.ndarray], train_labels: Sequence[np.ndarray],
              train_hw: Tuple[int, int], hw: Optional[Tuple[int, int]] = None,
              num_sizes: int = 5, stride: int = 8, per_class: int = 100) -> Detections:
    """The same detections for every image, from training box statistics only.

    Training boxes are binned by centre (cells of a ``stride`` grid) and by size (the
    nearest of ``num_sizes`` k-means (w, h) centres). Every occupied (cell, size) bin gives
    one candidate box: that k-means size, centred at the mean centre of the bin's boxes;
    its score for class c is P(bin) x P(c), both frequencies over the training boxes
    (position/size and class taken as independent). The ``per_class`` best candidates
    are emitted for every class. When the validation canvas ``hw`` differs from
    ``train_hw``, centres are scaled to it (relative position kept) and sizes kept in
    pixels (garments keep their pixel size across canvases). Returns (boxes (K, 4)
    float32 x1y1x2y2 clipped to the canvas, scores (K,) float32, labels (K,) int64)."""
    hw = tuple(train_hw if hw is None else hw)
    boxes = np.concatenate([np.asarray(b, np.float64).reshape(-1, 4) for b in train_boxes])
    labels = np.concatenate([np.asarray(lab, np.int64).ravel() for lab in train_labels])
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    wh = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    sizes = _kmeans_sizes(wh, num_sizes)
    size_of = ((wh[:, None, :] - sizes[None]) ** 2).sum(axis=2).argmin(axis=1)
    gw = int(np.ceil(train_hw[1] / stride))
    cy, cx = (centre[:, 1] // stride).astype(np.int64), (centre[:, 0] // stride).astype(np.int64)
    cell = cy * gw + cx
    bins, inverse, counts = np.unique(cell * len(sizes) + size_of, return_inverse=True,
                                      return_counts=True)
    mean_centre = np.stack([np.bincount(inverse, weights=centre[:, i]) / counts for i in (0, 1)],
                           axis=1) * [hw[1] / train_hw[1], hw[0] / train_hw[0]]
    half = sizes[bins % len(sizes)] / 2
    cand = np.concatenate([mean_centre - half, mean_centre + half], axis=1)
    cand[:, [0, 2]] = np.clip(cand[:, [0, 2]], 0, hw[1])
    cand[:, [1, 3]] = np.clip(cand[:, [1, 3]], 0, hw[0])
    score = counts / len(boxes)
    keep = np.argsort(-score, kind='stable')[:per_class]
    classes, class_counts = np.unique(labels, return_counts=True)
    out_b = np.concatenate([cand[keep]] * len(classes))
    out_s = np.concatenate([score[keep] * n / len(labels) for n in class_counts])
    out_l = np.repeat(classes, len(keep))
    return out_b.astype(np.float32), out_s.astype(np.float32), out_l.astype(np.int64)


def random_boxes(train_boxes: Sequence[np.ndarray], train_labels: Sequence[np.ndarray],
                 hw: Tuple[int, int], num_images: int, seed: int,
                 per_image: int = 100) -> List[Detections]:
    """``per_image`` random detections per image: a (w, h) drawn from the training boxes,
    placed uniformly inside the ``hw`` canvas, a class drawn with the training class
    frequencies, a uniform random score. One (boxes, scores, labels) per image."""
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([np.asarray(b, np.float64).reshape(-1, 4) for b in train_boxes])
    labels = np.concatenate([np.asarray(lab, np.int64).ravel() for lab in train_labels])
    wh = np.minimum(boxes[:, 2:] - boxes[:, :2], [hw[1], hw[0]])
    out = []
    for _ in range(num_images):
        pick = rng.integers(0, len(wh), per_image)
        w, h = wh[pick, 0], wh[pick, 1]
        x1 = rng.uniform(0, 1, per_image) * (hw[1] - w)
        y1 = rng.uniform(0, 1, per_image) * (hw[0] - h)
        b = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)
        out.append((b, rng.uniform(0, 1, per_image).astype(np.float32),
                    labels[rng.integers(0, len(labels), per_image)]))
    return out


def copy_boxes(train_boxes: Sequence[np.ndarray], train_labels: Sequence[np.ndarray],
               neighbours: np.ndarray, train_hw: Tuple[int, int],
               hw: Tuple[int, int]) -> List[Detections]:
    """The boxes and labels of each query image's nearest training image (``neighbours``
    from ``nearest_neighbours``), score 1, scaled by the canvas ratio if it differs."""
    sx, sy = hw[1] / train_hw[1], hw[0] / train_hw[0]
    out = []
    for j in neighbours:
        b = np.asarray(train_boxes[j], np.float32).reshape(-1, 4) * np.float32([sx, sy, sx, sy])
        out.append((b, np.ones(len(b), np.float32), np.asarray(train_labels[j], np.int64)))
    return out


def coco_map(gt_boxes: Sequence[np.ndarray], gt_labels: Sequence[np.ndarray],
             detections: Sequence[Detections], hw: Tuple[int, int], num_classes: int,
             max_dets: Sequence[int] = (100, 300, 1000)) -> Dict[str, float]:
    """COCO box AP with pycocotools, set up as MMDetection's ``CocoMetric``: maxDets
    (100, 300, 1000) (so AP is read at 1000 detections per image and class), IoU
    thresholds 0.50:0.95, boxes as x, y, w, h. Per image: ground truth (N, 4) x1y1x2y2 and
    labels 0..num_classes-1; detections (boxes (K, 4), scores (K,), labels (K,)).
    Returns fractions: ``dict(bbox_mAP=stats[0], bbox_mAP_50=stats[1])`` (MMDet rounds
    them to 3 places); both 0 when there are no detections."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from .fmnist_scenes import coco_dict

    entries = [(f'{i}.png', hw[0], hw[1], b, lab)
               for i, (b, lab) in enumerate(zip(gt_boxes, gt_labels))]
    gt = coco_dict(entries)
    gt['categories'] = [dict(id=c + 1, name=str(c)) for c in range(num_classes)]
    results = []
    for image_id, (b, s, l) in enumerate(detections, 1):
        b = np.asarray(b, np.float64).reshape(-1, 4)
        for (x1, y1, x2, y2), score, label in zip(b.tolist(), np.asarray(s).tolist(),
                                                  np.asarray(l).tolist()):
            results.append(dict(image_id=image_id, category_id=int(label) + 1,
                                bbox=[x1, y1, x2 - x1, y2 - y1], score=float(score)))
    if not results:
        return dict(bbox_mAP=0.0, bbox_mAP_50=0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO()
        api.dataset = gt
        api.createIndex()
        ev = COCOeval(api, api.loadRes(results), 'bbox')
        ev.params.catIds = list(range(1, num_classes + 1))
        ev.params.imgIds = list(range(1, len(entries) + 1))
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # a stat of -1 means no ground truth at all: report it as 0
    return dict(bbox_mAP=max(float(ev.stats[0]), 0.0), bbox_mAP_50=max(float(ev.stats[1]), 0.0))
