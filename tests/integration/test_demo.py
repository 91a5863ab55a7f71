"""`make demo` (tools/demo.py) on the bundled brain-lobe slices, with a tiny --iters."""
import os.path as osp
import re

import numpy as np
from PIL import Image

from helpers import ROOT, run_tool, scalars

BRAIN_LOBES_DEMO = osp.join(ROOT, 'data', 'brain_lobes_demo')  # tools/demo.py's default

CLASSES = ('background', 'frontal_L', 'frontal_R', 'insula_limbic_L', 'insula_limbic_R',
           'occipital_L', 'occipital_R', 'parietal_L', 'parietal_R', 'deep_grey_L',
           'deep_grey_R', 'temporal_L', 'temporal_R', 'cerebellum_L', 'cerebellum_R', 'vermis')


def test_demo_trains_on_the_bundle_reports_iou_and_draws_the_figure(tmp_path):
    work_dir = tmp_path / 'demo'
    run_tool('demo.py', '--work-dir', str(work_dir), '--iters', '2')
    # a second run in the same work dir trains afresh and replaces the outputs
    proc = run_tool('demo.py', '--work-dir', str(work_dir), '--iters', '3')
    out = proc.stdout
    assert str(work_dir / 'iter_3.pth') in out and not (work_dir / 'iter_2.pth').exists()
    assert BRAIN_LOBES_DEMO in (work_dir / 'fpn_gfnet_h_ti_brain_lobes_demo.py').read_text()

    rows = dict(re.findall(r'^(\w+)\s+([\d.]+|nan)\s+[\d.]+$', out, re.M))
    assert tuple(rows) == CLASSES, out[-3000:]  # the 16 classes, not ADE20K's 150
    summary = re.search(r'^mIoU ([\d.]+)%, pixel accuracy ([\d.]+)%; all-background baseline: '
                        r'mIoU ([\d.]+)%, pixel accuracy ([\d.]+)%$', out, re.M)
    assert summary, out[-3000:]
    miou, acc, base_miou, base_acc = (float(v) for v in summary.groups())
    assert abs(miou - np.mean([float(v) for v in rows.values()])) < 0.1
    # the baseline: background IoU = its pixel share, every other class 0
    assert 70 < base_acc < 80 and abs(base_miou - base_acc / 16) < 0.1
    # the nearest training slice's labels, copied (54.6 mIoU, 88.0% pixel accuracy on the
    # bundle): printed beside the model's score, with the margin
    nearest = re.search(r'^nearest training slice \(label copy, no learning\): mIoU ([\d.]+)%, '
                        r'pixel accuracy ([\d.]+)%; the model (beats|is below) it by ([\d.]+) '
                        r'mIoU points$', out, re.M)
    assert nearest, out[-3000:]
    n_miou, n_acc, verdict, margin = nearest.groups()
    assert abs(float(n_miou) - 54.6) < 0.1 and abs(float(n_acc) - 88.0) < 0.1
    assert verdict == ('beats' if miou > float(n_miou) else 'is below')
    assert abs(float(margin) - abs(miou - float(n_miou))) < 0.11
    # the demo's own evaluation agrees with the validation MMSeg ran at the end of training
    logged = [r for r in scalars(str(work_dir)) if 'mIoU' in r][-1]
    assert abs(logged['mIoU'] - miou) < 0.06 and abs(logged['aAcc'] - acc) < 0.06

    figure = Image.open(work_dir / 'demo.png').convert('RGB')
    assert figure.width >= 1200 and figure.height >= 1200
    colours = {tuple(c) for c in np.asarray(figure).reshape(-1, 3)[::7].tolist()}
    from gfnet_dense.datasets.aal import PALETTE
    assert sum(tuple(c) in colours for c in PALETTE) >= 12, 'the ground-truth colours are drawn'
