"""The trivial baselines of the synthetic ADE20K-layout demo set (``ade20k_demo_baselines``),
which the seg suite's learning check is held against."""
import os
import os.path as osp
import shutil

from gfnet_dense.datasets import demo
from helpers import ROOT


def test_each_baseline_scores_what_it_claims(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, '_NOISE_STD', 0.0)
    root = demo.make_ade20k_demo(str(tmp_path), num_train=4, num_val=2)
    # without noise every class is its colour: the lookup is right but at JPEG edges
    assert demo.ade20k_demo_baselines(root)['colour lookup'] > 99
    # validation images that are training images: the nearest one is the image itself
    # (its labels go through the 64 x 64 grid and back, which blurs the edges)
    for kind in ('images', 'annotations'):
        shutil.rmtree(osp.join(root, kind, 'validation'))
        shutil.copytree(osp.join(root, kind, 'training'), osp.join(root, kind, 'validation'))
    same = demo.ade20k_demo_baselines(root)
    assert same['nearest training image'] > 95, same
    assert same['majority class'] < same['location prior'] < same['nearest training image']


def test_the_tests_demo_set_is_not_solved_by_a_trivial_rule():
    scores = demo.ade20k_demo_baselines(osp.join(ROOT, 'data', 'ade20k_demo'))
    # measured: majority class 6.8, colour lookup 30.2, linear model on pixels 34.2,
    # location prior 38.7, nearest training image 45.8 mIoU (colour lookup 98.6 with the
    # earlier grey noise of 20)
    assert scores['colour lookup'] < 40 and max(scores.values()) < 50, scores


def test_the_tests_demo_set_is_the_generators_output(tmp_path):
    import numpy as np
    from PIL import Image
    committed = osp.join(ROOT, 'data', 'ade20k_demo')
    written = demo.make_ade20k_demo(str(tmp_path))  # the defaults wrote the committed set
    for split, ext in (('images', '.jpg'), ('annotations', '.png')):
        for sub in ('training', 'validation'):
            names = sorted(os.listdir(osp.join(committed, split, sub)))
            assert names == sorted(os.listdir(osp.join(written, split, sub)))
            assert len(names) == (32 if sub == 'training' else 8) and names[0].endswith(ext)
            for name in names:
                a, b = (np.asarray(Image.open(osp.join(root, split, sub, name)))
                        for root in (committed, written))
                assert np.array_equal(a, b), (split, sub, name)
