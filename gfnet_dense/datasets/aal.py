"""Axial slices of the Colin27 T1 scan (``ch2.nii.gz``) labelled with the AAL atlas
(``aal.nii.gz``, Tzourio-Mazoyer et al. 2002), both from Debian's ``mricron-data``
(BSD-3-clause, Chris Rorden), in MMSegmentation's custom layout::

    img_dir/{train,val}/z{NNN}.png   217x181 (H x W) grayscale T1 slices
    ann_dir/{train,val}/z{NNN}.png   class index per pixel (0 = background)

The 116 AAL regions are grouped into lobes per hemisphere (the AAL code's first
digit names the lobe, its last digit the side: 1 left, 2 right, 0 midline), 16
classes with the background. Telling left from right needs the position relative
to the midline, i.e. context across the whole slice. Slices are shown with
anterior up and the subject's left on the left.

Validation slices never neighbour training slices: the labelled slices are cut
into periods of 30 (bottom to top), each with 16 training slices, a 4-slice gap, 6
validation slices and another 4-slice gap.
"""
import gzip
import json
import shutil
import struct
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from .packages import debian_files

PACKAGE = 'mricron-data'
FOLDER = '/usr/share/mricron/templates'
LICENSE = ('BSD-3-clause, Copyright 2006-2010 Chris Rorden (MRIcron); Debian package '
           'mricron-data. AAL atlas: Tzourio-Mazoyer et al., NeuroImage 15(1), 2002. '
           'Colin27 (ch2) T1: Holmes et al., J Comput Assist Tomogr 22(2), 1998.')
LOBES = {'2': 'frontal', '3': 'insula', '4': 'limbic', '5': 'occipital', '6': 'parietal',
         '7': 'deep_grey', '8': 'temporal', '9': 'cerebellum'}
_SIDED = ('frontal', 'insula_limbic', 'occipital', 'parietal', 'deep_grey', 'temporal',
          'cerebellum')
CLASSES = ('background',) + tuple(f'{g}_{s}' for g in _SIDED for s in 'LR') + ('vermis',)
PALETTE = ((0, 0, 0), (230, 25, 75), (255, 130, 130), (60, 180, 75), (170, 255, 195),
           (0, 130, 200), (120, 200, 255), (245, 130, 48), (255, 215, 150), (145, 30, 180),
           (220, 190, 255), (255, 225, 25), (255, 250, 160), (128, 128, 128),
           (210, 210, 210), (240, 50, 230))
PERIOD, TRAIN, GAP, VAL = 30, 16, 4, 6


def read_nifti(path: Path) -> np.ndarray:
    """A NIfTI-1 volume (``.nii`` or ``.nii.gz``) as an ``(X, Y, Z)`` array."""
    data = gzip.open(path).read() if str(path).endswith('.gz') else Path(path).read_bytes()
    if len(data) < 352:
        raise ValueError(f'{path} is not a NIfTI-1 file ({len(data)} bytes)')
    endian = '<' if struct.unpack('<i', data[:4])[0] == 348 else '>'
    if struct.unpack(endian + 'i', data[:4])[0] != 348:
        raise ValueError(f'{path} is not a NIfTI-1 file')
    dims = struct.unpack(endian + '8h', data[40:56])
    code = struct.unpack(endian + 'h', data[70:72])[0]
    offset = int(struct.unpack(endian + 'f', data[108:112])[0])
    dtypes = {2: 'u1', 4: 'i2', 8: 'i4', 16: 'f4', 64: 'f8', 256: 'i1', 512: 'u2'}
    if code not in dtypes:
        raise ValueError(f'{path}: NIfTI datatype {code} is not supported')
    shape = dims[1:1 + dims[0]]
    flat = np.frombuffer(data, endian + dtypes[code], int(np.prod(shape)), offset)
    return flat.reshape(shape[::-1]).T  # NIfTI stores x fastest


def region_to_class(names_file: Path) -> np.ndarray:
    """Lookup table: AAL voxel value (0-116) -> class index in ``CLASSES``."""
    table = np.zeros(256, np.uint8)
    for line in names_file.read_text().splitlines():
        if not line.strip():
            continue
        value, _, code = line.split()
        group = LOBES[code[0]]
        group = 'insula_limbic' if group in ('insula', 'limbic') else group
        side = {'1': 'L', '2': 'R'}.get(code[-1])
        table[int(value)] = CLASSES.index(f'{group}_{side}' if side else 'vermis')
    return table


def split_slices(labelled: List[int]) -> Dict[str, List[int]]:
    """Training and validation slice indices, validation never next to training."""
    out = {'train': [], 'val': []}
    for i, z in enumerate(labelled):
        phase = i % PERIOD
        if phase < TRAIN:
            out['train'].append(z)
        elif TRAIN + GAP <= phase < TRAIN + GAP + VAL:
            out['val'].append(z)
    return out


def load_volumes() -> Tuple[np.ndarray, np.ndarray]:
    """(T1 uint8, class map uint8), both ``(181, 217, 181)`` on the same 1 mm grid."""
    folder = debian_files(PACKAGE, FOLDER)
    t1 = read_nifti(folder / 'ch2.nii.gz')
    atlas = read_nifti(folder / 'aal.nii.gz')
    if t1.shape != atlas.shape:
        raise ValueError(f'ch2 {t1.shape} and aal {atlas.shape} are not on one grid')
    return t1, region_to_class(folder / 'aal.nii.txt')[atlas]


def axial(volume: np.ndarray, z: int) -> np.ndarray:
    """Slice ``z`` as an image: rows anterior to posterior, columns left to right."""
    return np.ascontiguousarray(volume[:, ::-1, z].T)


def write_seg_dataset(out: Path) -> Path:
    """Write the dataset under ``out`` (skipped when complete); returns ``out``."""
    from PIL import Image

    out = Path(out)
    if (out / 'meta.json').exists():
        return out
    t1, classes = load_volumes()
    labelled = [z for z in range(t1.shape[2]) if classes[:, :, z].any()]
    splits = split_slices(labelled)
    for split, zs in splits.items():
        for kind in ('img_dir', 'ann_dir'):
            shutil.rmtree(out / kind / split, ignore_errors=True)
            (out / kind / split).mkdir(parents=True)
        for z in zs:
            Image.fromarray(axial(t1, z)).save(out / 'img_dir' / split / f'z{z:03d}.png')
            Image.fromarray(axial(classes, z)).save(out / 'ann_dir' / split / f'z{z:03d}.png')
    (out / 'LICENSE.txt').write_text(f'Brain slices and labels: {LICENSE}\n')
    meta = dict(classes=CLASSES, palette=PALETTE, splits=splits, size_hw=list(axial(t1, 0).shape))
    (out / 'meta.json').write_text(json.dumps(meta))
    return out
