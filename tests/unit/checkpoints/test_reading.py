"""Loading never runs code from a file: crafted checkpoints through every entry point."""
import functools
import http.server
import os.path as osp
import threading

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader

from crafted import PAYLOADS, PLACES, genuine_message_hub, write_crafted
from gfnet_dense import GFNetH
from gfnet_dense.checkpoints import read_checkpoint
from gfnet_dense.mm.safe_loading import SafeCheckpointLoadingHook, safe_checkpoint_loading
from gfnet_dense.checkpoints import UnsafeCheckpointError, load_file

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
    with pytest.raises(ConnectionError, match='HTTP 404'):
        read_checkpoint(f'{base}/missing.pth')


def test_legacy_download_loads_only_with_its_published_hash(http_root):
    """MMEngine's open-mmlab:// files are legacy-format; one whose sha256 matches the
    prefix in its name loads, the same bytes under a name without a hash do not."""
    import hashlib
    root, base = http_root
    legacy = root / 'plain.pth'
    torch.save({'state_dict': tiny_state()}, legacy, _use_new_zipfile_serialization=False)
    digest = hashlib.sha256(legacy.read_bytes()).hexdigest()
    (root / f'weights-{digest[:8]}.pth').write_bytes(legacy.read_bytes())
    loaded = read_checkpoint(f'{base}/weights-{digest[:8]}.pth')
    assert loaded['state_dict'].keys() == tiny_state().keys()
    with pytest.raises(ValueError, match='legacy'):
        read_checkpoint(f'{base}/plain.pth')
    # a matching name on a local file proves nothing
    with pytest.raises(ValueError, match='legacy'):
        read_checkpoint(str(root / f'weights-{digest[:8]}.pth'))
