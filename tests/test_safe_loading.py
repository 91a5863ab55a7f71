"""Loading never runs code from a file: crafted checkpoints through every entry point."""
import functools
import http.server
import os
import os.path as osp
import threading

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader

from crafted import PAYLOADS, PLACES, genuine_message_hub, write_crafted
from gfnet_dense import GFNetH
from gfnet_dense.models.checkpoint import read_checkpoint
from gfnet_dense.safe_loading import SafeCheckpointLoadingHook, safe_checkpoint_loading
from gfnet_dense.serialization import UnsafeCheckpointError, load_file
from helpers import DEMO_CONFIG, data_options, run_tool

TINY_H = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], layer_scale_init=1e-2)
# what each payload's refusal must name
NAMED = {'numpy_runstring': 'numpy.testing._private.utils.runstring',
         'getattr_chain_to_eval': "attribute '__init__'",
         'torch_save_call': 'torch.serialization.save',
         'history_buffer_getattr': "attribute '__init__'"}


@pytest.fixture
def sentinel(tmp_path):
    path = str(tmp_path / 'sentinel.txt')
    yield path
    assert not osp.exists(path), 'code from the checkpoint ran'


def tiny_state():
    return GFNetH(arch=TINY_H).state_dict()


@pytest.mark.parametrize('payload', sorted(PAYLOADS))
def test_crafted_files_are_live_attacks(payload, tmp_path):
    """Sanity: unpickled in full, each crafted file does run its code."""
    sentinel = str(tmp_path / 'ran.txt')
    path = write_crafted(tmp_path / 'evil.pth', tiny_state(), payload, 'top_level', sentinel)
    torch.load(path, weights_only=False)
    assert osp.exists(sentinel)


def _through_read_checkpoint(path):
    read_checkpoint(path)


def _through_init_cfg(path):
    GFNetH(arch=TINY_H, init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()


def _through_mmengine(path):
    with safe_checkpoint_loading():
        CheckpointLoader.load_checkpoint(path, map_location='cpu')


def _through_mmengine_hook(path):
    hook = SafeCheckpointLoadingHook()
    hook.before_run(None)
    try:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    finally:
        hook.after_run(None)


ENTRY_POINTS = {'read_checkpoint': _through_read_checkpoint, 'init_cfg': _through_init_cfg,
                'mmengine_loader': _through_mmengine, 'mmengine_hook': _through_mmengine_hook}


@pytest.mark.parametrize('entry', sorted(ENTRY_POINTS))
@pytest.mark.parametrize('place', PLACES)
@pytest.mark.parametrize('payload', sorted(PAYLOADS))
def test_crafted_file_is_refused_naming_the_global(payload, place, entry, tmp_path, sentinel):
    path = write_crafted(tmp_path / 'evil.pth', tiny_state(), payload, place, sentinel)
    with pytest.raises(UnsafeCheckpointError) as info:
        ENTRY_POINTS[entry](path)
    assert NAMED[payload] in str(info.value)
    assert 'Nothing from the file was run' in str(info.value)


def test_genuine_training_state_loads_and_the_message_hub_restores(tmp_path):
    path = tmp_path / 'genuine.pth'
    optimizer = torch.optim.AdamW(GFNetH(arch=TINY_H).parameters())
    torch.save({'state_dict': tiny_state(), 'message_hub': genuine_message_hub(),
                'optimizer': optimizer.state_dict(), 'meta': {'seed': np.int64(3),
                                                              'scores': np.arange(3.0)}}, path)
    checkpoint = load_file(str(path))
    buffer = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and buffer.mean() == pytest.approx(1.25)
    assert buffer._statistics_methods['mean'] is HistoryBuffer.mean
    hub = MessageHub.get_instance('test_safe_loading')
    hub.load_state_dict(checkpoint['message_hub'])
    assert hub.get_info('iter') == 3
    assert checkpoint['meta']['seed'] == 3 and checkpoint['meta']['scores'].tolist() == [0, 1, 2]


def test_scope_restores_mmengine_loaders():
    before = CheckpointLoader._schemes
    with safe_checkpoint_loading():
        assert CheckpointLoader._schemes is not before
        with pytest.raises(ValueError, match='not read under the safe loading policy'):
            CheckpointLoader.load_checkpoint('s3://bucket/model.pth')
    assert CheckpointLoader._schemes is before
    hook = SafeCheckpointLoadingHook()
    hook.before_run(None)
    assert CheckpointLoader._schemes is not before
    hook.after_run(None)
    assert CheckpointLoader._schemes is before


def test_safetensors_load_through_init_cfg_and_mmengine(tmp_path):
    from safetensors.torch import save_file
    source = GFNetH(arch=TINY_H)
    path = str(tmp_path / 'backbone.safetensors')
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    target = GFNetH(arch=TINY_H, init_cfg=dict(type='Pretrained', checkpoint=path))
    target.init_weights()
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value)
    with safe_checkpoint_loading():
        loaded = CheckpointLoader.load_checkpoint(path)
    assert loaded.keys() == source.state_dict().keys()


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """A file server on the loopback interface and a fresh torch hub cache."""
    root = tmp_path / 'served'
    root.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_url_checkpoints_download_and_load_under_the_policy(http_root, sentinel):
    root, base = http_root
    source = GFNetH(arch=TINY_H)
    torch.save({'state_dict': source.state_dict()}, root / 'good.pth')
    write_crafted(root / 'evil.pth', tiny_state(), 'torch_save_call', 'message_hub', sentinel)
    target = GFNetH(arch=TINY_H, init_cfg=dict(type='Pretrained', checkpoint=f'{base}/good.pth'))
    target.init_weights()
    torch.testing.assert_close(target.pos_embed, source.pos_embed)
    with pytest.raises(UnsafeCheckpointError, match='torch.serialization.save'):
        read_checkpoint(f'{base}/evil.pth')
    with safe_checkpoint_loading(), pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint(f'{base}/evil.pth')
    with pytest.raises(ConnectionError, match='could not download'):
        read_checkpoint(f'{base}/missing.pth')


# --------------------------------------------------------------- the project's tools
@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    from gfnet_dense.datasets import make_ade20k_demo
    return make_ade20k_demo(str(tmp_path_factory.mktemp('ade') / 'ade20k_demo'),
                            num_train=2, num_val=1)


def _demo_state():
    """A state dict of the demo config's segmentor (so only the policy can refuse it)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(DEMO_CONFIG)
    init_default_scope('mmseg')
    return MODELS.build(cfg.model).state_dict()


TOOL_CASES = {
    'train_resume': ('numpy_runstring', 'message_hub'),
    'train_load_from': ('getattr_chain_to_eval', 'optimizer_state'),
    'test': ('torch_save_call', 'top_level'),
    'image_demo': ('history_buffer_getattr', 'message_hub'),
    'convert': ('numpy_runstring', 'optimizer_state'),
    'pretrain_resume': ('torch_save_call', 'optimizer_state'),
    'pretrain_finetune': ('getattr_chain_to_eval', 'top_level'),
}


def _tool_args(case, path, demo_root, work_dir):
    options = ['--cfg-options', *data_options(demo_root), 'train_dataloader.num_workers=0',
               'train_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
               'test_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
               'val_dataloader.persistent_workers=False']
    image = osp.join(demo_root, 'images', 'validation')
    image = osp.join(image, sorted(os.listdir(image))[0])
    folder = osp.join(work_dir, 'images')
    return {
        'train_resume': ['train.py', DEMO_CONFIG, '--work-dir', work_dir, '--resume', path,
                         *options],
        'train_load_from': ['train.py', DEMO_CONFIG, '--work-dir', work_dir, *options,
                            f'load_from={path}'],
        'test': ['test.py', DEMO_CONFIG, path, '--work-dir', work_dir, *options],
        'image_demo': ['image_demo.py', image, DEMO_CONFIG, path,
                       '--out', osp.join(work_dir, 'out.png')],
        'convert': ['convert_checkpoint.py', path, osp.join(work_dir, 'out.pth'),
                    '--model', 'gfnet_h_ti', '--to', 'backbone'],
        'pretrain_resume': ['pretrain.py', '--model', 'gfnet_h_ti', '--data-path', folder,
                            '--resume', path, '--output-dir', work_dir, '--epochs', '1',
                            '--batch-size', '2', '--workers', '0', '--input-size', '32'],
        'pretrain_finetune': ['pretrain.py', '--model', 'gfnet_h_ti', '--data-path', folder,
                              '--finetune', path, '--output-dir', work_dir, '--epochs', '1',
                              '--batch-size', '2', '--workers', '0', '--input-size', '32'],
    }[case]


@pytest.mark.parametrize('case', sorted(TOOL_CASES))
def test_tools_refuse_crafted_checkpoints(case, demo_root, tmp_path, sentinel):
    from helpers import write_image_folder
    payload, place = TOOL_CASES[case]
    work_dir = str(tmp_path / 'work')
    os.makedirs(work_dir)
    write_image_folder(osp.join(work_dir, 'images'), classes=2, per_class=(2, 1), size=32)
    state = _demo_state() if case != 'convert' else GFNetH(arch='ti').state_dict()
    path = write_crafted(tmp_path / 'evil.pth', state, payload, place, sentinel)
    proc = run_tool(*_tool_args(case, path, demo_root, work_dir), check=False, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert 'refusing to load' in output and NAMED[payload] in output, output[-3000:]


def test_mmseg_own_test_tool_with_our_config(demo_root, tmp_path, sentinel):
    """The config's SafeCheckpointLoadingHook: MMSeg's tools/test.py loads a genuine
    MMEngine checkpoint (its HistoryBuffers) and refuses a crafted one."""
    import subprocess
    import sys

    import mmseg
    tool = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'test.py')
    state = _demo_state()
    genuine = str(tmp_path / 'genuine.pth')
    torch.save({'meta': {'iter': 3}, 'state_dict': state,
                'message_hub': genuine_message_hub()}, genuine)
    evil = write_crafted(tmp_path / 'evil.pth', state, 'getattr_chain_to_eval', 'message_hub',
                         sentinel)
    options = ['--cfg-options', *data_options(demo_root), 'test_dataloader.num_workers=0',
               'test_dataloader.persistent_workers=False']
    outputs = {}
    for name, path in (('genuine', genuine), ('evil', evil)):
        proc = subprocess.run([sys.executable, tool, DEMO_CONFIG, path, '--work-dir',
                               str(tmp_path / name), *options], capture_output=True, text=True,
                              timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
        outputs[name] = (proc.returncode, proc.stdout + proc.stderr)
    assert outputs['genuine'][0] == 0 and 'mIoU' in outputs['genuine'][1], \
        outputs['genuine'][1][-3000:]
    assert outputs['evil'][0] != 0 and "attribute '__init__'" in outputs['evil'][1], \
        outputs['evil'][1][-3000:]
