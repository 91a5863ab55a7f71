"""tools/scene_study.py, the proving ground's engine, on toy data: cached scenes, training
crops, and a training that resumes exactly where it stopped."""
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.model import BaseModel

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools'))

import scene_study as E  # noqa: E402
from gfnet_dense.datasets import fmnist_scenes as S  # noqa: E402


def fake_fashion(split):
    """Fashion-MNIST-shaped garments: bright blobs, class k a k-pixel-wide stripe pattern."""
    rng = np.random.default_rng(0 if split == 'train' else 1)
    labels = rng.integers(0, 10, 50)
    images = np.zeros((50, 28, 28), np.uint8)
    for i, k in enumerate(labels):
        images[i, 4:24, 6:22] = 120 + 10 * k
        images[i, 4:24:2, 6:22] += 60
    return images, labels


SPEC = S.SceneSpec(canvas_hw=(48, 64), object_px=(12, 16), count=(2, 4), count_area=48 * 64)


def test_scene_arrays_are_cached_without_pickle(tmp_path):
    a = E.scene_arrays(SPEC, 'train', 5, tmp_path, fake_fashion)
    files = list(tmp_path.glob('*.npz'))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as z:  # plain arrays only
        assert {z[k].dtype.kind for k in z.files} <= {'u', 'i', 'f'}
    b = E.scene_arrays(SPEC, 'train', 5, tmp_path, fake_fashion)
    assert a['images'].shape == (5, 48, 64) and a['masks'].dtype == np.uint8
    scenes = S.make_split(SPEC, 'train', 5, fake_fashion)
    for i, s in enumerate(scenes):
        np.testing.assert_array_equal(b['images'][i], s.image)
        np.testing.assert_array_equal(b['boxes'][i], s.boxes)
        np.testing.assert_array_equal(b['box_labels'][i], s.box_labels)
    E.scene_arrays(SPEC, 'val', 5, tmp_path, fake_fashion)
    assert len(list(tmp_path.glob('*.npz'))) == 2


def test_scaled_spec_keeps_coverage():
    big = E.scaled_spec(SPEC, 2.0, (128, 96))
    assert big.canvas_hw == (128, 96) and big.object_px == (24, 32)
    assert big.count_area == 4 * SPEC.count_area and big.count == SPEC.count


def test_training_batch_crops_flips_and_resizes():
    rng = np.random.default_rng(5)  # random pixels: every window is unique
    images = rng.integers(0, 256, (2, 32, 32)).astype(np.uint8)
    masks = rng.integers(0, 11, (2, 32, 32)).astype(np.uint8)
    x, y = E.training_batch(images, masks, np.random.default_rng(0), 6, 16, None)
    assert x.shape == (6, 1, 16, 16) and y.shape == (6, 16, 16) and y.dtype == torch.int64
    # each crop is a window of one scene, maybe flipped: labels and pixels move together
    pixels = x[:, 0] * E.STD + E.MEAN
    for p, lab in zip(pixels, y):
        found = False
        for j in range(2):
            for img, m in ((images[j], masks[j]), (images[j][:, ::-1], masks[j][:, ::-1])):
                for r in range(17):
                    for c in range(17):
                        if np.allclose(img[r:r + 16, c:c + 16], p.numpy(), atol=1e-3):
                            assert np.array_equal(m[r:r + 16, c:c + 16], lab.numpy())
                            found = True
        assert found
    # random resize to as little as half: smaller than the crop is padded with ignore
    x, y = E.training_batch(images, masks, np.random.default_rng(1), 8, 24, (0.5, 0.6))
    assert x.shape == (8, 1, 24, 24) and (y == 255).any()


class _Toy(BaseModel):
    """A model with MMEngine's ``parse_losses``, as MMSeg's and MMDet's models have."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def loss(self, rng):
        x = torch.from_numpy(rng.standard_normal((4, 3))).float()
        # dropout draws from torch's generator: reseeded per iteration by train_dense
        return dict(loss_a=torch.nn.functional.dropout(self.fc(x), 0.5).pow(2).mean(),
                    loss_b=[self.fc.weight.sum() * 0.0, self.fc.bias.abs().sum()],
                    acc=torch.ones(()))


def _train(work, fail_at=None):
    torch.manual_seed(0)
    model, calls = _Toy(), []

    def loss_of_batch(rng):
        calls.append(1)
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt  # killed mid-run
        return model.loss(rng)
    recipe = E.DenseRecipe(iters=7, warmup=2, checkpoint_every=3, lr=0.05)
    curve = E.train_dense(model, loss_of_batch, recipe, seed=3, work=work, log=lambda *_: None)
    return model, curve, len(calls)


def test_a_killed_training_resumes_exactly(tmp_path):
    plain, curve, _ = _train(tmp_path / 'plain')
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / 'killed', fail_at=5)  # after the checkpoint at iteration 3
    resumed, curve2, calls = _train(tmp_path / 'killed')
    assert calls == 4  # iterations 4..7 only
    assert curve2 == curve
    for a, b in zip(plain.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    # a finished training is not redone: the final state holds the weights
    again, curve3, calls = _train(tmp_path / 'killed')
    assert calls == 0 and curve3 == curve
    assert torch.equal(again.fc.weight, plain.fc.weight)


def test_a_training_started_from_other_weights_starts_over(tmp_path):
    recipe = E.DenseRecipe(iters=4, warmup=1, checkpoint_every=2)

    def train(init, log=lambda *_: None):
        torch.manual_seed(0)
        model, calls = _Toy(), []
        curve = E.train_dense(model, lambda rng: calls.append(1) or model.loss(rng), recipe,
                              seed=0, work=tmp_path, log=log, init=init)
        return model, curve, len(calls)
    first, curve, calls = train('aaaa')
    assert calls == 4
    _, _, calls = train('aaaa')
    assert calls == 0  # finished: not redone
    logged = []
    again, curve2, calls = train('bbbb', logged.append)
    assert calls == 4 and curve2 == curve and 'started from other weights (aaaa, not bbbb)' \
        in logged[0]
    assert torch.equal(again.fc.weight, first.fc.weight)  # the same training from scratch


def test_a_non_finite_loss_stops_the_run(tmp_path):
    model = _Toy()
    recipe = E.DenseRecipe(iters=3, warmup=1)
    with pytest.raises(FloatingPointError, match='loss nan at iteration 0'):
        E.train_dense(model, lambda rng: dict(loss=model.fc.weight.sum() * float('nan')),
                      recipe, seed=0, work=tmp_path, log=lambda *_: None, name='toy')


def test_dense_models_are_the_libraries_bases_with_our_changes():
    """Semantic FPN and RetinaNet come from MMSeg's / MMDet's base configs; what we change
    is applied, and nothing of the bases that needs the internet or RGB is left."""
    from mmengine.model import BaseDataPreprocessor
    seg = E.segmentor('resnet18', None, None)
    assert type(seg.data_preprocessor) is BaseDataPreprocessor  # not SegDataPreProcessor
    assert type(seg.decode_head.scale_heads[0][0].bn) is torch.nn.BatchNorm2d  # not SyncBN
    assert seg.decode_head.num_classes == E.NUM_CLASSES and seg.decode_head.channels == 64
    assert seg.neck.lateral_convs[0].conv.in_channels == E.CHANNELS['resnet18'][0]
    assert seg.test_cfg == dict(mode='whole')
    head = seg.decode_head  # what the base sets and we keep (pinned MMSeg)
    assert head.feature_strides == [4, 8, 16, 32] and head.dropout.p == 0.1
    assert not head.loss_decode.use_sigmoid and head.loss_decode.loss_weight == 1.0
    det = E.detector('resnet18', None, None)
    assert type(det.data_preprocessor) is BaseDataPreprocessor
    assert det.bbox_head.num_classes == E.NUM_CLASSES - 1 and det.bbox_head.stacked_convs == 2
    assert det.bbox_head.prior_generator.octave_base_scale == 3
    assert det.neck.start_level == 0 and det.neck.num_outs == 5
    head = det.bbox_head  # what the base sets and we keep (pinned MMDet)
    assert head.prior_generator.ratios.tolist() == [0.5, 1.0, 2.0]
    assert [s[0] for s in head.prior_generator.strides] == [8, 16, 32, 64, 128]
    assert (head.assigner.pos_iou_thr, head.assigner.neg_iou_thr) == (0.5, 0.4)
    assert (head.loss_cls.gamma, head.loss_cls.alpha) == (2.0, 0.25)
    assert type(head.loss_bbox).__name__ == 'L1Loss'
    assert head.test_cfg['score_thr'] == 0.05 and head.test_cfg['max_per_img'] == 100
    assert head.test_cfg['nms'] == dict(type='nms', iou_threshold=0.5)


def test_dense_models_are_seeded_whatever_the_process_drew_before():
    """A resumed full run builds seed s's head as an uninterrupted one does."""
    first = E.segmentor('resnet18', None, None, seed=1).state_dict()
    torch.rand(100)  # a process that pretrained, evaluated, ... before
    again = E.segmentor('resnet18', None, None, seed=1).state_dict()
    other = E.segmentor('resnet18', None, None, seed=2).state_dict()
    head = 'decode_head.conv_seg.weight'
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first[head], other[head])
