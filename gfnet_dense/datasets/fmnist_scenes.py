"""Dense scenes built from real Fashion-MNIST photographs, for segmentation and detection.

Every scene is a grayscale canvas with a few garments (the 28x28 Fashion-MNIST images,
resized) pasted at random positions over a background that has the *same intensity
distribution as the garments of that scene*, so that no per-pixel intensity rule
separates garment from background: a model has to use shape and texture (the garments
are sharp, detailed photographs; the backgrounds are smooth noise, optionally with
blurred garment fragments).

Splits: training scenes use the 60,000 training images only, validation scenes the
10,000 test images only (``split_arrays``). The validation scenes depend on the spec's
geometry but never on its ``seed``: they are drawn with the fixed ``VAL_SEED``, so every
training seed is scored on the same validation set. Scene ``i`` of a split depends only on
(spec, split seed, ``i``): scenes can be made in any order, in parallel, or resumed.

Labels: a garment's pixels are those of its own alpha, ``resized > spec.alpha_threshold``
(holes in the garment with darker pixels are background); later garments occlude earlier
ones. ``mask`` holds ``0`` for background and ``1 + class`` (1..10, ``CLASSES`` order)
for the visible pixels of a garment; ``boxes`` are the tight bounds of each instance's
*visible* pixels, ``x1, y1, x2, y2`` in pixel-edge coordinates (``x2``/``y2`` exclusive,
so ``x2 - x1`` is the width in pixels); ``box_labels`` is the Fashion-MNIST class 0..9
(the COCO category id written to disk is ``class + 1``, equal to the mask value).

Scale: ``object_px`` is the side of the resized 28x28 garment square in pixels, whatever
the canvas; the number of garments is drawn from ``count`` per ``count_area`` pixels, so a
canvas of twice the side holds about four times as many garments of the same size.

Writer (``write_scene_dataset``) layout, MMSegmentation's custom layout plus COCO::

    img_dir/{train,val}/NNNNN.png      H x W grayscale (or RGB with channels=3) uint8
    ann_dir/{train,val}/NNNNN.png      H x W uint8, 0 background, 1..10 garment class
    annotations/{train,val}.json       COCO boxes, category_id 1..10 (= mask value)
    meta.json                          classes, spec, counts, source indices per scene
    done.json                          what was asked; a rerun with the same skips
"""
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .fashion_mnist import CLASSES, LICENSE

SEG_CLASSES = ('background',) + CLASSES
VAL_SEED = 20_240_527  # the validation scenes' seed: fixed, independent of SceneSpec.seed
BACKGROUNDS = ('noise', 'clutter', 'flat')
_SPLIT_IDS = {'train': 0, 'val': 1}
_FORMAT = 1  # bump when the rendering changes, so written sets are remade


@dataclasses.dataclass(frozen=True)
class SceneSpec:
    """What a scene set looks like.

    canvas_hw: (H, W) of every scene in pixels.
    object_px: (lo, hi) inclusive range of the garment side in pixels: each 28x28
        Fashion-MNIST image is resized to ``s x s``, ``s`` uniform in the range, with the
        fixed linear (triangle, antialiased when shrinking) filter of ``resize_matrix``.
    count: (lo, hi) inclusive range of the number of garments asked for per
        ``count_area`` pixels; on a canvas of area A both ends are multiplied by
        ``A / count_area`` and rounded. A garment that finds no place within
        ``max_tries`` is left out (rare at the defaults).
    count_area: the area ``count`` refers to (default 128 * 128).
    max_box_iou: largest IoU allowed between the full (unoccluded) alpha boxes of two
        garments of a scene; 0 forbids any overlap.
    min_visible: smallest fraction of a garment's alpha that must stay visible after
        the later garments are pasted over it.
    background: ``'noise'`` (smooth multi-scale noise), ``'clutter'`` (that noise plus
        blurred fragments of other garments of the same split) or ``'flat'`` (zeros: the
        easy control, where a threshold solves figure-ground). Noise and clutter are
        remapped to the intensity histogram of the scene's own garment pixels.
    alpha_threshold: a resized garment pixel is part of the garment when above this.
    noise_cell: the noise background's coarsest cell, in mean garment sides (its finer
        octaves are 1/2 and 1/4 of it): small values give fine texture, large ones
        smooth blobs.
    seed: seed of the training scenes (validation uses ``VAL_SEED``).
    """
    canvas_hw: Tuple[int, int] = (128, 128)
    object_px: Tuple[int, int] = (28, 42)
    count: Tuple[int, int] = (2, 6)
    count_area: int = 128 * 128
    max_box_iou: float = 0.2
    min_visible: float = 0.6
    background: str = 'noise'
    alpha_threshold: int = 10
    noise_cell: float = 0.5
    max_tries: int = 50
    seed: int = 0

    def __post_init__(self):
        h, w = self.canvas_hw
        lo, hi = self.object_px
        if not 1 <= lo <= hi <= min(h, w):
            raise ValueError(f'object_px {self.object_px} must fit the canvas {self.canvas_hw}')
        if not 0 <= self.count[0] <= self.count[1] or self.count_area <= 0:
            raise ValueError(f'bad count {self.count} per {self.count_area} pixels')
        if self.background not in BACKGROUNDS:
            raise ValueError(f'background {self.background!r} not in {BACKGROUNDS}')

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> 'SceneSpec':
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class Scene(NamedTuple):
    """One scene; ``scene[:4]`` is ``(image, mask, boxes, box_labels)``.

    image: (H, W) uint8.
    mask: (H, W) uint8, 0 background, 1 + class for visible garment pixels.
    boxes: (N, 4) float32 ``x1, y1, x2, y2`` (x2, y2 exclusive) of the visible pixels.
    box_labels: (N,) int64 Fashion-MNIST class 0..9.
    instances: (H, W) int16, 0 background, k + 1 for the visible pixels of box k
        (boxes are in paste order: a later one occludes an earlier one).
    sources: (N,) int64 index of each garment's image in the split's image array.
    sizes: (N,) int64 side in pixels each garment image was resized to.
    offsets: (N, 2) int64 (y, x) of the top-left corner of each resized garment square
        on the canvas (the square may hang over the canvas edge where it is empty).
    background_sources: (M,) int64 split indices of the images whose blurred fragments
        make the clutter background (empty for the other backgrounds).
    """
    image: np.ndarray
    mask: np.ndarray
    boxes: np.ndarray
    box_labels: np.ndarray
    instances: np.ndarray
    sources: np.ndarray
    sizes: np.ndarray
    offsets: np.ndarray
    background_sources: np.ndarray


def scene_seed(spec: SceneSpec, split: str) -> int:
    """The seed scenes of ``split`` are drawn with: ``spec.seed`` or ``VAL_SEED``."""
    if split not in _SPLIT_IDS:
        raise ValueError(f'split {split!r} is not train or val')
    return spec.seed if split == 'train' else VAL_SEED


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64 linear-interpolation weights (pixel centres aligned as in
    ``align_corners=False``; a triangle filter widened by the shrink factor when
    shrinking, so it averages instead of skipping pixels). ``R @ x @ R.T`` resizes."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    w = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]) / support)
    return w / w.sum(axis=1, keepdims=True)


def garment(image: np.ndarray, size: int, alpha_threshold: int = 10
            ) -> Tuple[np.ndarray, np.ndarray]:
    """A 28x28 uint8 Fashion-MNIST image resized to ``(size, size)``:
    (pixels uint8 (size, size), alpha bool (size, size) = pixels > alpha_threshold)."""
    r = resize_matrix(image.shape[0], size)
    c = resize_matrix(image.shape[1], size)
    pixels = np.clip(np.rint(r @ image.astype(np.float64) @ c.T), 0, 255).astype(np.uint8)
    return pixels, pixels > alpha_threshold


def _box(alpha: np.ndarray) -> Tuple[int, int, int, int]:
    """Tight (x1, y1, x2, y2), x2/y2 exclusive, of the True pixels of a 2-D array."""
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _iou(a: Sequence[int], b: Sequence[int]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def count_range(spec: SceneSpec) -> Tuple[int, int]:
    """(lo, hi) garments asked for on ``spec.canvas_hw``: ``spec.count`` times the canvas
    area over ``spec.count_area``, rounded half up."""
    k = spec.canvas_hw[0] * spec.canvas_hw[1] / spec.count_area
    return int(np.floor(spec.count[0] * k + 0.5)), int(np.floor(spec.count[1] * k + 0.5))


def _smooth_noise(rng: np.random.Generator, hw: Tuple[int, int], cell: float) -> np.ndarray:
    """Gaussian values on a grid of ``cell``-pixel cells, linearly interpolated to hw,
    with a random sub-cell offset."""
    out = np.zeros(hw)
    for octave in (1.0, 0.5, 0.25):
        c = max(cell * octave, 2.0)
        gh, gw = int(np.ceil(hw[0] / c)) + 2, int(np.ceil(hw[1] / c)) + 2
        grid = rng.standard_normal((gh, gw))
        ys = rng.uniform(0, 1) + np.arange(hw[0]) / c
        xs = rng.uniform(0, 1) + np.arange(hw[1]) / c
        y0, x0 = ys.astype(int), xs.astype(int)
        fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
        top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
        bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
        out += (top * (1 - fy) + bottom * fy) * octave ** 0.5
    return out


def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) Gaussian blur weights, zeros beyond the ends (so content fades out there)."""
    d = np.arange(n)[:, None] - np.arange(n)[None, :]
    k = np.exp(-0.5 * (d / sigma) ** 2)
    return k / np.exp(-0.5 * (np.arange(-n, n + 1) / sigma) ** 2).sum()


def _match_histogram(field: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``field`` remapped by rank onto the sorted values of ``reference`` (uint8)."""
    ref = np.sort(reference.ravel())
    ranks = np.empty(field.size, np.int64)
    ranks[np.argsort(field.ravel(), kind='stable')] = np.arange(field.size)
    idx = np.rint(ranks * ((ref.size - 1) / max(field.size - 1, 1))).astype(np.int64)
    return ref[idx].reshape(field.shape).astype(np.uint8)


def _background(spec: SceneSpec, rng: np.random.Generator, images: np.ndarray,
                garment_pixels: np.ndarray, fg: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(H, W) uint8 background whose pixels outside ``fg`` have the intensity histogram
    of ``garment_pixels``, and the split indices of the images used for clutter."""
    hw = spec.canvas_hw
    if spec.background == 'flat' or garment_pixels.size == 0:
        return np.zeros(hw, np.uint8), np.zeros(0, np.int64)
    mean_px = 0.5 * (spec.object_px[0] + spec.object_px[1])
    field = _smooth_noise(rng, hw, cell=mean_px * spec.noise_cell)
    used = np.zeros(0, np.int64)
    if spec.background == 'clutter':
        # blurred fragments of other garments of the same split: a quarter to a half of a
        # garment image, magnified to garment size, blurred to lose its sharp outline
        k = count_range(spec)[1] * 2
        used = rng.integers(0, len(images), k)
        layer = np.zeros(hw)
        for j in used:
            h0, w0 = rng.integers(7, 15, 2)
            y, x = rng.integers(0, 28 - h0 + 1), rng.integers(0, 28 - w0 + 1)
            crop = images[j, y:y + h0, x:x + w0].astype(np.float64)
            side = int(rng.integers(spec.object_px[0], spec.object_px[1] + 1))
            inner = side - 2 * (side // 4)  # the crop, then a margin to fade into
            frag = np.zeros((side, side))
            frag[side // 4:side // 4 + inner, side // 4:side // 4 + inner] = \
                resize_matrix(h0, inner) @ crop @ resize_matrix(w0, inner).T
            g = _blur_matrix(side, sigma=side / 12)
            frag = g @ frag @ g.T
            oy = int(rng.integers(-side // 2, hw[0] - side // 2))
            ox = int(rng.integers(-side // 2, hw[1] - side // 2))
            ys = slice(max(oy, 0), min(oy + side, hw[0]))
            xs = slice(max(ox, 0), min(ox + side, hw[1]))
            part = frag[ys.start - oy:ys.stop - oy, xs.start - ox:xs.stop - ox]
            layer[ys, xs] = np.maximum(layer[ys, xs], part)
        field = field + layer / 64.0
    out = np.zeros(hw, np.uint8)
    out[~fg] = _match_histogram(field[~fg], garment_pixels)
    return out, used


def make_scene(spec: SceneSpec, index: int, images: np.ndarray, labels: np.ndarray,
               seed: Optional[int] = None) -> Scene:
    """Scene ``index`` drawn from ``images`` (N, 28, 28) uint8 and ``labels`` (N,) int
    with ``seed`` (default ``spec.seed``; ``scene_seed`` gives a split's seed). The same
    arguments give the same arrays; see ``Scene`` for shapes and dtypes."""
    seed = spec.seed if seed is None else seed
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    h, w = spec.canvas_hw
    lo, hi = count_range(spec)
    wanted = int(rng.integers(lo, hi + 1))
    instances = np.zeros((h, w), np.int16)
    pixels = np.zeros((h, w), np.uint8)
    full_areas: List[int] = []
    full_boxes: List[Tuple[int, int, int, int]] = []
    sources: List[int] = []
    sizes: List[int] = []
    offsets: List[Tuple[int, int]] = []
    for _ in range(wanted):
        src = int(rng.integers(0, len(images)))
        size = int(rng.integers(spec.object_px[0], spec.object_px[1] + 1))
        pix, alpha = garment(images[src], size, spec.alpha_threshold)
        if not alpha.any():
            continue
        ax1, ay1, ax2, ay2 = _box(alpha)
        alpha_c = alpha[ay1:ay2, ax1:ax2]
        pix_c = pix[ay1:ay2, ax1:ax2]
        bh, bw = ay2 - ay1, ax2 - ax1
        for _ in range(spec.max_tries):
            y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
            box = (x, y, x + bw, y + bh)
            if any(_iou(box, b) > spec.max_box_iou for b in full_boxes):
                continue
            window = instances[y:y + bh, x:x + bw]
            covered = np.bincount(window[alpha_c], minlength=len(full_boxes) + 1)[1:]
            visible = np.bincount(instances.ravel(), minlength=len(full_boxes) + 1)[1:]
            if full_areas and np.any((visible - covered) < spec.min_visible * np.array(full_areas)):
                continue
            window[alpha_c] = len(full_boxes) + 1
            pixels[y:y + bh, x:x + bw][alpha_c] = pix_c[alpha_c]
            full_boxes.append(box)
            full_areas.append(int(alpha_c.sum()))
            sources.append(src)
            sizes.append(size)
            offsets.append((y - ay1, x - ax1))
            break
    fg = instances > 0
    background, used = _background(spec, rng, images, pixels[fg], fg)
    image = np.where(fg, pixels, background).astype(np.uint8)
    src_arr = np.asarray(sources, np.int64)
    box_labels = np.asarray(labels, np.int64)[src_arr] if len(src_arr) else np.zeros(0, np.int64)
    lut = np.concatenate([[0], box_labels + 1]).astype(np.uint8)
    mask = lut[instances]
    boxes = np.array([_box(instances == k + 1) for k in range(len(src_arr))],
                     np.float32).reshape(-1, 4)
    return Scene(image, mask, boxes, box_labels, instances, src_arr,
                 np.asarray(sizes, np.int64), np.asarray(offsets, np.int64).reshape(-1, 2),
                 used.astype(np.int64))


def split_arrays(split: str) -> Tuple[np.ndarray, np.ndarray]:
    """The Fashion-MNIST images a split's scenes are made of: the 60,000 training images
    for ``'train'``, the 10,000 test images for ``'val'`` (never mixed)."""
    from .fashion_mnist import load_split
    return load_split(split)


def make_split(spec: SceneSpec, split: str, num: int,
               loader: Callable[[str], Tuple[np.ndarray, np.ndarray]] = split_arrays,
               start: int = 0) -> List[Scene]:
    """Scenes ``start .. start+num-1`` of ``split`` (``'train'`` or ``'val'``): images from
    ``loader(split)`` (Fashion-MNIST by default), seed ``scene_seed(spec, split)``."""
    images, labels = loader(split)
    seed = scene_seed(spec, split)
    return [make_scene(spec, i, images, labels, seed) for i in range(start, start + num)]


def stack(scenes: Sequence[Scene]) -> Dict[str, object]:
    """Scenes of one canvas size as arrays: images/masks (S, H, W) uint8, boxes and
    box_labels as lists of per-scene arrays."""
    return dict(images=np.stack([s.image for s in scenes]),
                masks=np.stack([s.mask for s in scenes]),
                boxes=[s.boxes for s in scenes], box_labels=[s.box_labels for s in scenes])


def coco_dict(entries: Sequence[Tuple[str, int, int, np.ndarray, np.ndarray]]) -> dict:
    """A COCO detection dict from ``(file_name, height, width, boxes (N, 4) x1y1x2y2,
    box_labels (N,) 0..9)`` per image; image ids 1.., category_id = label + 1."""
    out = dict(images=[], annotations=[],
               categories=[dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)])
    for image_id, (name, height, width, boxes, box_labels) in enumerate(entries, 1):
        out['images'].append(dict(id=image_id, file_name=name, height=int(height),
                                  width=int(width)))
        for (x1, y1, x2, y2), label in zip(np.asarray(boxes, np.float64).tolist(),
                                           np.asarray(box_labels).tolist()):
            out['annotations'].append(dict(
                id=len(out['annotations']) + 1, image_id=image_id, category_id=int(label) + 1,
                iscrowd=0, bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1)))
    return out


def write_scene_dataset(out: Path, spec: SceneSpec = SceneSpec(), num_train: int = 2000,
                        num_val: int = 500, channels: int = 1,
                        loader: Callable[[str], Tuple[np.ndarray, np.ndarray]] = split_arrays
                        ) -> Path:
    """Write the scenes under ``out`` in the layout of the module docstring; skipped when
    ``done.json`` records the same request. ``channels`` 1 writes grayscale PNGs, 3 the
    gray value repeated in RGB. Returns ``out``."""
    from PIL import Image

    if channels not in (1, 3):
        raise ValueError('channels must be 1 or 3')
    out = Path(out)
    wanted = dict(format=_FORMAT, spec=spec.to_json(), val_seed=VAL_SEED, num_train=num_train,
                  num_val=num_val, channels=channels)
    done = out / 'done.json'
    if done.exists() and json.loads(done.read_text()) == wanted:
        return out
    done.unlink(missing_ok=True)
    meta = dict(classes=list(SEG_CLASSES), spec=spec.to_json(), val_seed=VAL_SEED,
                sources={}, background_sources={})
    for split, num in (('train', num_train), ('val', num_val)):
        for kind in ('img_dir', 'ann_dir'):
            shutil.rmtree(out / kind / split, ignore_errors=True)
            (out / kind / split).mkdir(parents=True)
        (out / 'annotations').mkdir(parents=True, exist_ok=True)
        images, labels = loader(split)
        seed = scene_seed(spec, split)
        entries = []
        meta['sources'][split], meta['background_sources'][split] = [], []
        for i in range(num):
            s = make_scene(spec, i, images, labels, seed)
            name = f'{i:05d}.png'
            img = s.image if channels == 1 else np.repeat(s.image[..., None], 3, axis=2)
            Image.fromarray(img).save(out / 'img_dir' / split / name)
            Image.fromarray(s.mask).save(out / 'ann_dir' / split / name)
            entries.append((name, *spec.canvas_hw, s.boxes, s.box_labels))
            meta['sources'][split].append(s.sources.tolist())
            meta['background_sources'][split].append(s.background_sources.tolist())
        (out / 'annotations' / f'{split}.json').write_text(json.dumps(coco_dict(entries)))
    (out / 'meta.json').write_text(json.dumps(meta))
    (out / 'LICENSE.txt').write_text(f'Garment photographs: Fashion-MNIST, {LICENSE}\n')
    done.write_text(json.dumps(wanted))
    return out
