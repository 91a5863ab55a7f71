"""The Fashion-MNIST scene generator on small synthetic "garments" (no download):
determinism, train/val separation, labels consistent with the pixels, object scale
independent of the canvas, counts scaling with the area, backgrounds that share the
garments' intensities, and the resumable writer."""
import dataclasses
import json

import numpy as np
import pytest

from gfnet_dense.datasets import fmnist_scenes as F


def _garments(n: int, seed: int, shape: str) -> np.ndarray:
    """n 28x28 uint8 images: a filled ellipse ('ellipse') or a plus sign ('plus') with
    random extent and a random texture of values 40..255 on a zero background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        ry, rx = rng.uniform(6, 13, 2)
        if shape == 'ellipse':
            inside = ((yy - 13.5) / ry) ** 2 + ((xx - 13.5) / rx) ** 2 <= 1
        else:
            inside = ((np.abs(yy - 13.5) <= ry) & (np.abs(xx - 13.5) <= 3)) | \
                ((np.abs(xx - 13.5) <= rx) & (np.abs(yy - 13.5) <= 3))
        out[i][inside] = rng.integers(40, 256, int(inside.sum()))
    return out


TRAIN = (_garments(60, 1, 'ellipse'), np.arange(60) % 10)
VAL = (_garments(20, 2, 'plus'), (np.arange(20) * 3) % 10)


class Loader:
    """Stands in for ``split_arrays``; remembers which splits were asked for."""

    def __init__(self):
        self.asked = []

    def __call__(self, split):
        self.asked.append(split)
        return {'train': TRAIN, 'val': VAL}[split]


SPEC = F.SceneSpec(canvas_hw=(64, 64), object_px=(14, 22), count=(2, 5), count_area=64 * 64)


def _same(a: F.Scene, b: F.Scene) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_same_spec_and_index_give_the_same_scene_and_others_differ():
    a = F.make_scene(SPEC, 3, *TRAIN)
    b = F.make_scene(SPEC, 3, *TRAIN)
    assert _same(a, b)
    assert a.image.dtype == np.uint8 and a.image.shape == (64, 64)
    assert a.mask.dtype == np.uint8 and a.boxes.dtype == np.float32
    assert a.boxes.shape == (len(a.box_labels), 4) and a.box_labels.dtype == np.int64
    c = F.make_scene(SPEC, 4, *TRAIN)
    assert not np.array_equal(a.image, c.image)
    d = F.make_scene(dataclasses.replace(SPEC, seed=1), 3, *TRAIN)
    assert not np.array_equal(a.image, d.image)


def test_validation_scenes_ignore_the_training_seed():
    loader = Loader()
    val0 = F.make_split(SPEC, 'val', 3, loader)
    val7 = F.make_split(dataclasses.replace(SPEC, seed=7), 'val', 3, loader)
    assert all(_same(a, b) for a, b in zip(val0, val7))
    tr0 = F.make_split(SPEC, 'train', 3, loader)
    tr7 = F.make_split(dataclasses.replace(SPEC, seed=7), 'train', 3, loader)
    assert not all(np.array_equal(a.image, b.image) for a, b in zip(tr0, tr7))
    assert F.scene_seed(SPEC, 'val') == F.VAL_SEED and F.scene_seed(SPEC, 'train') == 0
    with pytest.raises(ValueError):
        F.scene_seed(SPEC, 'test')


def _rebuild(scene: F.Scene, images: np.ndarray, spec: F.SceneSpec):
    """Each instance's visible pixels must be those of its recorded source image,
    resized to its recorded size and placed at its recorded offset."""
    h, w = spec.canvas_hw
    for k, (src, size, (oy, ox)) in enumerate(zip(scene.sources, scene.sizes, scene.offsets)):
        pix, alpha = F.garment(images[src], int(size), spec.alpha_threshold)
        canvas = np.zeros((h + 2 * size, w + 2 * size), np.uint8)
        placed = np.zeros(canvas.shape, bool)
        canvas[oy + size:oy + 2 * size, ox + size:ox + 2 * size] = pix
        placed[oy + size:oy + 2 * size, ox + size:ox + 2 * size] = alpha
        canvas, placed = canvas[size:size + h, size:size + w], placed[size:size + h, size:size + w]
        mine = scene.instances == k + 1
        if not (np.all(placed[mine]) and np.array_equal(scene.image[mine], canvas[mine])):
            return False
        if placed.sum() != alpha.sum():  # the whole garment lies on the canvas
            return False
    return True


@pytest.mark.parametrize('background', ['noise', 'clutter'])
def test_validation_scenes_use_only_validation_images(background):
    spec = dataclasses.replace(SPEC, background=background)
    loader = Loader()
    scenes = F.make_split(spec, 'val', 6, loader)
    assert loader.asked == ['val']
    for s in scenes:
        assert len(s.sources) and s.sources.max() < len(VAL[0])
        assert np.array_equal(s.box_labels, VAL[1][s.sources])
        assert _rebuild(s, VAL[0], spec)
        assert not _rebuild(s, TRAIN[0], spec)  # the check can tell the splits apart
        if background == 'clutter':
            assert len(s.background_sources) and s.background_sources.max() < len(VAL[0])
    assert F.make_split(spec, 'train', 1, loader) and loader.asked == ['val', 'train']


def _full_box(scene, k, images, spec):
    _, alpha = F.garment(images[scene.sources[k]], int(scene.sizes[k]), spec.alpha_threshold)
    ys, xs = np.nonzero(alpha)
    oy, ox = scene.offsets[k]
    return (ox + xs.min(), oy + ys.min(), ox + xs.max() + 1, oy + ys.max() + 1), alpha.sum()


def test_masks_boxes_and_instances_agree():
    spec = dataclasses.replace(SPEC, count=(4, 6), max_box_iou=0.3, min_visible=0.6)
    occluded = 0
    for i in range(8):
        s = F.make_scene(spec, i, *TRAIN)
        assert np.array_equal(s.mask == 0, s.instances == 0)
        full = []
        for k, (box, label) in enumerate(zip(s.boxes, s.box_labels)):
            mine = s.instances == k + 1
            ys, xs = np.nonzero(mine)
            # the box bounds the instance's visible pixels tightly, x2/y2 exclusive
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert np.all(s.mask[mine] == label + 1)
            fb, area = _full_box(s, k, TRAIN[0], spec)
            full.append(fb)
            assert mine.sum() >= spec.min_visible * area
            occluded += int(mine.sum() < area)
        for a in range(len(full)):
            for b in range(a):
                assert F._iou(full[a], full[b]) <= spec.max_box_iou
    assert occluded > 0  # occlusion did happen, so the visible-pixel rules were exercised


def test_object_scale_does_not_depend_on_the_canvas():
    areas = {}
    for side in (48, 160):
        spec = dataclasses.replace(SPEC, canvas_hw=(side, side), object_px=(20, 20),
                                   max_box_iou=0.0)
        for i in range(3):
            s = F.make_scene(spec, i, *TRAIN)
            assert np.all(s.sizes == 20)
            for k, src in enumerate(s.sources):
                _, alpha = F.garment(TRAIN[0][src], 20)
                visible = s.instances == k + 1
                assert visible.sum() == alpha.sum()  # no overlap: the whole garment shows
                box = s.boxes[k]
                areas.setdefault(int(src), set()).add((box[2] - box[0], box[3] - box[1]))
    assert all(len(v) == 1 for v in areas.values())  # same source, same pixel size anywhere


def test_counts_scale_with_the_canvas_area():
    base = dataclasses.replace(SPEC, object_px=(10, 10), count=(2, 2), count_area=64 * 64)
    for side, expected in ((64, 2), (128, 8), (256, 32)):
        spec = dataclasses.replace(base, canvas_hw=(side, side))
        assert F.count_range(spec) == (expected, expected)
        assert [len(F.make_scene(spec, i, *TRAIN).boxes) for i in range(2)] == [expected] * 2
    spec = dataclasses.replace(SPEC, count=(2, 6), canvas_hw=(128, 128))
    assert F.count_range(spec) == (8, 24)


def test_background_shares_the_garment_intensities():
    for i in range(4):
        s = F.make_scene(SPEC, i, *TRAIN)
        fg = s.instances > 0
        q = np.linspace(0.05, 0.95, 19)
        gap = np.abs(np.quantile(s.image[fg], q) - np.quantile(s.image[~fg], q))
        assert gap.max() <= 3, gap
    flat = F.make_scene(dataclasses.replace(SPEC, background='flat'), 0, *TRAIN)
    assert np.all(flat.image[flat.instances == 0] == 0)


def test_spec_checks_and_json_round_trip():
    with pytest.raises(ValueError):
        F.SceneSpec(canvas_hw=(32, 32), object_px=(28, 40))
    with pytest.raises(ValueError):
        F.SceneSpec(background='stripes')
    assert F.SceneSpec.from_json(json.loads(json.dumps(SPEC.to_json()))) == SPEC


def test_resize_keeps_constants_and_averages_when_shrinking():
    for n_out in (7, 28, 41):
        r = F.resize_matrix(28, n_out)
        assert r.shape == (n_out, 28) and np.allclose(r.sum(axis=1), 1)
    img = np.full((28, 28), 200, np.uint8)
    assert np.all(F.garment(img, 37)[0] == 200) and np.all(F.garment(img, 9)[0] == 200)


def test_writer_layout_coco_and_skip(tmp_path):
    loader = Loader()
    out = F.write_scene_dataset(tmp_path / 'scenes', SPEC, 3, 2, loader=loader)
    for split, n in (('train', 3), ('val', 2)):
        assert len(list((out / 'img_dir' / split).glob('*.png'))) == n
        assert len(list((out / 'ann_dir' / split).glob('*.png'))) == n
        coco = json.loads((out / 'annotations' / f'{split}.json').read_text())
        assert [c['id'] for c in coco['categories']] == list(range(1, 11))
        scenes = F.make_split(SPEC, split, n, Loader())
        assert len(coco['annotations']) == sum(len(s.boxes) for s in scenes)
        first = [a for a in coco['annotations'] if a['image_id'] == 1]
        x1, y1, x2, y2 = scenes[0].boxes[0].tolist()
        assert first[0]['bbox'] == [x1, y1, x2 - x1, y2 - y1]
        assert first[0]['category_id'] == scenes[0].box_labels[0] + 1
    from PIL import Image
    ann = np.array(Image.open(out / 'ann_dir' / 'val' / '00001.png'))
    assert np.array_equal(ann, F.make_split(SPEC, 'val', 2, Loader())[1].mask)
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['classes'][0] == 'background' and len(meta['sources']['val']) == 2
    stamp = (out / 'img_dir' / 'val' / '00000.png').stat().st_mtime_ns
    F.write_scene_dataset(out, SPEC, 3, 2, loader=loader)  # complete: skipped
    assert loader.asked == ['train', 'val']
    assert (out / 'img_dir' / 'val' / '00000.png').stat().st_mtime_ns == stamp
    F.write_scene_dataset(out, SPEC, 2, 2, channels=3, loader=loader)  # another request: redone
    assert len(list((out / 'img_dir' / 'train').glob('*.png'))) == 2
    assert np.array(Image.open(out / 'img_dir' / 'train' / '00000.png')).shape == (64, 64, 3)
