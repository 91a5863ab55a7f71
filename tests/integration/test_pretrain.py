"""tools/pretrain.py and tools/convert_checkpoint.py on CPU."""
import json
import os.path as osp

import pytest
import timm
import torch

from gfnet_dense import CheckpointMismatchError, GFNetH
from helpers import run_tool, write_digits_folder, write_image_folder

TINY = ['--input-size', '64', '--batch-size', '4', '--workers', '0', '--log-interval', '2']


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    return write_image_folder(str(tmp_path_factory.mktemp('imagenet')))


@pytest.fixture(scope='module')
def one_epoch(tmp_path_factory, image_folder):
    out = str(tmp_path_factory.mktemp('pretrain'))
    run_tool('pretrain.py', '--model', 'gfnet_h_ti', '--data-path', image_folder, '--epochs', '1',
             '--output-dir', out, '--model-ema', *TINY)
    return out


def test_one_epoch_writes_checkpoint_in_released_layout(one_epoch):
    ckpt = torch.load(osp.join(one_epoch, 'checkpoint.pth'), weights_only=True)
    assert ckpt['epoch'] == 0 and {'optimizer', 'scheduler', 'model_ema'} <= set(ckpt)
    model = timm.create_model('gfnet_h_ti', num_classes=3, img_size=64)
    model.load_state_dict(ckpt['model'])  # strict
    assert ckpt['model']['pos_embed'].shape == (1, 16 * 16, 64)
    log = open(osp.join(one_epoch, 'log.txt')).read()
    assert 'images/s' in log and 'top1' in log and 'top5' in log


def test_checkpoint_loads_into_backbone(one_epoch):
    backbone = GFNetH(arch='ti', pretrain_img_size=64,
                      init_cfg=dict(type='Pretrained',
                                    checkpoint=osp.join(one_epoch, 'checkpoint.pth')))
    backbone.init_weights()
    ckpt = torch.load(osp.join(one_epoch, 'checkpoint.pth'), weights_only=True)['model']
    torch.testing.assert_close(backbone.norm3.weight, ckpt['norm.weight'])
    # and at the 224 default, with filters and pos_embed resized
    at_224 = GFNetH(arch='ti', init_cfg=dict(type='Pretrained',
                                             checkpoint=osp.join(one_epoch, 'checkpoint.pth')))
    at_224.init_weights()
    assert at_224.blocks[0][0].filter.complex_weight.shape == (56, 29, 64, 2)


def test_resume_continues_with_next_epoch(one_epoch, image_folder, tmp_path):
    out = str(tmp_path)
    proc = run_tool('pretrain.py', '--model', 'gfnet_h_ti', '--data-path', image_folder,
                    '--epochs', '2', '--output-dir', out, '--model-ema',
                    '--resume', osp.join(one_epoch, 'checkpoint.pth'), *TINY)
    assert 'continuing at epoch 1' in proc.stdout
    epochs = [json.loads(line)['epoch'] for line in open(osp.join(out, 'log.jsonl'))]
    assert epochs == [1]
    assert torch.load(osp.join(out, 'checkpoint.pth'), weights_only=True)['epoch'] == 1


def test_finetune_at_higher_resolution_resizes(one_epoch, image_folder, tmp_path):
    run_tool('pretrain.py', '--model', 'gfnet_h_ti', '--data-path', image_folder, '--epochs', '1',
             '--output-dir', str(tmp_path), '--finetune', osp.join(one_epoch, 'checkpoint.pth'),
             '--input-size', '96', '--batch-size', '4', '--workers', '0')
    state = torch.load(tmp_path / 'checkpoint.pth', weights_only=True)['model']
    assert state['blocks.0.0.filter.complex_weight'].shape == (24, 13, 64, 2)


def test_two_process_gloo_pretraining(image_folder, tmp_path):
    import subprocess
    import sys
    from helpers import ROOT
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
           '--master_port', '29531', osp.join(ROOT, 'tools/pretrain.py'), '--model', 'gfnet_h_ti',
           '--data-path', image_folder, '--epochs', '1', '--output-dir', str(tmp_path), *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '2 process(es) on cpu, batch 8' in proc.stdout
    assert torch.load(tmp_path / 'checkpoint.pth', weights_only=True)['epoch'] == 0


def test_missing_data_path(tmp_path):
    proc = run_tool('pretrain.py', '--data-path', str(tmp_path / 'none'), '--output-dir',
                    str(tmp_path), check=False)
    assert proc.returncode != 0 and 'ImageNet layout' in proc.stderr


def test_learns_handwritten_digits(tmp_path):
    """A short run on real data (scikit-learn digits, 10 classes) learns: a pipeline check,
    not evidence of competence. On this split the trivial baselines are out of reach of a
    one-minute run: logistic regression on the pixels 96.7 %, the nearest class centroid
    91.4 %, the nearest training image 99.2 %. The evidence that the recipes pretrain
    well is the proving ground's (Fashion-MNIST, against logistic regression)."""
    data = write_digits_folder(str(tmp_path / 'digits'))
    out = str(tmp_path / 'out')
    run_tool('pretrain.py', '--model', 'gfnet_h_ti', '--data-path', data, '--epochs', '3',
             '--input-size', '32', '--batch-size', '32', '--workers', '0', '--lr', '4e-3',
             '--warmup-epochs', '0', '--mixup', '0', '--cutmix', '0', '--aa', 'none',
             '--reprob', '0', '--smoothing', '0', '--drop-path', '0', '--output-dir', out,
             '--log-interval', '20')
    top1 = [json.loads(line)['top1'] for line in open(osp.join(out, 'log.jsonl'))]
    # chance is 10 %; measured 71 / 77 / 79 % top-1 after epochs 1 / 2 / 3
    assert top1[-1] > 60, top1


def test_convert_released_backbone_and_resize(tmp_path):
    source = timm.create_model('gfnet_h_ti')
    src = tmp_path / 'gfnet-h-ti.pth'
    torch.save({'model': source.state_dict()}, src)
    run_tool('convert_checkpoint.py', str(src), str(tmp_path / 'bb.pth'), '--model', 'gfnet_h_ti',
             '--to', 'backbone', '--img-size', '512', '--filter-resize', 'spatial')
    bb = torch.load(tmp_path / 'bb.pth', weights_only=True)['state_dict']
    assert bb['pos_embed'].shape == (1, 128 * 128, 64) and 'head.weight' not in bb
    torch.testing.assert_close(bb['norm3.weight'], source.norm.weight)
    run_tool('convert_checkpoint.py', str(src), str(tmp_path / 'r384.pth'), '--model',
             'gfnet_h_ti', '--img-size', '384')
    r384 = torch.load(tmp_path / 'r384.pth', weights_only=True)['model']
    assert r384['blocks.3.0.filter.complex_weight'].shape == (12, 7, 512, 2)
    # a backbone file back into a backbone, and a training checkpoint into released
    run_tool('convert_checkpoint.py', str(tmp_path / 'bb.pth'), str(tmp_path / 'bb2.pth'),
             '--model', 'gfnet_h_ti', '--to', 'backbone', '--img-size', '512')
    no_head = run_tool('convert_checkpoint.py', str(tmp_path / 'bb.pth'), str(tmp_path / 'x.pth'),
                       '--model', 'gfnet_h_ti', check=False)
    assert no_head.returncode != 0 and 'no classification head' in no_head.stderr


def test_convert_wrong_variant_and_corrupt_file(tmp_path):
    src = tmp_path / 'gfnet-h-ti.pth'
    torch.save({'model': timm.create_model('gfnet_h_ti').state_dict()}, src)
    wrong = run_tool('convert_checkpoint.py', str(src), str(tmp_path / 'o.pth'), '--model',
                     'gfnet_h_s', check=False)
    assert wrong.returncode != 0
    assert ('patch_embed.0.proj.weight: checkpoint (64, 3, 4, 4) vs model (96, 3, 4, 4)'
            in wrong.stderr)
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'\x00' * 100)
    corrupt = run_tool('convert_checkpoint.py', str(bad), str(tmp_path / 'o.pth'), '--model',
                       'gfnet_h_ti', check=False)
    assert corrupt.returncode != 0 and 'corrupt' in corrupt.stderr
    assert not osp.exists(tmp_path / 'o.pth')
    with pytest.raises(CheckpointMismatchError):
        from gfnet_dense.checkpoints import read_checkpoint
        read_checkpoint(str(bad))


def test_randaugment_posterize_at_top_magnitude_gives_black_image():
    # 'rand-m9-mstd0.5-inc1' reaches magnitude 10 through its noise: 0 bits kept,
    # which Pillow 13 rejects; the pretraining tool makes it a black image
    import importlib.util

    from helpers import ROOT
    from PIL import Image
    from timm.data.auto_augment import AugmentOp
    spec = importlib.util.spec_from_file_location('pretrain_tool',
                                                  osp.join(ROOT, 'tools/pretrain.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.allow_zero_bit_posterize()
    image = Image.new('RGB', (8, 8), (200, 100, 50))
    op = AugmentOp('PosterizeIncreasing', prob=1.0, magnitude=10)
    assert op(image).getextrema() == ((0, 0), (0, 0), (0, 0))
    posterized = AugmentOp('PosterizeIncreasing', prob=1.0, magnitude=5)(image)
    assert posterized.getpixel((0, 0)) != (0, 0, 0)
