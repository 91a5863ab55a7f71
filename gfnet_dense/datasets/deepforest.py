"""Tree crowns in aerial RGB images from the ``deepforest==2.1.0`` wheel (MIT,
Weecology), as a COCO detection dataset::

    images/{train,val}/*.png, annotations/{train,val}.json   one category, 'tree'

Training: tiles of the two large images from the Yellowstone site (``2019_YELL_*``);
validation: the two 400x400 images from other sites (``OSBS_029``, Florida, and
``SOAP_061``, California), which no training tile covers.
"""
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List, Tuple

import numpy as np

from .packages import wheel_files

REQUIREMENT = 'deepforest==2.1.0'
LICENSE = 'MIT, Copyright Weecology (Ben Weinstein et al.); PyPI wheel deepforest==2.1.0'
CLASSES = ('tree',)
TRAIN_IMAGES = ('2019_YELL_2_528000_4978000_image_crop2', '2019_YELL_2_541000_4977000_image_crop')
VAL_IMAGES = ('OSBS_029', 'SOAP_061')


def read_voc_boxes(xml_file: Path) -> np.ndarray:
    """Pascal VOC boxes as ``(N, 4)`` float ``x1, y1, x2, y2`` in pixels."""
    boxes = [[float(o.find('bndbox').find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
             for o in ET.parse(xml_file).getroot().iter('object')]
    return np.array(boxes, np.float64).reshape(-1, 4)


def tile_origins(length: int, tile: int, stride: int) -> List[int]:
    """Tile starts covering ``[0, length)``, the last one flush with the end."""
    if not 0 < stride <= tile:
        raise ValueError(f'stride {stride} must be in (0, tile={tile}] to cover the image')
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def crop_boxes(boxes: np.ndarray, x0: int, y0: int, tile: int,
               min_visible: float = 0.5) -> np.ndarray:
    """Boxes in tile coordinates, clipped; those with less than ``min_visible`` of
    their area inside the tile are dropped."""
    shifted = boxes - [x0, y0, x0, y0]
    clipped = np.clip(shifted, 0, tile)
    area = np.prod(shifted[:, 2:] - shifted[:, :2], axis=1)
    inside = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1)
    return clipped[inside >= min_visible * np.maximum(area, 1e-9)]


def _coco(images: List[Tuple[str, int, int, np.ndarray]]) -> dict:
    out = dict(images=[], annotations=[], categories=[dict(id=1, name=CLASSES[0])])
    for image_id, (name, height, width, boxes) in enumerate(images, 1):
        out['images'].append(dict(id=image_id, file_name=name, height=height, width=width))
        for x1, y1, x2, y2 in boxes:
            out['annotations'].append(dict(
                id=len(out['annotations']) + 1, image_id=image_id, category_id=1, iscrowd=0,
                bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1)))
    return out


def write_coco_dataset(out: Path, tile: int = 400, stride: int = 300) -> Path:
    """Write the dataset under ``out`` (skipped when complete with the same tiling)."""
    from PIL import Image

    out = Path(out)
    settings = dict(tile=tile, stride=stride)
    done = out / 'done.json'
    if done.exists() and json.loads(done.read_text()) == settings:
        return out
    source = wheel_files(REQUIREMENT, 'deepforest/data')
    shutil.rmtree(out / 'images', ignore_errors=True)
    for split, names in (('train', TRAIN_IMAGES), ('val', VAL_IMAGES)):
        (out / 'images' / split).mkdir(parents=True)
        (out / 'annotations').mkdir(exist_ok=True)
        entries = []
        for name in names:
            image = Image.open(source / f'{name}.png').convert('RGB')
            boxes = read_voc_boxes(source / f'{name}.xml')
            if split == 'val':
                image.save(out / 'images' / split / f'{name}.png')
                entries.append((f'{name}.png', image.height, image.width, boxes))
                continue
            for y0 in tile_origins(image.height, tile, stride):
                for x0 in tile_origins(image.width, tile, stride):
                    kept = crop_boxes(boxes, x0, y0, tile)
                    if len(kept) == 0:
                        continue
                    file = f'{name}_{y0:04d}_{x0:04d}.png'
                    image.crop((x0, y0, x0 + tile, y0 + tile)).save(out / 'images' / split / file)
                    entries.append((file, tile, tile, kept))
        (out / 'annotations' / f'{split}.json').write_text(json.dumps(_coco(entries)))
    (out / 'LICENSE.txt').write_text(f'Aerial images and tree boxes: {LICENSE}\n')
    done.write_text(json.dumps(settings))
    return out
