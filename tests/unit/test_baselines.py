"""The trivial baselines and their metrics on small hand-made data with known answers."""
import numpy as np
import pytest

from gfnet_dense.datasets import baselines as B


def test_seg_metrics_match_a_hand_computed_example_with_an_absent_class():
    # 4 classes; class 3 is in neither labels nor predictions: its IoU is nan, left out
    label = np.array([[0, 0, 1, 1],
                      [0, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1],
                     [0, 2, 0, 0]])  # the last pixel is ignored (label 255)
    m = B.seg_metrics([pred], [label], num_classes=4)
    # class 0: inter 2 (px 0,0 and 1,0), union = pred{0,0; 1,0; 1,2} + label{0,0; 0,1; 1,0} - 2 = 4
    # class 1: inter 2, union 3 ; class 2: inter 1, union 2 ; class 3: union 0 -> nan
    assert np.allclose(m['IoU'][:3], [2 / 4, 2 / 3, 1 / 2]) and np.isnan(m['IoU'][3])
    assert m['mIoU'] == pytest.approx((2 / 4 + 2 / 3 + 1 / 2) / 3)
    assert m['aAcc'] == pytest.approx(5 / 7)
    # a class predicted but never labelled has union > 0 and IoU 0: it counts
    pred2 = pred.copy()
    pred2[0, 0] = 3
    m2 = B.seg_metrics([pred2], [label], num_classes=4)
    assert m2['IoU'][3] == 0 and m2['mIoU'] == pytest.approx(np.mean(m2['IoU']))


def test_seg_metrics_sum_over_the_set_before_dividing():
    a_label, a_pred = np.array([[1, 1, 1, 1]]), np.array([[1, 1, 1, 1]])  # IoU 1 on its own
    b_label, b_pred = np.array([[1, 0, 0, 0]]), np.array([[0, 0, 0, 1]])  # class 1 IoU 0
    m = B.seg_metrics([a_pred, b_pred], [a_label, b_label], num_classes=2)
    assert m['IoU'][1] == pytest.approx(4 / 6) and m['IoU'][0] == pytest.approx(2 / 4)


def test_location_prior_finds_the_known_layout_and_resizes():
    masks = np.zeros((4, 4, 6), np.uint8)
    masks[:3, :, :3] = 2  # left half is class 2 in 3 of 4 images
    masks[:, 3, :] = 1    # the bottom row is class 1 everywhere
    prior = B.location_prior(masks, num_classes=3)
    expected = np.zeros((4, 6), np.uint8)
    expected[:, :3] = 2
    expected[3] = 1
    assert np.array_equal(prior, expected)
    pred = B.apply_location_prior(prior, 2, (8, 12))  # canvas twice as large: resized
    assert pred.shape == (2, 8, 12) and np.array_equal(pred[1], np.kron(expected, np.ones((2, 2))))


def test_nearest_image_copy_returns_the_label_of_a_duplicated_image():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 32, 32)).astype(np.uint8)
    masks = rng.integers(0, 11, (30, 32, 32)).astype(np.uint8)
    query = images[[7, 21, 3]]
    pred, idx = B.nearest_image_labels(images, masks, query, side=16)
    assert idx.tolist() == [7, 21, 3] and np.array_equal(pred, masks[[7, 21, 3]])


def test_intensity_rules_solve_a_flat_background_and_fail_a_matched_one():
    rng = np.random.default_rng(1)
    masks = np.zeros((20, 16, 16), np.uint8)
    masks[:, 4:10, 5:12] = 3
    fg = masks > 0
    flat = np.where(fg, rng.integers(60, 256, masks.shape), 0).astype(np.uint8)
    t, above, label = B.best_threshold(flat, masks)
    assert above and t < 60 and label == 3
    assert B.foreground_iou(B.apply_threshold(flat, t, above, label), masks) == 1.0
    lut = B.intensity_lut(flat, masks, 4)
    assert B.seg_metrics(lut[flat], masks, 4)['mIoU'] == 1.0
    # background drawn from the garment values: no threshold beats "all garment"
    matched = rng.integers(60, 256, masks.shape).astype(np.uint8)
    t, above, label = B.best_threshold(matched, masks)
    iou = B.foreground_iou(B.apply_threshold(matched, t, above, label), masks)
    assert iou < fg.mean() + 0.05


def _linear_not_centroid(n, rng):
    """Class 0: x1 = +1, x0 exponential with mean 10; class 1: x1 = -1, x0 ~ N(0, 1).
    The line x1 = 0 separates them; nearest mean ((10, 1) vs (0, -1)) calls every class-0
    point with x0 < 4.8 class 1: about 38% of class 0."""
    x0 = np.concatenate([rng.exponential(10.0, n), rng.normal(0, 1, n)])
    x1 = np.concatenate([np.full(n, 1.0), np.full(n, -1.0)]) + rng.normal(0, 0.1, 2 * n)
    x = np.stack([x0, x1], axis=1) / 20
    return x.astype(np.float32), np.repeat([0, 1], n)


def test_logistic_regression_beats_nearest_centroid_where_only_a_line_separates():
    rng = np.random.default_rng(0)
    tr_x, tr_y = _linear_not_centroid(300, rng)
    te_x, te_y = _linear_not_centroid(300, rng)
    lr = B.top1(B.logistic_regression(tr_x, tr_y, te_x, weight_decay=0.0), te_y)
    nc = B.top1(B.nearest_centroid(tr_x, tr_y, te_x), te_y)
    assert lr >= 0.99 and nc < 0.85, (lr, nc)


def test_classifiers_keep_the_label_values():
    x = np.array([[0, 0], [0, 1], [5, 5], [5, 6]], np.float32)
    y = np.array([3, 3, 8, 8])
    assert B.nearest_centroid(x, y, x).tolist() == [3, 3, 8, 8]
    assert B.logistic_regression(x, y, x).tolist() == [3, 3, 8, 8]


def test_coco_map_on_a_hand_example():
    gt_boxes = [np.array([[10, 10, 30, 30], [40, 40, 60, 70]], np.float32)]
    gt_labels = [np.array([0, 1])]
    dets = [(np.array([[10, 10, 30, 30],     # class 0, exact: TP
                       [0, 0, 20, 20],       # class 1, wrong place, higher score: FP
                       [41, 41, 60, 70]],    # class 1, IoU 0.9: TP after the FP
                      np.float32),
             np.array([0.9, 0.8, 0.5], np.float32), np.array([0, 1, 1]))]
    m = B.coco_map(gt_boxes, gt_labels, dets, (80, 80), num_classes=2)
    # AP class 0 = 1; class 1: precision 1/2 at recall 1 -> AP 0.5; mAP@50 = 0.75
    assert m['bbox_mAP_50'] == pytest.approx(0.75)
    far = [(np.array([[50, 0, 70, 20]], np.float32), np.array([1.0], np.float32), np.array([0]))]
    assert B.coco_map(gt_boxes, gt_labels, far, (80, 80), 2)['bbox_mAP_50'] == 0
    assert B.coco_map(gt_boxes, gt_labels, [(np.zeros((0, 4)), np.zeros(0), np.zeros(0))],
                      (80, 80), 2)['bbox_mAP_50'] == 0


def test_box_prior_on_a_hand_example():
    # class 2 at A in all 10 training images, class 5 at B in 4 of them
    a, b = [8, 8, 24, 24], [40, 16, 56, 48]
    boxes = [np.array([a, b] if i < 4 else [a], np.float32) for i in range(10)]
    labels = [np.array([2, 5] if i < 4 else [2]) for i in range(10)]
    pb, ps, pl = B.box_prior(boxes, labels, (64, 64), num_sizes=2, stride=8)
    # one candidate per occupied (cell, size) bin, for each class: A (p 10/14), B (4/14)
    assert pb.tolist() == [a, b, a, b] and pl.tolist() == [2, 2, 5, 5]
    assert np.allclose(ps, np.array([10, 4, 10, 4]) / 14 * np.array([10, 10, 4, 4]) / 14)
    # scored on the 4 images that hold both: class 2 AP 1 (its FP at B comes after all
    # TPs); class 5: 4 FPs at A outscore the 4 TPs at B -> precision 1/2 -> AP 0.5
    m = B.coco_map(boxes[:4], labels[:4], [(pb, ps, pl)] * 4, (64, 64), num_classes=6)
    assert m['bbox_mAP_50'] == pytest.approx(0.75)
    # on a canvas twice as wide the centres move with it, the sizes stay in pixels
    wb, _, _ = B.box_prior(boxes, labels, (64, 64), (64, 128), num_sizes=2, stride=8)
    assert wb[0].tolist() == [24, 8, 40, 24]


def test_random_boxes_repeat_per_seed_and_score_low():
    boxes = [np.array([[8, 8, 24, 24], [40, 16, 56, 48]], np.float32)] * 10
    labels = [np.array([2, 5])] * 10
    r0 = B.random_boxes(boxes, labels, (64, 64), 3, seed=0, per_image=5)
    r0b = B.random_boxes(boxes, labels, (64, 64), 3, seed=0, per_image=5)
    r1 = B.random_boxes(boxes, labels, (64, 64), 3, seed=1, per_image=5)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(r0, r0b))
    assert not np.array_equal(r0[0][0], r1[0][0])
    assert all(np.all(x[0][:, 2:] <= 64) and np.all(x[0][:, :2] >= 0) for x in r0)
    assert B.coco_map(boxes[:3], labels[:3], r0, (64, 64), 6)['bbox_mAP_50'] < 0.5


def test_copy_boxes_scales_to_another_canvas():
    boxes = [np.array([[8, 8, 24, 24]], np.float32), np.array([[0, 0, 4, 4]], np.float32)]
    labels = [np.array([1]), np.array([2])]
    (b, s, l), = B.copy_boxes(boxes, labels, np.array([0]), (32, 32), (64, 32))
    assert b.tolist() == [[8, 16, 24, 48]] and s.tolist() == [1.0] and l.tolist() == [1]


def test_random_pixels_follow_the_frequencies_and_the_seed():
    freq = B.label_frequencies(np.array([[0, 0, 0, 2]]), 3)
    assert freq.tolist() == [0.75, 0.0, 0.25]
    a = B.random_pixels(freq, (50, 40), seed=3)
    assert np.array_equal(a, B.random_pixels(freq, (50, 40), seed=3))
    assert not np.array_equal(a, B.random_pixels(freq, (50, 40), seed=4))
    assert set(np.unique(a)) == {0, 2} and abs((a == 2).mean() - 0.25) < 0.03
