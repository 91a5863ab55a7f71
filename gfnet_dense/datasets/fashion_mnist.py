"""Fashion-MNIST (Zalando, MIT) from Debian's ``dataset-fashion-mnist``, as an
ImageFolder tree that ``tools/pretrain.py`` reads: ``train/<class>/*.png`` (from the
60,000 training images) and ``val/<class>/*.png`` (from the 10,000 test images),
28x28 grayscale."""
import gzip
import json
import shutil
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from .packages import debian_files

PACKAGE = 'dataset-fashion-mnist'
FOLDER = '/usr/share/datasets/fashion-mnist'
LICENSE = 'MIT (Expat), Copyright 2017 Zalando SE; Debian package dataset-fashion-mnist'
CLASSES = ('T-shirt_top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
           'Sneaker', 'Bag', 'Ankle_boot')
_SPLITS = {'train': 'train', 'val': 't10k'}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format, optionally gzipped) as a uint8 array."""
    data = gzip.open(path).read() if str(path).endswith('.gz') else Path(path).read_bytes()
    if len(data) < 4 or data[:3] != b'\0\0\x08':
        raise ValueError(f'{path} is not an unsigned-byte IDX file')
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f'{path}: header cut short')
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f'{path}: {body.size} bytes for shape {shape}')
    return body.reshape(shape)


def load_split(split: str) -> Tuple[np.ndarray, np.ndarray]:
    """(images ``(N, 28, 28)`` uint8, labels ``(N,)``) of ``'train'`` or ``'val'``."""
    folder = debian_files(PACKAGE, FOLDER)
    prefix = _SPLITS[split]
    return (read_idx(folder / f'{prefix}-images-idx3-ubyte.gz'),
            read_idx(folder / f'{prefix}-labels-idx1-ubyte.gz'))


def balanced_subset(labels: np.ndarray, per_class: Optional[int]) -> np.ndarray:
    """Indices of the first ``per_class`` images of every class (all when None)."""
    if per_class is None:
        return np.arange(len(labels))
    picked = [np.flatnonzero(labels == c)[:per_class] for c in range(len(CLASSES))]
    return np.sort(np.concatenate(picked))


def write_imagefolder(out: Path, train_per_class: Optional[int] = None,
                      val_per_class: Optional[int] = None) -> Path:
    """Write the ImageFolder tree under ``out`` (skipped when it is complete)."""
    from PIL import Image

    out = Path(out)
    wanted = {'train': train_per_class, 'val': val_per_class}
    done = out / 'done.json'
    if done.exists() and json.loads(done.read_text()) == wanted:
        return out
    for split, per_class in wanted.items():
        shutil.rmtree(out / split, ignore_errors=True)
        images, labels = load_split(split)
        for c in CLASSES:
            (out / split / c).mkdir(parents=True, exist_ok=True)
        for i in balanced_subset(labels, per_class):
            Image.fromarray(images[i]).save(out / split / CLASSES[labels[i]] / f'{i:05d}.png')
    (out / 'LICENSE.txt').write_text(f'Fashion-MNIST: {LICENSE}\n')
    done.write_text(json.dumps(wanted))
    return out
