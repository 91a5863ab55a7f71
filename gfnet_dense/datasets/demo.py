"""The demo data sets: the brain-lobe slices bundled for ``make demo``
(``make_brain_lobes_demo``) and a small synthetic ADE20K-layout set (``make_ade20k_demo``,
used by the tests). Both write under the folder they are given (the tools pass the
repository's ``data/...`` folders).

The synthetic ADE20K-layout set is generated deterministically.

Scenes are sky over wall over floor with a few objects; every class has its own
colour under strong per-pixel noise, so a model learns them within minutes on CPU
while a per-pixel colour lookup does not (``ade20k_demo_baselines`` scores the
trivial baselines on a written set).
Labels are the raw ADE20K ids (0 = unlabeled, 1..150), used with
``reduce_zero_label=True`` like the real data set.

Layout written under ``root``::

    images/{training,validation}/demo_XXXX.jpg
    annotations/{training,validation}/demo_XXXX.png
"""
import os
import os.path as osp
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

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


# Per-channel noise this strong makes a pixel's colour a poor guide to its class (a
# nearest-colour lookup scores about 30 mIoU, against 99 with grey noise of 20), while
# the average over a 4x4 patch, which a network's stem sees, still separates them.
_NOISE_STD = 75.0


def _noisy_colour(rng, h, w, colour):
    base = np.array(colour, dtype=np.float32)
    noise = rng.normal(0, _NOISE_STD, size=(h, w, 3)).astype(np.float32)
    return np.clip(base + noise, 0, 255)


def _scene(rng, height, width):
    image = np.zeros((height, width, 3), np.float32)
    label = np.zeros((height, width), np.uint8)
    sky_end = int(height * rng.uniform(0.2, 0.35))
    floor_start = int(height * rng.uniform(0.65, 0.8))
    for cls, (top, bottom) in ((3, (0, sky_end)), (1, (sky_end, floor_start)),
                               (4, (floor_start, height))):
        image[top:bottom] = _noisy_colour(rng, bottom - top, width, ADE20K_DEMO_CLASSES[cls][1])
        label[top:bottom] = cls
    for _ in range(rng.integers(1, 4)):
        cls = int(rng.choice(_OBJECTS))
        h, w = int(height * rng.uniform(0.2, 0.45)), int(width * rng.uniform(0.15, 0.35))
        top, left = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        image[top:top + h, left:left + w] = _noisy_colour(rng, h, w, ADE20K_DEMO_CLASSES[cls][1])
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
            # no chroma subsampling: it would average the colour noise of 2x2 pixels
            Image.fromarray(image).save(osp.join(img_dir, name + '.jpg'), quality=95,
                                        subsampling=0)
            Image.fromarray(label).save(osp.join(ann_dir, name + '.png'))
    return root



def demo_class_indices(raw: np.ndarray) -> np.ndarray:
    """Raw ADE20K ids of a demo label map (or prediction) -> class indices 0..5 as the
    demo config scores them (class k of ``ADE20K_DEMO_CLASSES`` in id order -> k);
    unlabeled and every other id -> 255. uint8, same shape."""
    lut = np.full(256, 255, np.uint8)
    lut[sorted(ADE20K_DEMO_CLASSES)] = np.arange(len(ADE20K_DEMO_CLASSES))
    return lut[raw]


def _read_demo_split(root: str, split: str) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(image (H, W, 3) uint8, label (H, W) uint8) pairs of ``split``, labels as
    ``demo_class_indices`` maps them."""
    pairs = []
    for path in sorted(Path(root, 'images', split).glob('*.jpg')):
        label = Path(root, 'annotations', split, path.stem + '.png')
        pairs.append((np.asarray(Image.open(path).convert('RGB')),
                      demo_class_indices(np.asarray(Image.open(label)))))
    return pairs


def ade20k_demo_baselines(root: str, side: int = 64) -> Dict[str, float]:
    """mIoU (%) on the validation split of the demo set at ``root`` of the trivial
    baselines fitted on its training split, scored as the demo config scores (unlabeled
    pixels ignored, ``baselines.seg_metrics``): the majority class everywhere, the
    location prior and the nearest training image's labels (both on a ``side`` x
    ``side`` grid, resized back by nearest neighbour), and two per-pixel rules on the
    colour: a lookup (the class whose mean training colour is nearest) and a linear
    model (``baselines.logistic_regression`` on the pixel's RGB)."""
    from . import baselines as B
    train, val = _read_demo_split(root, 'training'), _read_demo_split(root, 'validation')
    num = len(ADE20K_DEMO_CLASSES)
    labels = [label for _, label in val]

    def small(image):
        return np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR),
                          np.float32).ravel()

    train_masks = np.stack([B.resize_nearest(m, (side, side)) for _, m in train])
    freq = np.bincount(train_masks.ravel(), minlength=256)[:num]
    prior = B.location_prior(train_masks, num)
    train_small = np.stack([small(image) for image, _ in train])
    pixels = np.concatenate([image.reshape(-1, 3) for image, _ in train])
    pixel_labels = np.concatenate([m.ravel() for _, m in train])
    labelled = pixel_labels < num
    means = np.stack([pixels[pixel_labels == c].mean(axis=0, dtype=np.float64)
                      for c in range(num)]).astype(np.float32)
    # every 4th labelled pixel: as good a fit of 3 x 6 weights, in a quarter of the time
    linear = B.logistic_regression(pixels[labelled][::4], pixel_labels[labelled][::4],
                                   np.concatenate([image.reshape(-1, 3) for image, _ in val]))
    linear = np.split(linear, np.cumsum([m.size for m in labels])[:-1])
    preds = {'majority class': [np.full(m.shape, freq.argmax(), np.uint8) for m in labels],
             'location prior': [B.resize_nearest(prior, m.shape) for m in labels],
             'nearest training image': [], 'colour lookup': [],
             'linear model on pixels': [p.reshape(m.shape) for p, m in zip(linear, labels)]}
    for image, m in val:
        nearest = ((train_small - small(image)) ** 2).sum(axis=1).argmin()
        preds['nearest training image'].append(B.resize_nearest(train_masks[nearest], m.shape))
        dist = ((image.reshape(-1, 1, 3).astype(np.float32) - means[None]) ** 2).sum(-1)
        preds['colour lookup'].append(dist.argmin(axis=1).reshape(m.shape))
    return {name: 100 * B.seg_metrics(p, labels, num)['mIoU'] for name, p in preds.items()}

_BRAIN_LOBES_README = """\
# Brain-lobe demo data (bundled for `make demo`)

Axial slices of the Colin27 T1 MRI scan labelled with the AAL atlas, regions grouped
into lobes per hemisphere: 16 classes (0 = background), MMSegmentation custom layout.

    img_dir/{{train,val}}/zNNN.png   217x181 (H x W) grayscale T1 slice NNN (bottom to top)
    ann_dir/{{train,val}}/zNNN.png   class index per pixel, classes as in meta.json
    meta.json                       classes, palette, slice numbers of each split

{num_train} training and {num_val} validation slices; validation slices never neighbour
training slices. Images show anterior up and the subject's left on the left.

Written by `python tools/make_demo_data.py --brain-lobes`, i.e.
`gfnet_dense.datasets.aal.write_seg_dataset` on the files of the Debian package
`{package}` ({folder}/ch2.nii.gz, aal.nii.gz, aal.nii.txt),
which the script fetches on first use; `tests/unit/test_demo_bundle.py` checks that the
pixels here equal the converter's output.

## License and attribution

The source files come from the Debian package `{package}` (MRIcron templates). Its
copyright file (copied in full to LICENSE.txt) covers all files:
BSD-3-clause, Copyright 2006-2010 Chris Rorden (MRIcron).

When you use these data, cite:

- AAL atlas: N. Tzourio-Mazoyer, B. Landeau, D. Papathanassiou, F. Crivello, O. Etard,
  N. Delcroix, B. Mazoyer, M. Joliot. Automated anatomical labeling of activations in
  SPM using a macroscopic anatomical parcellation of the MNI MRI single-subject brain.
  NeuroImage 15(1):273-289, 2002.
- Colin27 (ch2) T1: C. J. Holmes, R. Hoge, L. Collins, R. Woods, A. W. Toga,
  A. C. Evans. Enhancement of MR images using registration for signal averaging.
  J Comput Assist Tomogr 22(2):324-333, 1998.
"""


def make_brain_lobes_demo(root: str) -> str:
    """(Re)write the bundled brain-lobe demo set under ``root`` (the repository's is
    ``data/brain_lobes_demo``) from the Debian package ``mricron-data`` (fetched into the
    cache on first use, see ``gfnet_dense.datasets.packages``): the converter's files
    (``img_dir``, ``ann_dir``, ``meta.json``) plus ``LICENSE.txt`` (the package's
    copyright file) and ``README.md``. Returns ``root``."""
    from . import aal
    from .packages import debian_files

    root = Path(root)
    with tempfile.TemporaryDirectory() as tmp:
        written = aal.write_seg_dataset(Path(tmp) / 'brain_lobes')
        doc = debian_files(aal.PACKAGE, f'/usr/share/doc/{aal.PACKAGE}')
        copyright_text = (doc / 'copyright').read_text()
        for kind in ('img_dir', 'ann_dir'):
            shutil.rmtree(root / kind, ignore_errors=True)
        shutil.copytree(written, root, dirs_exist_ok=True)
    (root / 'LICENSE.txt').write_text(
        f'Brain slices and labels: {aal.LICENSE}\n\n'
        f'The Debian copyright file of {aal.PACKAGE} (/usr/share/doc/{aal.PACKAGE}/copyright):'
        f'\n\n{copyright_text}')
    counts = {split: len(list((root / 'img_dir' / split).glob('*.png')))
              for split in ('train', 'val')}
    (root / 'README.md').write_text(_BRAIN_LOBES_README.format(
        num_train=counts['train'], num_val=counts['val'], package=aal.PACKAGE, folder=aal.FOLDER))
    return str(root)
