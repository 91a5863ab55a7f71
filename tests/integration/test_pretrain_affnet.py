"""tools/pretrain.py with AFFNet (no size-dependent weights), and --resume of the wrong file."""
import json
import os.path as osp

import pytest
import timm
import torch

from gfnet_dense import AFFNet
from helpers import run_tool, write_image_folder

TINY = ['--input-size', '32', '--batch-size', '4', '--workers', '0', '--log-interval', '2',
        '--aa', 'none', '--reprob', '0']


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    return write_image_folder(str(tmp_path_factory.mktemp('images')), per_class=(4, 2), size=32)


@pytest.fixture(scope='module')
def one_epoch(tmp_path_factory, image_folder):
    out = str(tmp_path_factory.mktemp('affnet'))
    run_tool('pretrain.py', '--model', 'affnet_et', '--data-path', image_folder, '--epochs', '1',
             '--output-dir', out, *TINY)
    return osp.join(out, 'checkpoint.pth')


def test_affnet_trains_and_its_checkpoint_converts_to_the_backbone(one_epoch, tmp_path):
    ckpt = torch.load(one_epoch, weights_only=True)
    assert ckpt['epoch'] == 0 and {'optimizer', 'scheduler'} <= set(ckpt)
    timm.create_model('affnet_et', num_classes=3).load_state_dict(ckpt['model'])  # strict
    backbone_file = str(tmp_path / 'affnet-et-backbone.pth')
    run_tool('convert_checkpoint.py', one_epoch, backbone_file, '--model', 'affnet_et',
             '--to', 'backbone')
    for source in (backbone_file, one_epoch):  # the converted file and the checkpoint itself
        backbone = AFFNet(arch='et', init_cfg=dict(type='Pretrained', checkpoint=source))
        backbone.init_weights()
        torch.testing.assert_close(backbone.stages[2].fusion[0].weight,
                                   ckpt['model']['stages.2.fusion.0.weight'])


def test_affnet_resumes(one_epoch, image_folder, tmp_path):
    proc = run_tool('pretrain.py', '--model', 'affnet_et', '--data-path', image_folder,
                    '--epochs', '2', '--output-dir', str(tmp_path), '--resume', one_epoch, *TINY)
    assert 'continuing at epoch 1' in proc.stdout
    assert [json.loads(line)['epoch'] for line in open(tmp_path / 'log.jsonl')] == [1]


def test_affnet_finetunes_at_another_size_and_class_count(one_epoch, tmp_path):
    images = write_image_folder(str(tmp_path / 'five'), classes=5, per_class=(1, 1), size=48)
    run_tool('pretrain.py', '--model', 'affnet_et', '--data-path', images, '--epochs', '1',
             '--output-dir', str(tmp_path / 'out'), '--finetune', one_epoch,
             '--input-size', '48', *TINY[2:])
    state = torch.load(tmp_path / 'out' / 'checkpoint.pth', weights_only=True)['model']
    assert state['head.weight'].shape[0] == 5


def test_resume_from_a_file_without_training_state_says_what_it_is(one_epoch, image_folder,
                                                                   tmp_path):
    weights = str(tmp_path / 'released.pth')
    torch.save({'model': torch.load(one_epoch, weights_only=True)['model']}, weights)
    proc = run_tool('pretrain.py', '--model', 'affnet_et', '--data-path', image_folder,
                    '--epochs', '2', '--output-dir', str(tmp_path / 'a'), '--resume', weights,
                    *TINY, check=False)
    assert proc.returncode != 0
    assert "is a weights file ({'model': ...}" in proc.stderr
    assert 'no optimizer, scheduler, epoch' in proc.stderr
    assert f'--finetune {weights}' in proc.stderr
    mmengine = str(tmp_path / 'iter_10.pth')
    torch.save({'meta': {'iter': 10}, 'state_dict': {}, 'optimizer': {}}, mmengine)
    proc = run_tool('pretrain.py', '--model', 'affnet_et', '--data-path', image_folder,
                    '--epochs', '2', '--output-dir', str(tmp_path / 'b'), '--resume', mmengine,
                    *TINY, check=False)
    assert proc.returncode != 0 and 'is an MMEngine checkpoint' in proc.stderr
    assert 'tools/train.py --resume' in proc.stderr


def test_affnet_finetunes_from_a_public_cvnets_file(tmp_path):
    # a public-layout (cvnets) ImageNet file, built from the public key names
    public = json.load(open(osp.join(osp.dirname(osp.dirname(__file__)), 'fixtures',
                                     'affnet_cvnets_keys.json')))['affnet_et']
    state = {k: torch.full(s, 0.5) if not k.endswith('num_batches_tracked') else torch.tensor(1)
             for k, s in public.items()}
    torch.save(state, tmp_path / 'affnet-et-public.pt')
    images = write_image_folder(str(tmp_path / 'three'), classes=3, per_class=(2, 1), size=32)
    run_tool('pretrain.py', '--model', 'affnet_et', '--data-path', images, '--epochs', '1',
             '--output-dir', str(tmp_path / 'out'), '--finetune',
             str(tmp_path / 'affnet-et-public.pt'), '--lr', '0', *TINY)
    model = torch.load(tmp_path / 'out' / 'checkpoint.pth', weights_only=True)['model']
    assert model['head.weight'].shape[0] == 3  # the 1000-class head started from scratch
    torch.testing.assert_close(model['stages.3.blocks.1.filter.w1'],
                               state['layer_4.1.global_rep.1.filter.w1'])
