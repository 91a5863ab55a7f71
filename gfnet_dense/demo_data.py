"""A small ADE20K-layout data set, generated deterministically.

Scenes are sky over wall over floor with a few textured objects; every class
has its own colour and texture, so a model learns them within minutes on CPU.
Labels are the raw ADE20K ids (0 = unlabeled, 1..150), used with
``reduce_zero_label=True`` like the real data set.

Layout written under ``root``::

    images/{training,validation}/demo_XXXX.jpg
    annotations/{training,validation}/demo_XXXX.png
"""
import os
import os.path as osp
from typing import Dict, Tuple

import numpy as np
from PIL import Image

# raw ADE20K id -> (name, base RGB colour); ids follow ADE20K's objectInfo150
ADE20K_DEMO_CLASSES: Dict[int, Tuple[str, Tuple[int, int, int]]] = {
    1: ('wall', (170, 160, 140)),
    3: ('sky', (90, 150, 230)),
    4: ('floor', (120, 80, 50)),
    5: ('tree', (40, 140, 40)),
    8: ('bed', (200, 40, 60)),
    21: ('car', (230, 200, 20)),
}
_OBJECTS = (5, 8, 21)


def _texture(rng, h, w, colour, grain):
    base = np.array(colour, dtype=np.float32)
    noise = rng.normal(0, grain, size=(h, w, 1)).astype(np.float32)
    return np.clip(base + noise, 0, 255)


def _scene(rng, height, width):
    image = np.zeros((height, width, 3), np.float32)
    label = np.zeros((height, width), np.uint8)
    sky_end = int(height * rng.uniform(0.2, 0.35))
    floor_start = int(height * rng.uniform(0.65, 0.8))
    for cls, (top, bottom) in ((3, (0, sky_end)), (1, (sky_end, floor_start)),
                               (4, (floor_start, height))):
        image[top:bottom] = _texture(rng, bottom - top, width, ADE20K_DEMO_CLASSES[cls][1], 8)
        label[top:bottom] = cls
    for _ in range(rng.integers(1, 4)):
        cls = int(rng.choice(_OBJECTS))
        h, w = int(height * rng.uniform(0.2, 0.45)), int(width * rng.uniform(0.15, 0.35))
        top, left = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        image[top:top + h, left:left + w] = _texture(rng, h, w, ADE20K_DEMO_CLASSES[cls][1], 20)
        label[top:top + h, left:left + w] = cls
    # a thin unlabeled border, as ADE20K has around many objects
    label[:2], label[-2:] = 0, 0
    return image.astype(np.uint8), label


def make_ade20k_demo(root: str, num_train: int = 32, num_val: int = 8, seed: int = 0,
                     size_range: Tuple[int, int] = (96, 160)) -> str:
    """Write the demo set under ``root`` (idempotent: same seed, same files). Returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, count in (('training', num_train), ('validation', num_val)):
        img_dir, ann_dir = osp.join(root, 'images', split), osp.join(root, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            height, width = (int(v) for v in rng.integers(*size_range, size=2))
            image, label = _scene(rng, height, width)
            name = f'demo_{split[0]}{i:04d}'
            Image.fromarray(image).save(osp.join(img_dir, name + '.jpg'), quality=95)
            Image.fromarray(label).save(osp.join(ann_dir, name + '.png'))
    return root
