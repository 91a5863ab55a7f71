"""Checkpoint layouts: released files, timm loading, backbones, mismatches."""
import pytest
import timm
import torch

from mmengine.logging import HistoryBuffer

from gfnet_dense import CheckpointMismatchError, GFNet, GFNetH
from gfnet_dense.layers import infer_grid_size
from gfnet_dense.checkpoints import UnsafeCheckpointError

TINY_H = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 2, 1], layer_scale_init=1e-2)

# the released GFNet-H-S checkpoint (gfnet-h-s.pth) layout
RELEASED_H_S_SHAPES = {
    'pos_embed': (1, 3136, 96),
    'patch_embed.0.proj.weight': (96, 3, 4, 4),
    'patch_embed.1.proj.weight': (192, 96, 2, 2),
    'patch_embed.2.proj.weight': (384, 192, 2, 2),
    'patch_embed.3.proj.weight': (768, 384, 2, 2),
    'blocks.0.0.gamma': (96,),
    'blocks.0.0.filter.complex_weight': (56, 29, 96, 2),
    'blocks.1.2.filter.complex_weight': (28, 15, 192, 2),
    'blocks.2.9.filter.complex_weight': (14, 8, 384, 2),
    'blocks.3.2.filter.complex_weight': (7, 4, 768, 2),
    'blocks.3.2.mlp.fc1.weight': (3072, 768),
    'blocks.3.2.mlp.fc2.weight': (768, 3072),
    'blocks.3.2.norm2.bias': (768,),
    'norm.weight': (768,),
    'head.weight': (1000, 768),
}
PARAMS = {'gfnet_ti': 7_511_784, 'gfnet_xs': 15_985_768, 'gfnet_s': 24_869_608,
          'gfnet_b': 43_120_616, 'gfnet_h_ti': 15_085_096, 'gfnet_h_s': 32_162_632,
          'gfnet_h_b': 53_744_200}
PAPER_PARAMS_M = {'gfnet_ti': 7.51, 'gfnet_xs': 15.99, 'gfnet_s': 24.87, 'gfnet_b': 43.12,
                 'gfnet_h_ti': 15.09, 'gfnet_h_s': 32.16, 'gfnet_h_b': 53.74}


@pytest.mark.parametrize('name', sorted(PARAMS))
def test_classifier_parameter_counts_match_released_models(name):
    model = timm.create_model(name)
    count = sum(p.numel() for p in model.parameters())
    assert count == PARAMS[name]
    assert round(count / 1e6, 2) == PAPER_PARAMS_M[name]


def test_h_s_state_dict_has_released_layout():
    sd = timm.create_model('gfnet_h_s').state_dict()
    for key, shape in RELEASED_H_S_SHAPES.items():
        assert tuple(sd[key].shape) == shape, key
    iso = timm.create_model('gfnet_xs').state_dict()
    assert tuple(iso['pos_embed'].shape) == (1, 196, 384)
    assert tuple(iso['blocks.11.filter.complex_weight'].shape) == (14, 8, 384, 2)
    assert 'patch_embed.proj.weight' in iso and not any('gamma' in k for k in iso)


def released_file(tmp_path, name='gfnet_h_s', **kwargs):
    model = timm.create_model(name, **kwargs).eval()
    path = tmp_path / f'{name}.pth'
    torch.save({'model': model.state_dict()}, path)
    return model, path


def test_released_file_loads_strictly_and_reproduces_logits(tmp_path):
    source, path = released_file(tmp_path)
    model = timm.create_model('gfnet_h_s').eval()
    model.load_state_dict(torch.load(path)['model'])  # strict, as the README says
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x))


def test_timm_pretrained_file_resizes_for_higher_resolution(tmp_path):
    source, path = released_file(tmp_path, 'gfnet_ti')
    model = timm.create_model('gfnet_ti', pretrained=True, img_size=384,
                              pretrained_cfg_overlay=dict(file=str(path)))
    assert model.blocks[0].filter.complex_weight.shape == (24, 13, 256, 2)
    assert model.pos_embed.shape == (1, 576, 256)
    torch.testing.assert_close(model.head.weight, source.head.weight)


def test_backbone_loads_released_checkpoint_and_matches_classifier(tmp_path):
    source, path = released_file(tmp_path, 'gfnet_h_ti')
    backbone = GFNetH(arch='ti', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    backbone.eval()
    torch.testing.assert_close(backbone.norm3.weight, source.norm.weight)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        last = backbone(x)[-1]
        expected = source.forward_features(x).permute(0, 3, 1, 2)
    torch.testing.assert_close(last, expected)


@pytest.mark.parametrize('mode', ['bicubic', 'spatial'])
def test_backbone_load_resizes_filters_and_pos_embed(tmp_path, mode):
    source, path = released_file(tmp_path, 'gfnet_h_ti')
    backbone = GFNetH(arch='ti', pretrain_img_size=512, filter_resize=mode,
                      init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    assert backbone.pos_embed.shape == (1, 128 * 128, 64)
    assert backbone.blocks[0][0].filter.complex_weight.shape == (128, 65, 64, 2)
    if mode == 'spatial':  # same pixel-space kernel as the released 56x56 filter
        small = torch.fft.irfft2(torch.view_as_complex(source.blocks[0][0].filter.complex_weight),
                                 s=(56, 56), dim=(0, 1))
        big = torch.fft.irfft2(torch.view_as_complex(backbone.blocks[0][0].filter.complex_weight),
                               s=(128, 128), dim=(0, 1))
        torch.testing.assert_close(big[:28, :28], small[:28, :28], atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(big[-28:, -28:], small[-28:, -28:], atol=1e-6, rtol=1e-4)


def test_backbone_loads_mmengine_segmentor_checkpoint(tmp_path):
    trained = GFNetH(arch=TINY_H, out_indices=(0, 1, 2, 3))
    state = {f'backbone.{k}': v for k, v in trained.state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.zeros(150, 8, 1, 1)
    path = tmp_path / 'iter_100.pth'
    # a real MMEngine checkpoint pickles Python objects beside the tensors
    torch.save({'meta': {'iter': 100}, 'state_dict': state,
                'message_hub': {'loss': HistoryBuffer([1.0, 0.5], [1, 1])}}, path)
    model = GFNetH(arch=TINY_H, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    for k, v in trained.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, msg=k)


def test_wrong_variant_lists_mismatched_keys(tmp_path):
    _, path = released_file(tmp_path, 'gfnet_h_ti')
    model = GFNetH(arch='s', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError) as err:
        model.init_weights()
    message = str(err.value)
    assert 'shape mismatch' in message
    assert 'patch_embed.0.proj.weight: checkpoint (64, 3, 4, 4) vs model (96, 3, 4, 4)' in message
    # 201 misfit keys: the first 20 in the model's order, then a count
    assert 'shape mismatch (201)' in message and message.endswith('... and 181 more')
    assert len(message.splitlines()) < 30


def test_isotropic_checkpoint_into_hierarchical_fails_with_key_lists(tmp_path):
    _, path = released_file(tmp_path, 'gfnet_ti')
    model = GFNetH(arch='ti', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match=r'missing in checkpoint(.|\n)*unexpected'):
        model.init_weights()


def test_isotropic_backbone_loads_released_gfnet(tmp_path):
    source, path = released_file(tmp_path, 'gfnet_ti')
    model = GFNet(arch='ti', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    torch.testing.assert_close(model.norm11.weight, source.norm.weight)
    torch.testing.assert_close(model.blocks[3].mlp.fc1.weight, source.blocks[3].mlp.fc1.weight)


def test_nan_weights_are_rejected(tmp_path):
    model = GFNetH(arch=TINY_H)
    state = model.state_dict()
    state['blocks.1.0.mlp.fc1.weight'][0, 0] = float('nan')
    path = tmp_path / 'nan.pth'
    torch.save({'model': state}, path)
    target = GFNetH(arch=TINY_H, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match=r'NaN.*blocks\.1\.0\.mlp\.fc1\.weight'):
        target.init_weights()


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointMismatchError, match='corrupt, truncated'):
        GFNetH(arch=TINY_H, init_cfg=dict(type='Pretrained', checkpoint=str(bad))).init_weights()
    with pytest.raises(FileNotFoundError, match='does not exist'):
        GFNetH(arch=TINY_H,
               init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'x.pth'))).init_weights()


def test_deprecated_pretrained_argument(tmp_path):
    _, path = released_file(tmp_path, 'gfnet_h_ti')
    with pytest.warns(DeprecationWarning):
        model = GFNetH(arch='ti', pretrained=str(path))
    model.init_weights()
    assert model.is_init


def test_infer_grid_size():
    assert infer_grid_size((56, 29)) == (56, 56)
    assert infer_grid_size((7, 4)) == (7, 7)
    assert infer_grid_size((8, 7)) == (8, 12)


class _Foreign:
    pass


def test_checkpoint_with_foreign_python_objects_is_refused(tmp_path):
    state = GFNetH(arch=TINY_H).state_dict()
    path = tmp_path / 'foreign.pth'
    torch.save({'model': state, 'extra': _Foreign()}, path)
    target = GFNetH(arch=TINY_H, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(UnsafeCheckpointError, match=r'refusing to load(.|\n)*_Foreign'):
        target.init_weights()


def test_init_cfg_prefix_and_map_location_are_honoured(tmp_path):
    source = GFNetH(arch=TINY_H)
    path = tmp_path / 'wrapped.pth'
    torch.save({'state_dict': {f'teacher.body.{k}': v for k, v in source.state_dict().items()}},
               path)
    target = GFNetH(arch=TINY_H, init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                               prefix='teacher.body.', map_location='cpu'))
    target.init_weights()
    torch.testing.assert_close(target.pos_embed, source.pos_embed)
    missing = GFNetH(arch=TINY_H, init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                                prefix='student.'))
    with pytest.raises(CheckpointMismatchError, match=r"no weights under prefix 'student\.'"):
        missing.init_weights()
    # meta tensors prove the map_location reached torch.load
    meta = GFNetH(arch=TINY_H, init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                             prefix='teacher.body.', map_location='meta'))
    with pytest.raises(Exception, match='meta'):
        meta.init_weights()


def test_init_cfg_unknown_keys_are_rejected(tmp_path):
    _, path = released_file(tmp_path, 'gfnet_h_ti')
    model = GFNetH(arch='ti', init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                            revise_keys=[('^x', '')]))
    with pytest.raises(ValueError, match=r"unsupported keys \['revise_keys'\]"):
        model.init_weights()


def test_directory_instead_of_file_says_so(tmp_path):
    (tmp_path / 'iter_8.pth').write_bytes(b'')
    model = GFNetH(arch=TINY_H, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path)))
    with pytest.raises(IsADirectoryError, match=r"is a directory(.|\n)*iter_8\.pth"):
        model.init_weights()


def test_segmentor_checkpoint_loads_into_detector_backbone_with_other_outputs(tmp_path):
    seg_backbone = GFNetH(arch=TINY_H)  # out_indices (0, 1, 2, 3): norm0..norm3
    for i in range(4):
        torch.nn.init.normal_(getattr(seg_backbone, f'norm{i}').weight)
    path = tmp_path / 'segmentor.pth'
    torch.save({'meta': {}, 'state_dict': {
        **{f'backbone.{k}': v for k, v in seg_backbone.state_dict().items()},
        'decode_head.conv_seg.weight': torch.zeros(3, 8, 1, 1)}}, path)
    det_backbone = GFNetH(arch=TINY_H, out_indices=(1, 2, 3),
                          init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    det_backbone.init_weights()
    assert not hasattr(det_backbone, 'norm0')
    for i in (1, 2, 3):
        torch.testing.assert_close(getattr(det_backbone, f'norm{i}').weight,
                                   getattr(seg_backbone, f'norm{i}').weight)
    torch.testing.assert_close(det_backbone.blocks[3][0].filter.complex_weight,
                               seg_backbone.blocks[3][0].filter.complex_weight)
