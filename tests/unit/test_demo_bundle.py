"""The brain-lobe data bundled for `make demo` (data/brain_lobes_demo): complete, licensed,
and pixel for pixel what the converter writes from the Debian package mricron-data."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BUNDLE = Path(__file__).resolve().parents[2] / 'data' / 'brain_lobes_demo'


def pngs(root: Path):
    return sorted(p.relative_to(root).as_posix() for p in root.glob('*_dir/*/*.png'))


def decoded(path: Path):
    with Image.open(path) as image:
        return image.mode, np.array(image)


def test_bundle_is_complete_and_licensed():
    names = pngs(BUNDLE)
    for kind in ('img_dir', 'ann_dir'):
        assert sum(n.startswith(f'{kind}/train/') for n in names) == 80
        assert sum(n.startswith(f'{kind}/val/') for n in names) == 30
    meta = json.loads((BUNDLE / 'meta.json').read_text())
    assert len(meta['classes']) == len(meta['palette']) == 16
    present = set()
    for name in names:
        if name.startswith('ann_dir/val/'):
            mode, labels = decoded(BUNDLE / name)
            assert mode == 'L' and labels.shape == (217, 181)
            present |= set(np.unique(labels).tolist())
    assert present == set(range(16)), 'every class occurs in the validation slices'
    license_text = (BUNDLE / 'LICENSE.txt').read_text()
    readme = (BUNDLE / 'README.md').read_text()
    for needed in ('BSD-3-clause', 'Chris Rorden', 'mricron-data', 'Redistribution and use'):
        assert needed in license_text, needed
    for needed in ('BSD-3-clause', 'Tzourio-Mazoyer', 'Holmes', 'mricron-data',
                   'make_demo_data.py --brain-lobes'):
        assert needed in readme, needed


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    from gfnet_dense.datasets import RealDataUnavailable
    from gfnet_dense.datasets.aal import write_seg_dataset
    try:
        return write_seg_dataset(tmp_path_factory.mktemp('aal') / 'brain_lobes')
    except RealDataUnavailable as e:  # needs_registry: fails, never skips
        pytest.fail(f'Debian package mricron-data unavailable, the bundle cannot be compared '
                    f'with the converter: {e}')


@pytest.mark.needs_registry
def test_bundle_pixels_equal_the_converter_output(converted):
    names = pngs(converted)
    assert pngs(BUNDLE) == names and len(names) == 220
    for name in names:
        bundled, fresh = decoded(BUNDLE / name), decoded(converted / name)
        assert bundled[0] == fresh[0], f'{name}: mode {bundled[0]} != {fresh[0]}'
        assert bundled[1].dtype == fresh[1].dtype and bundled[1].shape == fresh[1].shape, name
        assert np.array_equal(bundled[1], fresh[1]), f'{name}: pixels differ'
    assert json.loads((BUNDLE / 'meta.json').read_text()) == \
        json.loads((converted / 'meta.json').read_text())
