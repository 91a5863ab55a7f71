"""AFFNet files in the public implementation's layout (cvnets) through every entry point.

``tests/fixtures/affnet_cvnets_keys.json`` holds the key names and shapes of the
public AFFNet-ET/T/S classifiers and DeepLabv3 segmentation models, as written by
``tools/check_affnet_equivalence.py --write-keys`` from the public code (data only).
The checkpoints below are built from those names with random values, so every
test checks that each public tensor lands in the right place of ours.
"""
import json
import os.path as osp

import pytest
import timm
import torch

from gfnet_dense import AFFNet, CheckpointMismatchError
from gfnet_dense.checkpoints.cvnets import cvnets_to_ours, is_cvnets_layout, ours_to_cvnets
from helpers import run_tool

TESTS = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(TESTS, 'fixtures', 'affnet_cvnets_keys.json')
with open(FIXTURE) as f:
    PUBLIC_KEYS = json.load(f)
VARIANTS = ('affnet_et', 'affnet_t', 'affnet_s')
# parameters of the public models (tools/check_affnet_equivalence.py)
PUBLIC_PARAMS = {'affnet_et': 1_436_264, 'affnet_t': 2_654_232, 'affnet_s': 5_568_696}


def public_state(name: str, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in PUBLIC_KEYS[name].items():
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(7)
        else:
            state[key] = torch.randn(shape, generator=gen)
    return state


def expect_same_tensors(model_state: dict, public: dict, strip: str = '') -> None:
    """Every public tensor (under ``strip``) is in ``model_state`` under our name."""
    ours = cvnets_to_ours(public)
    assert len(ours) == len({k for k in public if k.startswith(strip)
                             and not k.startswith('seg_head.')})
    for key, value in ours.items():
        torch.testing.assert_close(model_state[key], value, msg=key)


@pytest.mark.parametrize('name', VARIANTS)
def test_public_keys_map_one_to_one_onto_ours(name):
    model = timm.create_model(name)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    mapped = cvnets_to_ours({k: torch.empty(s) for k, s in PUBLIC_KEYS[name].items()})
    assert {k: tuple(v.shape) for k, v in mapped.items()} == ours
    back = ours_to_cvnets(model.state_dict())
    assert {k: list(v.shape) for k, v in back.items()} == PUBLIC_KEYS[name]
    assert sum(p.numel() for p in model.parameters()) == PUBLIC_PARAMS[name]


def test_round_trip_keeps_every_tensor():
    state = timm.create_model('affnet_et').state_dict()
    back = cvnets_to_ours(ours_to_cvnets(state))
    assert back.keys() == state.keys()
    assert all(back[k] is state[k] for k in state)


def test_mobilenet_block_without_expansion_maps_both_ways():
    public = {'conv_1.block.conv.weight': torch.zeros(1),
              'layer_1.0.block.conv_3x3.block.conv.weight': torch.zeros(2),
              'layer_1.0.block.red_1x1.block.norm.bias': torch.zeros(3)}
    ours = cvnets_to_ours(public)
    assert set(ours) == {'stem.0.weight', 'stages.0.0.block.0.0.weight',
                         'stages.0.0.block.1.1.bias'}
    assert ours_to_cvnets(ours).keys() == public.keys()


@pytest.fixture(scope='module')
def public_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('cvnets')
    files = {}
    for name in ('affnet_et', 'deeplabv3_affnet_et'):
        state = public_state(name)
        files[name] = (str(folder / f'{name}.pt'), state)
        torch.save(state, files[name][0])  # cvnets saves plain state dicts
    return files


def test_detects_both_public_layouts(public_files):
    assert all(is_cvnets_layout(state) for _, state in public_files.values())
    assert not is_cvnets_layout(timm.create_model('affnet_et').state_dict())


def test_timm_pretrained_file_loads_public_classifier(public_files):
    path, state = public_files['affnet_et']
    model = timm.create_model('affnet_et', pretrained=True,
                              pretrained_cfg_overlay=dict(file=path))
    expect_same_tensors(model.state_dict(), state)


@pytest.mark.parametrize('name,strip', [('affnet_et', ''), ('deeplabv3_affnet_et', 'encoder.')])
def test_backbone_init_cfg_loads_public_files(public_files, name, strip):
    path, state = public_files[name]
    backbone = AFFNet(arch='et', output_stride=8 if strip else 32,
                      init_cfg=dict(type='Pretrained', checkpoint=path))
    backbone.init_weights()
    own = backbone.state_dict()
    trunk = {k: v for k, v in state.items() if not k.startswith((
        'seg_head.', 'classifier.', 'conv_1x1_exp.', 'encoder.conv_1x1_exp.'))}
    expect_same_tensors(own, trunk, strip)


def test_backbone_init_cfg_with_prefix_takes_the_encoder(public_files):
    path, state = public_files['deeplabv3_affnet_et']
    backbone = AFFNet(arch='et', init_cfg=dict(type='Pretrained', checkpoint=path,
                                               prefix='encoder.'))
    backbone.init_weights()
    torch.testing.assert_close(backbone.stem[0].weight, state['encoder.conv_1.block.conv.weight'])


def test_another_variants_public_file_is_refused_with_the_keys(public_files):
    path, _ = public_files['affnet_et']
    backbone = AFFNet(arch='s', init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointMismatchError, match=r'shape mismatch .*\n.*stages\.'):
        backbone.init_weights()


def test_a_public_file_missing_a_tensor_is_refused_naming_it(tmp_path):
    state = public_state('affnet_et')
    del state['layer_4.1.global_rep.2.filter.w1']
    torch.save(state, tmp_path / 'partial.pt')
    # timm's strict load
    with pytest.raises(RuntimeError, match=r'stages\.3\.blocks\.2\.filter\.w1'):
        timm.create_model('affnet_et', pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(tmp_path / 'partial.pt')))
    backbone = AFFNet(arch='et', init_cfg=dict(type='Pretrained',
                                               checkpoint=str(tmp_path / 'partial.pt')))
    with pytest.raises(CheckpointMismatchError, match=r'missing in checkpoint \(1\):\n *stages\.3'):
        backbone.init_weights()


def test_convert_checkpoint_public_to_ours_and_back(public_files, tmp_path):
    path, state = public_files['affnet_et']
    released, backbone, public = (str(tmp_path / n) for n in ('ours.pth', 'bb.pth', 'pub.pt'))
    run_tool('convert_checkpoint.py', path, released, '--model', 'affnet_et')
    model = timm.create_model('affnet_et', pretrained=True,
                              pretrained_cfg_overlay=dict(file=released))
    expect_same_tensors(model.state_dict(), state)
    run_tool('convert_checkpoint.py', released, public, '--model', 'affnet_et',
             '--to', 'cvnets')
    written = torch.load(public, weights_only=True)
    assert written.keys() == state.keys()
    assert all(torch.equal(written[k], v) for k, v in state.items())
    seg_path, seg_state = public_files['deeplabv3_affnet_et']
    run_tool('convert_checkpoint.py', seg_path, backbone, '--model', 'affnet_et',
             '--to', 'backbone')
    torch.testing.assert_close(torch.load(backbone, weights_only=True)['state_dict']
                               ['stages.4.norm.weight'],
                               seg_state['encoder.layer_5.1.global_rep.3.weight'])


def test_convert_checkpoint_refuses_cvnets_for_gfnet(public_files, tmp_path):
    result = run_tool('convert_checkpoint.py', public_files['affnet_et'][0],
                      str(tmp_path / 'x.pt'), '--model', 'gfnet_h_ti', '--to', 'cvnets',
                      check=False)
    assert result.returncode != 0
    assert 'not an AFFNet' in result.stderr


# written by hand from the public model's module names (cvnets) and ours, not from the mapping
HAND_MAPPED = {
    'conv_1.block.conv.weight': 'stem.0.weight',
    'conv_1.block.norm.running_var': 'stem.1.running_var',
    'layer_1.0.block.exp_1x1.block.conv.weight': 'stages.0.0.block.0.0.weight',
    'layer_2.1.block.red_1x1.block.norm.bias': 'stages.1.1.block.2.1.bias',
    'layer_3.0.block.conv_3x3.block.norm.weight': 'stages.2.downsample.block.1.1.weight',
    'layer_3.1.global_rep.0.filter.w1': 'stages.2.blocks.0.filter.w1',
    'layer_3.1.global_rep.1.norm2.bias': 'stages.2.blocks.1.norm2.bias',
    'layer_3.1.global_rep.0.mlp.block.red_1x1.block.conv.weight':
        'stages.2.blocks.0.mlp.block.2.0.weight',
    'layer_3.1.global_rep.2.weight': 'stages.2.norm.weight',
    'layer_3.1.conv_proj.block.conv.weight': 'stages.2.proj.0.weight',
    'layer_3.1.fusion.block.norm.bias': 'stages.2.fusion.1.bias',
    'conv_1x1_exp.block.norm.weight': 'conv_1x1_exp.1.weight',
    'classifier.fc.bias': 'head.bias',
}


def test_mapping_matches_hand_written_names():
    """Each kind of key lands where the module names say, carrying its own tensor (two
    tensors of one shape swapped would pass a shape-only check)."""
    public = public_state('affnet_et')
    assert HAND_MAPPED.keys() <= public.keys()
    ours = cvnets_to_ours(public)
    model_keys = timm.create_model('affnet_et').state_dict().keys()
    for cvnets_key, our_key in HAND_MAPPED.items():
        assert our_key in model_keys, our_key
        assert ours[our_key] is public[cvnets_key], (cvnets_key, our_key)
    back = ours_to_cvnets(ours)
    for cvnets_key in HAND_MAPPED:
        assert back[cvnets_key] is public[cvnets_key], cvnets_key
