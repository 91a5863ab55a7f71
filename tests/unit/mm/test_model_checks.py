"""The tools' checks: checkpoints that do not fit, model widths, AMP dtype, bad input."""
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
import timm
import torch
from mmengine.config import Config
from PIL import Image

from gfnet_dense import AFFNet, CheckpointMismatchError
from gfnet_dense.datasets.demo import make_ade20k_demo
from gfnet_dense.mm.model_checks import (check_checkpoint_fits, check_model_widths,
                                      checkpoint_to_check)
from gfnet_dense.mm.runtime import check_data_paths, prepare_config
from helpers import DEMO_CONFIG, ROOT, data_options, load_tool, run_tool, write_tiny_coco

FAST = ['train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
        'train_cfg.max_iters=1', 'train_cfg.val_interval=1']
TINY_DIMS = [8, 16, 24, 32]


def tiny_seg_config():
    """The demo UperNet config with a tiny GFNet-H and narrow heads (builds in a blink)."""
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.model.backbone.arch = dict(embed_dims=TINY_DIMS, depths=[1, 1, 1, 1])
    cfg.model.decode_head.update(in_channels=TINY_DIMS, channels=16)
    cfg.model.auxiliary_head.update(in_channels=24, channels=16)
    return cfg


def build_model(cfg):
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.default_scope)
    return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def tiny_seg():
    return build_model(tiny_seg_config())


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    return make_ade20k_demo(str(tmp_path_factory.mktemp('ade') / 'demo'), num_train=2, num_val=1)


@pytest.fixture(scope='module')
def classifier_ckpt(tmp_path_factory):
    """A GFNet-H-Ti ImageNet classifier file: the wrong thing to test or resume a segmentor from."""
    path = str(tmp_path_factory.mktemp('cls') / 'gfnet-h-ti.pth')
    torch.save({'model': timm.create_model('gfnet_h_ti', num_classes=10).state_dict()}, path)
    return path


# --------------------------------------------------------------------------- A: checkpoints
def test_fitting_checkpoints_pass_in_every_layout(tiny_seg):
    from mmseg.models import SegTTAModel
    state = tiny_seg.state_dict()
    check_checkpoint_fits(tiny_seg, {'state_dict': state, 'meta': {}})
    check_checkpoint_fits(tiny_seg, {f'module.{k}': v for k, v in state.items()})  # DDP-saved
    check_checkpoint_fits(SegTTAModel(module=tiny_seg), {'state_dict': state})  # --tta
    # data_preprocessor buffers come from the config: they may be absent or extra
    check_checkpoint_fits(tiny_seg, {'state_dict': dict(state, **{
        'data_preprocessor.mean': torch.zeros(3, 1, 1)})})
    check_checkpoint_fits(tiny_seg, {'state_dict': state, 'meta': {}, 'message_hub': {}},
                          resume=True)


def test_misfit_checkpoint_lists_every_key_with_shapes(tiny_seg):
    state = dict(tiny_seg.state_dict())
    state['backbone.patch_embed.0.proj.weight'] = torch.zeros(96, 3, 4, 4)
    del state['decode_head.conv_seg.weight']
    state['backbone.extra.weight'] = torch.zeros(2)
    with pytest.raises(CheckpointMismatchError) as err:
        check_checkpoint_fits(tiny_seg, {'state_dict': state})
    message = str(err.value)
    assert 'backbone.patch_embed.0.proj.weight: checkpoint (96, 3, 4, 4) vs model (8, 3, 4, 4)' \
        in message
    assert 'missing in checkpoint (1):\n    decode_head.conv_seg.weight' in message
    assert 'unexpected in checkpoint (1):\n    backbone.extra.weight' in message
    # weights that fit but no training state cannot be resumed
    with pytest.raises(CheckpointMismatchError, match='no training state.*load_from=x.pth'):
        check_checkpoint_fits(tiny_seg, {'state_dict': tiny_seg.state_dict()}, resume=True,
                              path='x.pth')


def test_classifier_weights_say_where_they_belong(tiny_seg):
    backbone = {k[len('backbone.'):]: v for k, v in tiny_seg.state_dict().items()
                if k.startswith('backbone.')}
    with pytest.raises(CheckpointMismatchError) as err:
        check_checkpoint_fits(tiny_seg, {'model': backbone})
    assert "under 'model'" in str(err.value)
    assert 'model.backbone.init_cfg.checkpoint' in str(err.value)
    # a whole model under 'model': MMEngine would load nothing of it
    with pytest.raises(CheckpointMismatchError, match='MMEngine would load none'):
        check_checkpoint_fits(tiny_seg, {'model': tiny_seg.state_dict()})


def test_safetensors_segmentor_weights_load_like_the_tools_load_them(tiny_seg, tmp_path):
    """A whole model as .safetensors: the fit check passes and MMEngine's load_from
    (under the policy) restores every weight; the image demo reads it too."""
    from mmengine.runner.checkpoint import load_checkpoint
    from safetensors.torch import save_file

    from gfnet_dense.mm.model_checks import load_checked
    from gfnet_dense.mm.safe_loading import safe_checkpoint_loading
    for param in tiny_seg.parameters():
        torch.nn.init.normal_(param, std=0.1)
    state = {k: v.contiguous() for k, v in tiny_seg.state_dict().items()}
    path = str(tmp_path / 'segmentor.safetensors')
    save_file(state, path)
    check_checkpoint_fits(tiny_seg, path)
    target = build_model(tiny_seg_config())
    with safe_checkpoint_loading():
        load_checkpoint(target, path, map_location='cpu', strict=True)
    for key, value in state.items():
        torch.testing.assert_close(target.state_dict()[key], value)
    fresh = build_model(tiny_seg_config())
    load_checked(fresh, path)
    torch.testing.assert_close(fresh.backbone.pos_embed, tiny_seg.backbone.pos_embed)


def test_checkpoint_to_check_follows_mmengine(tmp_path):
    cfg = Config(dict(work_dir=str(tmp_path), resume=True, load_from=None))
    assert checkpoint_to_check(cfg) is None  # nothing to resume: a fresh run
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    assert checkpoint_to_check(cfg) == str(tmp_path / 'iter_4.pth')
    cfg.load_from = 'given.pth'
    assert checkpoint_to_check(cfg) == 'given.pth'


@pytest.mark.slow
def test_test_tool_refuses_classifier_checkpoint(tmp_path, demo_root, classifier_ckpt):
    out = run_tool('test.py', DEMO_CONFIG, classifier_ckpt, '--work-dir', str(tmp_path),
                   '--cfg-options', *data_options(demo_root), *FAST, check=False)
    log = out.stdout + out.stderr
    assert out.returncode != 0
    assert "does not fit the config's model (EncoderDecoder)" in out.stderr
    # the first 20 missing keys (the model's first layers) and how many more
    assert 'missing in checkpoint' in out.stderr and 'backbone.pos_embed' in out.stderr
    assert re.search(r'\.\.\. and \d+ more', out.stderr)
    assert 'model.backbone.init_cfg.checkpoint' in out.stderr
    assert 'Iter(test)' not in log and 'mIoU:' not in log  # nothing was evaluated


@pytest.mark.slow
def test_train_load_from_refuses_classifier_checkpoint(tmp_path, demo_root, classifier_ckpt):
    out = run_tool('train.py', DEMO_CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
                   *data_options(demo_root), *FAST, f'load_from={classifier_ckpt}', check=False)
    assert out.returncode != 0
    assert 'error: ' in out.stderr and 'missing in checkpoint' in out.stderr
    assert 'Iter(train)' not in out.stdout + out.stderr


@pytest.mark.slow
def test_train_auto_resume_refuses_misfit_checkpoint(tmp_path, demo_root):
    # the latest checkpoint in the work dir is of another variant (GFNet-H-S widths)
    ckpt = tmp_path / 'iter_4.pth'
    torch.save({'meta': {'epoch': 0, 'iter': 4}, 'message_hub': {},
                'state_dict': {'backbone.patch_embed.0.proj.weight': torch.zeros(96, 3, 4, 4)}},
               ckpt)
    (tmp_path / 'last_checkpoint').write_text(str(ckpt))
    out = run_tool('train.py', DEMO_CONFIG, '--work-dir', str(tmp_path), '--resume',
                   '--cfg-options', *data_options(demo_root), *FAST, check=False)
    assert out.returncode != 0
    assert 'backbone.patch_embed.0.proj.weight: checkpoint (96, 3, 4, 4) vs model (64, 3, 4, 4)' \
        in out.stderr
    assert str(ckpt) in out.stderr
    assert 'Iter(train)' not in out.stdout + out.stderr


# --------------------------------------------------------------------------- A + F: image demo
@pytest.fixture(scope='module')
def tiny_seg_files(tmp_path_factory, tiny_seg):
    """A config file, a checkpoint with MMEngine's meta and one without (as converted or
    hand-saved files are)."""
    folder = tmp_path_factory.mktemp('tiny_seg')
    config = str(folder / 'tiny.py')
    tiny_seg_config().dump(config)
    with_meta, without_meta = str(folder / 'meta.pth'), str(folder / 'plain.pth')
    meta = {'dataset_meta': {'classes': [f'c{i}' for i in range(150)],
                             'palette': [[i, 255 - i, 7] for i in range(150)]}}
    torch.save({'state_dict': tiny_seg.state_dict(), 'meta': meta}, with_meta)
    torch.save({'state_dict': tiny_seg.state_dict()}, without_meta)
    return config, with_meta, without_meta


def write_image(path, mode, size=(56, 40)):
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return str(path)


@pytest.mark.parametrize('mode', ['L', 'LA', 'RGBA', 'P', 'I;16'])
def test_image_demo_converts_gray_rgba_and_palette_images(tmp_path, tiny_seg_files, mode):
    config, ckpt, _ = tiny_seg_files
    image = write_image(tmp_path / 'image.png', mode)
    out = str(tmp_path / 'overlay.png')
    load_tool('image_demo').main([image, config, ckpt, '--out', out])
    assert np.asarray(Image.open(out)).shape == (40, 56, 3)


def test_image_demo_checkpoint_without_meta_takes_classes_from_config(tmp_path, tiny_seg_files):
    config, _, ckpt = tiny_seg_files
    tool = load_tool('image_demo')
    meta = tool.dataset_meta(Config.fromfile(config), {'state_dict': {}})
    assert len(meta['classes']) == 150 and len(meta['palette']) == 150  # ADE20K's
    assert tool.dataset_meta(None, {'meta': {'dataset_meta': {'CLASSES': ['a']}}}) == \
        {'classes': ['a']}
    out = str(tmp_path / 'overlay.jpg')
    tool.main([write_image(tmp_path / 'rgb.jpg', 'RGB'), config, ckpt, '--out', out])
    assert np.asarray(Image.open(out)).shape == (40, 56, 3)


def test_image_demo_refuses_misfit_checkpoint(tmp_path, tiny_seg_files):
    config = tiny_seg_files[0]
    other = build_model(Config.fromfile(DEMO_CONFIG))  # GFNet-H-Ti widths
    ckpt = str(tmp_path / 'ti.pth')
    torch.save({'state_dict': other.state_dict(), 'meta': {'dataset_meta': {'classes': ['a']}}},
               ckpt)
    with pytest.raises(CheckpointMismatchError) as err:
        load_tool('image_demo').main([write_image(tmp_path / 'image.jpg', 'RGB'), config, ckpt,
                                      '--out', str(tmp_path / 'o.png')])
    assert 'backbone.patch_embed.0.proj.weight: checkpoint (64, 3, 4, 4) vs model (8, 3, 4, 4)' \
        in str(err.value)
    assert not osp.exists(tmp_path / 'o.png')


@pytest.mark.parametrize('out', ['result', 'result.pth', 'folder/'])
def test_image_demo_out_must_be_an_image_file(tmp_path, tiny_seg_files, capsys, out):
    config, ckpt, _ = tiny_seg_files
    image = write_image(tmp_path / 'image.jpg', 'RGB')
    with pytest.raises(SystemExit):
        load_tool('image_demo').main([image, config, ckpt, '--out', str(tmp_path / out)])
    assert 'is not an image file name' in capsys.readouterr().err


def test_image_demo_unreadable_image(tmp_path, tiny_seg_files):
    config, ckpt, _ = tiny_seg_files
    (tmp_path / 'notes.png').write_text('not an image')
    with pytest.raises(ValueError, match='not an image file OpenCV can read'):
        load_tool('image_demo').main([str(tmp_path / 'notes.png'), config, ckpt,
                                      '--out', str(tmp_path / 'o.png')])


def test_image_demo_detection_without_meta(tmp_path):
    from mmdet.apis import init_detector
    cfg = Config.fromfile(osp.join(ROOT, 'configs/retinanet_gfnet_h_ti_fpn_1x_coco.py'))
    cfg.model.backbone.init_cfg = None
    cfg.test_dataloader.dataset.metainfo = dict(classes=('square', 'triangle'))
    cfg.model.bbox_head.num_classes = 2
    config = str(tmp_path / 'det.py')
    cfg.dump(config)
    ckpt = str(tmp_path / 'det.pth')
    torch.save({'state_dict': build_model(cfg).state_dict()}, ckpt)
    tool = load_tool('image_demo')
    model = tool.build(init_detector, Config.fromfile(config), ckpt, 'cpu')
    assert model.dataset_meta['classes'] == ('square', 'triangle')  # not COCO's 80
    tool.main([write_image(tmp_path / 'gray.png', 'L', (96, 64)), config, ckpt,
               '--out', str(tmp_path / 'det.jpg'), '--score-thr', '0.0'])
    assert np.asarray(Image.open(tmp_path / 'det.jpg')).shape == (64, 96, 3)


# --------------------------------------------------------------------------- B: AMP
@pytest.mark.parametrize('amp,dtype,loss_scale', [('fp16', 'float16', 'dynamic'),
                                                  (True, 'float16', 'dynamic'),
                                                  ('bf16', 'bfloat16', dict(enabled=False))])
def test_amp_dtype_and_loss_scaling(monkeypatch, tmp_path, amp, dtype, loss_scale):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = prepare_config(Config.fromfile(DEMO_CONFIG), launcher='none', work_dir=str(tmp_path),
                         config_path=DEMO_CONFIG, amp=amp)
    wrapper = cfg.optim_wrapper
    assert wrapper.type == 'AmpOptimWrapper'
    assert (wrapper.dtype, wrapper.loss_scale) == (dtype, loss_scale)
    assert wrapper.optimizer.type == 'AdamW'


def test_amp_options_of_train_tool(monkeypatch, tmp_path):
    tool = load_tool('train')
    assert tool.parse_args(['c.py', '--amp']).amp == 'fp16'
    assert tool.parse_args(['c.py', '--amp', 'bf16']).amp == 'bf16'
    assert tool.parse_args(['c.py']).amp == 'none'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(RuntimeError, match='--amp bf16 needs a GPU'):
        prepare_config(Config.fromfile(DEMO_CONFIG), launcher='none', work_dir=str(tmp_path),
                       config_path=DEMO_CONFIG, amp='bf16')
    cfg = prepare_config(Config.fromfile(DEMO_CONFIG), launcher='none', work_dir=str(tmp_path),
                         config_path=DEMO_CONFIG, amp='none')
    assert cfg.optim_wrapper.type == 'OptimWrapper'


# --------------------------------------------------------------------------- C: widths
def test_backbone_width_mismatch_names_both_widths_and_keys(tmp_path):
    fpn = osp.join(ROOT, 'configs/fpn_gfnet_h_s_ade20k.py')
    with pytest.raises(ValueError) as err:
        prepare_config(Config.fromfile(fpn), launcher='none', work_dir=str(tmp_path),
                       config_path=fpn, cfg_options={'model.backbone.arch': 'ti'})
    message = str(err.value)
    assert '64/128/256/512' in message
    assert 'model.neck.in_channels = [96, 192, 384, 768]; the backbone gives [64, 128, 256, 512]' \
        in message
    upernet = Config.fromfile(osp.join(ROOT, 'configs/upernet_gfnet_h_s_ade20k.py'))
    upernet.model.backbone.arch = 'ti'
    with pytest.raises(ValueError) as err:
        check_model_widths(upernet)
    message = str(err.value)
    assert 'model.decode_head.in_channels = [96, 192, 384, 768] (in_index [0, 1, 2, 3]); ' \
        'the backbone gives [64, 128, 256, 512]' in message
    assert 'model.auxiliary_head.in_channels = 384 (in_index 2); the backbone gives 256' in message


def test_width_check_reads_out_indices_custom_archs_affnet_and_isotropic():
    retina = Config.fromfile(osp.join(ROOT, 'configs/retinanet_gfnet_h_s_fpn_1x_coco.py'))
    retina.model.backbone.out_indices = (0, 1, 2, 3)
    with pytest.raises(ValueError, match=r'the backbone gives \[96, 192, 384, 768\]'):
        check_model_widths(retina)
    upernet = Config.fromfile(osp.join(ROOT, 'configs/upernet_gfnet_h_s_ade20k.py'))
    upernet.model.backbone.arch = dict(embed_dims=TINY_DIMS, depths=[1, 1, 1, 1])
    with pytest.raises(ValueError, match=r'gives \[8, 16, 24, 32\]'):
        check_model_widths(upernet)
    affnet = Config.fromfile(osp.join(ROOT, 'configs/upernet_affnet_s_ade20k.py'))
    affnet.model.backbone.arch = 't'
    with pytest.raises(ValueError, match=r'gives \[48, 96, 160, 192\]'):
        check_model_widths(affnet)
    iso = Config.fromfile(osp.join(ROOT, 'configs/upernet_gfnet_s_ade20k.py'))
    iso.model.backbone.arch = 'b'
    with pytest.raises(ValueError, match=r'gives \[512, 512, 512, 512\]'):
        check_model_widths(iso)
    iso.model.backbone.arch = 'ti'  # 12 blocks: out_indices (3, 8, 13, 18) do not exist
    with pytest.raises(ValueError, match=r'GFNet\): out_indices entry 13 is out of range for 12'):
        check_model_widths(iso)


def test_every_shipped_config_passes_the_width_check():
    import glob
    for path in sorted(glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)):
        if '_base_' not in path:
            check_model_widths(Config.fromfile(path))


# --------------------------------------------------------------------------- D: convert
@pytest.fixture(scope='module')
def affnet_et_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('affnet') / 'affnet-et.pth')
    torch.save({'model': timm.create_model('affnet_et', num_classes=7).state_dict()}, path)
    return path


def test_convert_affnet_to_backbone_and_released_safetensors(tmp_path, affnet_et_file):
    from safetensors import safe_open
    from safetensors.torch import load_file
    tool = load_tool('convert_checkpoint')
    bb_pth = str(tmp_path / 'bb.pth')
    tool.main([affnet_et_file, bb_pth, '--model', 'affnet_et', '--to', 'backbone'])
    backbone = AFFNet(arch='et', init_cfg=dict(type='Pretrained', checkpoint=bb_pth))
    backbone.init_weights()
    source = torch.load(affnet_et_file, weights_only=True)['model']
    fusion = source['stages.4.fusion.0.weight']
    torch.testing.assert_close(backbone.stages[4].fusion[0].weight, fusion)
    # released layout as safetensors: a flat dict of the classifier's keys, layout in the metadata
    st = str(tmp_path / 'affnet-et.safetensors')
    tool.main([affnet_et_file, st, '--model', 'affnet_et'])
    with safe_open(st, 'pt') as f:
        assert f.metadata()['layout'] == 'released' and f.metadata()['model'] == 'affnet_et'
    classifier = timm.create_model('affnet_et', num_classes=7)
    classifier.load_state_dict(load_file(st))  # strict
    # backbone layout, loaded as MMSeg / MMDet do (init_cfg)
    bb = str(tmp_path / 'bb.safetensors')
    tool.main([affnet_et_file, bb, '--model', 'affnet_et', '--to', 'backbone',
               '--format', 'safetensors'])
    with safe_open(bb, 'pt') as f:
        assert f.metadata()['layout'] == 'backbone'
    AFFNet(arch='et').load_state_dict(load_file(bb))  # strict
    from_st = AFFNet(arch='et', init_cfg=dict(type='Pretrained', checkpoint=bb))
    from_st.init_weights()
    torch.testing.assert_close(from_st.stages[4].fusion[0].weight, fusion)
    with pytest.raises(SystemExit, match='--format safetensors does not match'):
        tool.main([affnet_et_file, str(tmp_path / 'x.pth'), '--model', 'affnet_et',
                   '--format', 'safetensors'])
    assert sorted(os.listdir(tmp_path)) == ['affnet-et.safetensors', 'bb.pth', 'bb.safetensors']


def test_convert_gfnet_backbone_safetensors(tmp_path):
    from safetensors.torch import load_file
    from gfnet_dense import GFNetH
    src = str(tmp_path / 'ti.pth')
    torch.save({'model': timm.create_model('gfnet_h_ti').state_dict()}, src)
    load_tool('convert_checkpoint').main([src, str(tmp_path / 'ti.safetensors'), '--model',
                                          'gfnet_h_ti', '--to', 'backbone', '--img-size', '256'])
    state = load_file(str(tmp_path / 'ti.safetensors'))
    assert state['pos_embed'].shape == (1, 64 * 64, 64)
    GFNetH(arch='ti', pretrain_img_size=256).load_state_dict(state)  # strict


def test_convert_refuses_directory_and_missing_folder(tmp_path, affnet_et_file):
    tool = load_tool('convert_checkpoint')
    with pytest.raises(SystemExit, match='is a directory'):
        tool.main([affnet_et_file, str(tmp_path), '--model', 'affnet_et'])
    with pytest.raises(SystemExit, match='does not exist; create it first'):
        tool.main([affnet_et_file, str(tmp_path / 'no' / 'x.pth'), '--model', 'affnet_et'])
    assert os.listdir(tmp_path) == []


def test_convert_never_leaves_a_partial_destination(tmp_path, monkeypatch, affnet_et_file):
    tool = load_tool('convert_checkpoint')
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'previous')

    def interrupted_save(obj, path):
        with open(path, 'wb') as f:
            f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(tool.torch, 'save', interrupted_save)
    with pytest.raises(OSError, match='disk full'):
        tool.convert(affnet_et_file, str(dst), 'affnet_et')
    assert dst.read_bytes() == b'previous' and os.listdir(tmp_path) == ['out.pth']


# --------------------------------------------------------------------------- F: scripts, data
def test_slurm_train_passes_arguments_through(tmp_path):
    fake = tmp_path / 'srun'
    fake.write_text('#!/bin/sh\necho "srun $*"\n')
    fake.chmod(0o755)
    env = {'PATH': f'{tmp_path}:{os.environ["PATH"]}', 'GPUS': '4', 'GPUS_PER_NODE': '4'}
    out = run_tool('slurm_train.sh', 'part', 'job', 'cfg.py', '--work-dir', 'w', '--amp', 'bf16',
                   '--cfg-options', 'a=1', env=env)
    line = [s for s in out.stdout.splitlines() if s.startswith('srun ')][0]
    assert '-p part --job-name=job --gres=gpu:4 --ntasks=4' in line
    assert line.endswith('train.py cfg.py --launcher slurm --work-dir w --amp bf16 '
                         '--cfg-options a=1')
    bare = run_tool('slurm_train.sh', 'part', 'job', 'cfg.py', env=env)
    assert bare.stdout.strip().endswith('train.py cfg.py --launcher slurm')
    assert run_tool('slurm_train.sh', 'part', check=False, env=env).returncode != 0


def test_coco_annotation_file_without_data_is_named(tmp_path):
    root = write_tiny_coco(str(tmp_path / 'coco'))

    def loader(split):
        return dict(dataset=dict(type='CocoDataset', data_root=root,
                                 ann_file=f'annotations/{split}.json',
                                 data_prefix=dict(img=f'{split}/')))

    cfg = Config(dict(train_dataloader=loader('train'), val_dataloader=loader('val')))
    check_data_paths(cfg)  # the intact set passes
    train_json = osp.join(root, 'annotations', 'train.json')
    coco = json.load(open(train_json))
    json.dump(dict(coco, annotations=[]), open(train_json, 'w'))
    with pytest.raises(ValueError, match=f'train_dataloader: {train_json}: no annotations'):
        check_data_paths(cfg)
    json.dump(dict(coco, images=[]), open(train_json, 'w'))
    with pytest.raises(ValueError, match='no images'):
        check_data_paths(cfg)
    # a test set without annotations is fine when the evaluator only formats results
    json.dump(dict(coco, annotations=[]), open(train_json, 'w'))
    test_only = Config(dict(test_dataloader=loader('train'),
                            test_evaluator=dict(type='CocoMetric', format_only=True)))
    check_data_paths(test_only)
