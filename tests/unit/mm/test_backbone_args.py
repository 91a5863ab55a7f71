"""Ill-typed or out-of-range backbone arguments (as ``--cfg-options`` gives them) fail at the
top of the constructor with one line naming the argument, what it must be and what it got."""
import argparse

import numpy as np
import pytest
from mmengine.config import Config, DictAction

import gfnet_dense  # noqa: F401  (registers the backbones)
from gfnet_dense import AFFNet, GFNet, GFNetH
from gfnet_dense.mm.arg_checks import BackboneArgumentError, check_backbone_args
from helpers import DEMO_CONFIG

TINY_H = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1])
TINY_ISO = dict(embed_dim=16, depth=4)
PAIR = 'a positive int or a pair (H, W) of positive ints'
OUT_H = 'an int or a non-empty list of ints in [-4, 3] (4 stages)'
RATE = "a number in [0, 1) (or None: the variant's own rate)"
FROZEN = 'frozen_stages must be an int in '


@pytest.mark.parametrize('kind,args,message', [
    ('GFNetH', dict(frozen_stages='abc'), FROZEN + "[-1, 4], got 'abc' (str)"),
    ('GFNetH', dict(frozen_stages=2.5), FROZEN + '[-1, 4], got 2.5 (float)'),
    ('GFNetH', dict(frozen_stages=5), FROZEN + '[-1, 4], got 5 (int)'),
    ('GFNetH', dict(pretrain_img_size=-32), f'pretrain_img_size must be {PAIR}, got -32 (int)'),
    ('GFNetH', dict(pretrain_img_size=0), f'pretrain_img_size must be {PAIR}, got 0 (int)'),
    ('GFNetH', dict(pretrain_img_size='224'), f"pretrain_img_size must be {PAIR}, got '224'"),
    ('GFNetH', dict(pretrain_img_size=[224]), f'pretrain_img_size must be {PAIR}, got [224]'),
    ('GFNetH', dict(pretrain_img_size=(224, -1)),
     f'pretrain_img_size must be {PAIR}, got (224, -1) (tuple)'),
    ('GFNetH', dict(in_channels='3'), "in_channels must be a positive int, got '3' (str)"),
    ('GFNetH', dict(in_channels=0), 'in_channels must be a positive int, got 0 (int)'),
    ('GFNetH', dict(out_indices=['a']), f"out_indices must be {OUT_H}, got ['a'] (list)"),
    ('GFNetH', dict(out_indices='0123'), f"out_indices must be {OUT_H}, got '0123' (str)"),
    ('GFNetH', dict(out_indices=()), f'out_indices must be {OUT_H}, got () (tuple)'),
    ('GFNetH', dict(out_indices=(0, 4)), 'out_indices entry 4 is out of range for 4 stages: '
     'entries must be ints in [-4, 3], got (0, 4)'),
    ('GFNetH', dict(drop_path_rate=1.5), f'drop_path_rate must be {RATE}, got 1.5 (float)'),
    ('GFNetH', dict(drop_path_rate='x'), f"drop_path_rate must be {RATE}, got 'x' (str)"),
    ('GFNetH', dict(drop_path_rate=float('nan')), f'drop_path_rate must be {RATE}, got nan'),
    ('GFNetH', dict(norm_eval='no'), "norm_eval must be True or False, got 'no' (str)"),
    ('GFNetH', dict(with_cp=1), 'with_cp must be True or False, got 1 (int)'),
    ('GFNetH', dict(mlp_ratio=-1), 'mlp_ratio must be a positive number, got -1 (int)'),
    ('GFNetH', dict(filter_resize='nearest'),
     "unknown filter_resize mode 'nearest'; choose one of 'bicubic', 'bilinear', 'spatial'"),
    ('GFNetH', dict(filter_resize=3), 'unknown filter_resize mode 3 (int)'),
    ('GFNetH', dict(arch='huge'), "unknown arch 'huge'; choose one of ['b', 's', 'ti']"),
    ('GFNetH', dict(arch=3), 'arch must be a name or a dict, got int'),
    ('GFNet', dict(frozen_stages='abc'), FROZEN + "[-1, 4], got 'abc' (str)"),
    ('GFNet', dict(pretrain_img_size=-32), f'pretrain_img_size must be {PAIR}, got -32 (int)'),
    ('GFNet', dict(out_indices=[1.0]), 'out_indices must be an int or a non-empty list of ints '
     'in [-4, 3] (4 blocks), got [1.0] (list)'),
    ('GFNet', dict(arch=dict(embed_dim=8, depth=0)), "arch['depth'] must be a positive int, got 0"),
    ('AFFNet', dict(frozen_stages='abc'), FROZEN + "[-1, 5], got 'abc' (str)"),
    ('AFFNet', dict(output_stride='16'), "output_stride must be 8, 16 or 32, got '16' (str)"),
    ('AFFNet', dict(in_channels=-3), 'in_channels must be a positive int, got -3 (int)'),
    ('AFFNet', dict(drop_path_rate=-0.1), f'drop_path_rate must be {RATE}, got -0.1 (float)'),
    ('AFFNet', dict(out_indices=5), 'out_indices entry 5 is out of range for 5 stages'),
])
def test_bad_argument_fails_with_one_line(kind, args, message):
    cls = {'GFNetH': GFNetH, 'GFNet': GFNet, 'AFFNet': AFFNet}[kind]
    args = dict({'GFNetH': dict(arch=TINY_H), 'GFNet': dict(arch=TINY_ISO),
                 'AFFNet': dict(arch='et')}[kind], **args)
    with pytest.raises(BackboneArgumentError) as err:
        cls(**args)
    text = str(err.value)
    assert text.startswith(f'model.backbone ({kind}): ') and message in text, text
    assert '\n' not in text
    # both kinds of error the checks it replaces raised
    assert isinstance(err.value, ValueError) and isinstance(err.value, TypeError)


def test_good_edge_values_build():
    GFNetH(arch=TINY_H, frozen_stages=4, out_indices=np.int64(3), pretrain_img_size=(64, 96),
           drop_path_rate=0.0, norm_eval=True, with_cp=False, filter_resize='spatial')
    GFNetH(arch=TINY_H, frozen_stages=-1, out_indices=[-1, 0], pretrain_img_size=32)
    GFNet(arch=TINY_ISO, out_indices=None, frozen_stages=4, drop_path_rate=None)
    AFFNet(arch='et', frozen_stages=5, output_stride=8, out_indices=(4,))


def test_a_config_key_is_checked_alone():
    """The checks run on any subset of keys (a config's ``model.backbone``), with the
    default arch when none is given."""
    check_backbone_args('GFNetH', dict(frozen_stages=4))  # arch 's': 4 stages
    with pytest.raises(BackboneArgumentError, match=r'GFNet\): frozen_stages must be an int in '
                       r'\[-1, 19\]'):  # arch 's': 19 blocks
        check_backbone_args('GFNet', dict(frozen_stages=20))


@pytest.mark.parametrize('option,message', [
    ('model.backbone.frozen_stages=abc', "frozen_stages must be an int in [-1, 4], got 'abc'"),
    ('model.backbone.pretrain_img_size=-32', 'pretrain_img_size must be a positive int'),
    ('model.backbone.with_cp=yes', "with_cp must be True or False, got 'yes' (str)"),
])
def test_cfg_options_reach_the_checks_through_mmseg(option, message):
    """``--cfg-options`` as MMEngine parses it, built by MMSeg's registry (as its own
    tools do): the error is ours, raised before any layer is built."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', option]).cfg_options)
    init_default_scope('mmseg')
    with pytest.raises(BackboneArgumentError, match=r'^model\.backbone \(GFNetH\): ') as err:
        MODELS.build(cfg.model)
    assert message in str(err.value)
