"""TimmFeatures: timm models (ResNet-18, ConvNeXt) as MMSeg / MMDet backbones, checked loading."""
import argparse
import importlib.util
import os.path as osp

import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

import gfnet_dense  # noqa: F401  (registers the backbones)
from crafted import write_crafted
from gfnet_dense import CheckpointMismatchError, TimmFeatures
from gfnet_dense.mm.model_checks import check_model_widths
from gfnet_dense.checkpoints import UnsafeCheckpointError
from helpers import ROOT

WIDTHS = {'resnet18': [64, 128, 256, 512], 'convnext_nano': [80, 160, 320, 640]}
# a weight of a kept stage, under the classifier's name and the backbone's
PROBE = {'resnet18': ('layer2.0.conv1.weight', 'body.layer2.0.conv1.weight'),
         'convnext_nano': ('stem.0.weight', 'body.stem_0.weight')}


def pretrained(path, **kwargs):
    return dict(type='Pretrained', checkpoint=str(path), **kwargs)


def save_like_pretrain_tool(path, model):
    """A checkpoint.pth as ``tools/pretrain.py`` writes it (its own save_checkpoint)."""
    spec = importlib.util.spec_from_file_location('tool_pretrain',
                                                  osp.join(ROOT, 'tools', 'pretrain.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    args = argparse.Namespace(model=model.default_cfg['architecture'])
    tool.save_checkpoint(str(path), model, optimizer, scheduler, None, None, 0, args, {})
    return str(path)


def classifier(name, **kwargs):
    model = timm.create_model(name, num_classes=3, **kwargs)
    with torch.no_grad():  # weights no fresh model has
        for param in model.parameters():
            param.normal_(std=0.05)
    return model


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize('name,indices', [('resnet18', (1, 2, 3, 4)),
                                          ('convnext_nano', (0, 1, 2, 3))])
def test_default_outputs_are_strides_4_to_32_at_a_non_square_size(name, indices):
    model = TimmFeatures(name).eval()
    assert model.out_indices == indices
    assert model.out_strides == [4, 8, 16, 32]
    assert model.out_channels == WIDTHS[name]
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 96, 128))
    assert isinstance(outs, tuple)
    assert [tuple(o.shape) for o in outs] == [
        (2, c, 96 // s, 128 // s) for c, s in zip(WIDTHS[name], [4, 8, 16, 32])]


def test_out_indices_pick_feature_levels_in_order():
    model = TimmFeatures('resnet18', out_indices=(3, 0, 3)).eval()
    assert model.out_indices == (0, 3) and model.out_strides == [2, 16]
    outs = model(torch.randn(1, 3, 64, 96))
    assert [o.shape[1] for o in outs] == model.out_channels == [64, 256]
    assert [tuple(o.shape[2:]) for o in outs] == [(32, 48), (4, 6)]
    with pytest.raises(ValueError, match='out of range for 5 resnet18 feature levels'):
        TimmFeatures('resnet18', out_indices=(1, 5))


def test_every_trainable_parameter_gets_a_gradient():
    model = TimmFeatures('resnet18', out_indices=(1, 2), drop_path_rate=0.1).train()
    sum(o.mean() for o in model(torch.randn(2, 3, 64, 64))).backward()
    assert not any(n.startswith(('body.layer3', 'body.layer4')) for n, _ in
                   model.named_parameters())  # nothing after the last output
    assert all(p.grad is not None for p in model.parameters())


# --------------------------------------------------------------------------- OpenMMLab
@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
def test_registered_under_downstream_scopes(scope):
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    cfg = dict(type='TimmFeatures', model_name='resnet18', frozen_stages=1)
    with DefaultScope.overwrite_default_scope(scope):
        built = [MODELS.build(cfg), registry.build(cfg)]
    assert all(type(m) is TimmFeatures and m.frozen_stages == 1 for m in built)
    assert MODELS.get('TimmFeatures') is TimmFeatures


def semantic_fpn(name, neck_in=None):
    return dict(
        type='EncoderDecoder',
        backbone=dict(type='TimmFeatures', model_name=name),
        neck=dict(type='FPN', in_channels=neck_in or WIDTHS[name], out_channels=16, num_outs=4),
        decode_head=dict(type='FPNHead', in_channels=[16] * 4, in_index=[0, 1, 2, 3],
                         feature_strides=[4, 8, 16, 32], channels=8, num_classes=5,
                         norm_cfg=dict(type='BN'), align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


@pytest.mark.parametrize('name', ['resnet18', 'convnext_nano'])
def test_semantic_fpn_segmentor_runs_and_widths_are_checked(name):
    cfg = Config(dict(model=semantic_fpn(name)))
    check_model_widths(cfg)
    with DefaultScope.overwrite_default_scope('mmseg'):
        segmentor = MODELS.build(cfg.model).eval()
    assert type(segmentor.backbone) is TimmFeatures
    with torch.no_grad():
        logits = segmentor(torch.randn(2, 3, 96, 128), mode='tensor')
    assert tuple(logits.shape) == (2, 5, 24, 32)
    with pytest.raises(ValueError, match=r'model.neck.in_channels = \[1, 2, 3, 4\]'):
        check_model_widths(Config(dict(model=semantic_fpn(name, neck_in=[1, 2, 3, 4]))))


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize('name', ['resnet18', 'convnext_nano'])
def test_pretrain_tool_checkpoint_loads_every_weight(name, tmp_path):
    source = classifier(name)
    path = save_like_pretrain_tool(tmp_path / 'checkpoint.pth', source)
    model = TimmFeatures(name, init_cfg=pretrained(path))
    model.init_weights()
    theirs, ours = PROBE[name]
    torch.testing.assert_close(model.state_dict()[ours], source.state_dict()[theirs])
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():  # every kept weight: the classifier trunk's features
        expected = source.eval().forward_intermediates(x, indices=list(model.out_indices),
                                                       intermediates_only=True)
        for ours, theirs in zip(model.eval()(x), expected):
            torch.testing.assert_close(ours, theirs)


def test_safetensors_and_fewer_outputs_drop_only_what_the_backbone_lacks(tmp_path):
    from safetensors.torch import save_file
    source = classifier('resnet18')
    path = str(tmp_path / 'resnet18.safetensors')
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    model = TimmFeatures('resnet18', out_indices=(1, 2), init_cfg=pretrained(path))
    model.init_weights()  # layer3, layer4 and fc are not in the backbone: dropped
    torch.testing.assert_close(model.body.layer2[1].bn2.running_var,
                               source.layer2[1].bn2.running_var)


def test_pretrained_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match='pretrained is deprecated'):
        model = TimmFeatures('resnet18', pretrained='r18.pth')
    assert model.init_cfg == dict(type='Pretrained', checkpoint='r18.pth')


def test_backbone_weights_of_a_segmentor_load_with_prefix(tmp_path):
    trained = TimmFeatures('convnext_nano')
    with torch.no_grad():
        for param in trained.parameters():
            param.normal_(std=0.05)
    state = {f'backbone.{k}': v for k, v in trained.state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.zeros(5, 16, 1, 1)
    path = tmp_path / 'iter_10.pth'
    torch.save({'meta': {'iter': 10}, 'state_dict': state}, path)
    for kwargs in (dict(prefix='backbone.'), {}):  # without prefix: the backbone. weights
        model = TimmFeatures('convnext_nano', init_cfg=pretrained(path, **kwargs))
        model.init_weights()
        torch.testing.assert_close(model.body.stages_2.blocks[3].gamma,
                                   trained.body.stages_2.blocks[3].gamma)
    with pytest.raises(CheckpointMismatchError, match="no weights under prefix 'student.'"):
        TimmFeatures('convnext_nano', init_cfg=pretrained(path, prefix='student.')).init_weights()


def test_another_models_checkpoint_fails_naming_keys(tmp_path):
    path = tmp_path / 'gfnet_h_ti.pth'
    torch.save({'model': timm.create_model('gfnet_h_ti').state_dict()}, path)
    with pytest.raises(CheckpointMismatchError) as err:
        TimmFeatures('resnet18', init_cfg=pretrained(path)).init_weights()
    message = str(err.value)
    assert "does not fit timm 'resnet18'" in message
    assert 'missing in checkpoint (' in message and 'layer1.0.conv1.weight' in message
    assert 'unexpected in checkpoint (' in message and 'patch_embed.0.proj.weight' in message


def test_misfit_and_incomplete_classifiers_fail_naming_keys(tmp_path):
    state = classifier('resnet18').state_dict()
    path = tmp_path / 'resnet18.pth'
    torch.save({'model': state}, path)
    with pytest.raises(CheckpointMismatchError,
                       match=r'conv1\.weight: checkpoint \(64, 3, 7, 7\) vs model \(64, 1, 7, 7\)'):
        TimmFeatures('resnet18', in_channels=1, init_cfg=pretrained(path)).init_weights()
    del state['layer1.0.bn1.running_var']
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError,
                       match=r'missing in checkpoint \(1\):\n    layer1\.0\.bn1\.running_var'):
        TimmFeatures('resnet18', init_cfg=pretrained(path)).init_weights()


def test_crafted_pickle_is_refused_before_it_runs(tmp_path):
    sentinel = str(tmp_path / 'ran')
    state = {f'backbone.{k}': v for k, v in TimmFeatures('resnet18').state_dict().items()}
    path = write_crafted(tmp_path / 'evil.pth', state, 'numpy_runstring', 'top_level', sentinel)
    model = TimmFeatures('resnet18', init_cfg=pretrained(path, prefix='backbone.'))
    with pytest.raises(UnsafeCheckpointError, match='refusing to load'):
        model.init_weights()
    assert not osp.exists(sentinel)


# --------------------------------------------------------------------------- training modes
def test_frozen_stages_freeze_stem_and_stages_and_stay_in_eval():
    model = TimmFeatures('resnet18', frozen_stages=2)
    assert model.train() is model
    frozen = {n.split('.')[1] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {'conv1', 'bn1', 'layer1', 'layer2'}
    assert not model.body.layer2.training and model.body.layer3.training
    before = model.body.bn1.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(model.body.bn1.running_mean, before)
    assert model.eval() is model and not model.body.layer3.training

    stem_only = TimmFeatures('convnext_nano', frozen_stages=0).train()
    assert {n.split('.')[1] for n, p in stem_only.named_parameters() if not p.requires_grad} \
        == {'stem_0', 'stem_1'}
    assert not stem_only.body.stem_0.training and stem_only.body.stages_0.training
    with pytest.raises(ValueError, match=r'frozen_stages must be in \[-1, 4\]'):
        TimmFeatures('resnet18', frozen_stages=5)


def test_norm_eval_keeps_batchnorm_in_eval():
    model = TimmFeatures('resnet18', norm_eval=True)
    assert model.train() is model
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)
    assert model.body.layer1.training
    before = model.body.layer3[0].bn1.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(model.body.layer3[0].bn1.running_mean, before)
    assert all(m.training for m in TimmFeatures('resnet18').train().modules())
