"""configs/deeplabv3_affnet_s_ade20k.py: loads, builds, trains a step and predicts."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData

from gfnet_dense import AFFNet  # importing gfnet_dense registers the backbones
from gfnet_dense.mm.model_checks import check_model_widths
from helpers import ROOT

CONFIG = osp.join(ROOT, 'configs', 'deeplabv3_affnet_s_ade20k.py')


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(CONFIG)


@pytest.fixture(scope='module')
def model(cfg):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    init_default_scope('mmseg')
    model_cfg = cfg.model.copy()
    model_cfg.backbone = dict(model_cfg.backbone, init_cfg=None)  # no checkpoint file needed
    return MODELS.build(model_cfg)


def samples(shape, count, labels=True):
    from mmseg.structures import SegDataSample
    out = []
    for _ in range(count):
        sample = SegDataSample()
        if labels:
            sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, *shape)))
        sample.set_metainfo(dict(img_shape=shape, pad_shape=shape, ori_shape=shape))
        out.append(sample)
    return out


def test_config_states_the_setting(cfg):
    check_model_widths(cfg)  # what the tools check first
    model = cfg.model
    assert model.backbone.type == 'AFFNet' and model.backbone.arch == 's'
    assert model.backbone.output_stride == 8 and tuple(model.backbone.out_indices) == (4,)
    assert model.backbone.init_cfg.checkpoint == 'pretrained/affnet-s.pth'
    assert model.pretrained is None and model.auxiliary_head is None
    head = model.decode_head
    assert (head.type, head.in_channels, head.channels, head.num_classes) == \
        ('ProjectedASPPHead', 320, 256, 150)
    assert tuple(head.dilations) == (1, 12, 24, 36)
    assert model.data_preprocessor.mean == [0.0] * 3 and model.data_preprocessor.std == [255.0] * 3
    assert cfg.crop_size == (256, 256) and model.data_preprocessor.size == (256, 256)
    assert model.test_cfg.mode == 'whole'
    assert cfg.optim_wrapper.optimizer.type == 'SGD' and cfg.optim_wrapper.optimizer.lr == 0.02


def test_parameters_equal_the_public_deeplabv3_affnet_s(model):
    # the public file's parameters (tests/fixtures/affnet_cvnets_keys.json): 7,043,558
    assert sum(p.numel() for p in model.parameters()) == 7_043_558
    assert model.decode_head.bottleneck.conv.kernel_size == (1, 1)


def test_backbone_output_stride_is_8(model):
    assert isinstance(model.backbone, AFFNet)
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(1, 320, 8, 8)]


def test_loss_step_gives_finite_losses_and_gradients(model):
    model.train()
    model.zero_grad()
    losses = model(torch.randn(2, 3, 64, 64), samples((64, 64), 2), mode='loss')
    assert not any('aux' in k for k in losses)
    loss_values = [v for k, v in losses.items() if 'loss' in k]
    assert loss_values and all(torch.isfinite(v).all() for v in loss_values)
    sum(loss_values).backward()
    for name in ('backbone.stem.0.weight', 'decode_head.conv_seg.weight'):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    model.zero_grad()


def test_prediction_covers_150_classes_at_the_input_size(model):
    model.eval()
    data = dict(inputs=[torch.randint(0, 256, (3, 70, 90), dtype=torch.uint8)],
                data_samples=samples((70, 90), 1, labels=False))
    with torch.no_grad():
        preds = model.test_step(data)  # data_preprocessor + predict
    assert tuple(preds[0].seg_logits.data.shape) == (150, 70, 90)
    pred = preds[0].pred_sem_seg.data
    assert tuple(pred.shape) == (1, 70, 90) and 0 <= pred.min() and pred.max() < 150
