"""tools/proving_ground.py --quick on real pixels: Fashion-MNIST pretraining, then Semantic
FPN and RetinaNet on scenes of Fashion-MNIST photographs (validation scenes from the test
images only), each checked against the best trivial baseline of the same validation set.

One process with two torch threads and fixed seeds: the run is deterministic, so the
thresholds below are margins over baselines, not over the noise of a flaky run. The
Fashion-MNIST package is fetched from Debian into the cache on first use.
"""
import json
import subprocess
import sys

import pytest

from helpers import ROOT


def _proving_ground(out, *extra):
    done = subprocess.run([sys.executable, 'tools/proving_ground.py', '--quick', '--out', str(out),
                           '--threads', '2', *extra], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp('proving_ground')
    stdout = _proving_ground(out)
    return out, stdout, json.loads((out / 'results.json').read_text())


def test_plan_ran_in_order(quick):
    _, stdout, summary = quick
    started = [line.split()[1] for line in stdout.splitlines() if line.startswith('[')]
    assert started == ['baselines', 'pretrain/gfnet_h_ti-s0', 'seg/gfnet_h_ti-bicubic-s0',
                       'det/gfnet_h_ti-s0']
    assert summary['meta']['quick'] and summary['meta']['threads'] == 2


def test_baselines_are_weak_on_the_scenes(quick):
    base = quick[2]['results']['baselines']
    for study in ('canvas', 'scale'):
        for key, rows in base[study].items():
            # 11 classes; background is ~85% of the pixels, so "background everywhere"
            # scores ~85/11 = 7.7; intensity rules find garments on the flat background
            # but not their class (measured best: 13.45, the intensity lookup at 64x64)
            assert all(r['mIoU'] < 16 for r in rows.values()), (study, key, rows)
    assert base['det']['box prior']['bbox_mAP_50'] < 2  # measured 0.27
    assert 75 < base['cls']['logistic regression']['top1'] < 90  # measured 82.61


def test_pretraining_feeds_the_backbones(quick):
    out, _, summary = quick
    results = summary['results']
    r = results['pretrain/gfnet_h_ti-s0']
    assert r['checkpoint'] == str(out / 'pretrain' / 'gfnet_h_ti-s0' / 'classifier.pth')
    # one epoch on 10,000 images (measured 75.60): below logistic regression (82.61), which
    # the full run's four epochs on 60,000 must beat; here the classifier only has to have
    # learnt what the dense runs start from, beyond the nearest class centroid (67.64)
    assert r['top1'] > results['baselines']['cls']['nearest class centroid']['top1'] + 4
    # every dense run names the classifier it started from
    for run in ('seg/gfnet_h_ti-bicubic-s0', 'det/gfnet_h_ti-s0'):
        assert results[run]['classifier'] == dict(run='pretrain/gfnet_h_ti-s0',
                                                  sha256=r['sha256'])


# margins over the best baseline of the same validation set, about half of the lowest
# measured. The run is deterministic for its thread count, but a short training is
# chaotic: a CPU that rounds differently draws, in effect, another seed. Measured with
# this budget (400 iterations of 16 crops): seed 0 +12.08 to +13.71 mIoU, seeds 1 and 2
# +9.78 to +14.01 (whole image); with 250 iterations of 32 crops +2.25 to +10.74
SEG_MARGIN = 5.0  # mIoU points
DET_MARGIN = 8.0  # mAP@50 points over the box prior; measured 18.26 (18.88, 19.32 before) vs 0.27


def test_segmentation_beats_the_best_baseline_everywhere(quick):
    results, summary = quick[2]['results'], quick[2]['summary']
    seg = summary['canvas']['seg/gfnet_h_ti-bicubic']
    for inference in ('whole', 'slide'):
        assert set(seg[inference]) == {'64x64', '128x128', '64x256'}
        for key, s in seg[inference].items():
            best = max(r['mIoU'] for r in results['baselines']['canvas'][key].values())
            assert s['mean'] > best + SEG_MARGIN, (inference, key, s['mean'], best)
    scale = summary['scale']['seg/gfnet_h_ti-bicubic']['scale']['1.0x']['mean']
    assert scale > max(r['mIoU'] for r in results['baselines']['scale']['1.0x'].values()) \
        + SEG_MARGIN


def test_detection_beats_the_box_prior(quick):
    results = quick[2]['results']
    det = results['det/gfnet_h_ti-s0']
    prior = results['baselines']['det']['box prior']['bbox_mAP_50']
    assert det['bbox_mAP_50'] > prior + DET_MARGIN, (det['bbox_mAP_50'], prior)


def test_report_and_plots(quick):
    from PIL import Image
    out = quick[0]
    md = (out / 'results.md').read_text()
    for heading in ('### Pretraining', '### Canvas study', '### Scale study', '### Detection'):
        assert heading in md
    for png in ('canvas_study.png', 'scale_study.png', 'learning_curves.png'):
        with Image.open(out / png) as im:
            assert im.width >= 600


def test_rerun_keeps_every_finished_run(quick):
    out, _, summary = quick
    stdout = _proving_ground(out)
    kept = [line for line in stdout.splitlines() if 'done before, kept' in line]
    assert len(kept) == 4
    again = json.loads((out / 'results.json').read_text())
    assert again['results'] == summary['results']
    # the training states were only there to resume: removed once a run's result is kept
    assert not list(out.glob('seg/*/state.pth')) and not list(out.glob('det/*/state.pth'))
