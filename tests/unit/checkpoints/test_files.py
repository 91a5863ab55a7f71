"""gfnet_dense.checkpoints.files: atomic saving and file digests."""
import hashlib

import pytest
import torch

from gfnet_dense.checkpoints import file_sha256, read_checkpoint, save_atomic


def test_save_atomic_round_trips_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'state.pth'
    save_atomic(dict(w=torch.arange(3.0), epoch=2), path)
    assert torch.equal(read_checkpoint(str(path))['w'], torch.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ['state.pth']


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / 'state.pth'
    save_atomic(dict(epoch=1), path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_atomic(dict(epoch=2, hook=lambda: None), path)  # a lambda does not pickle
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ['state.pth']


def test_file_sha256_is_the_digest_of_the_bytes(tmp_path):
    path = tmp_path / 'blob'
    data = bytes(range(256)) * 5000  # over one 1 MiB block
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(path)) == file_sha256(path)


def test_equal_objects_saved_by_different_processes_have_equal_bytes(tmp_path, monkeypatch):
    """The sha256 names the weights: the temporary file's name (with the pid) stays out."""
    state = dict(w=torch.arange(6.0).reshape(2, 3))
    save_atomic(state, tmp_path / 'a.pth')
    monkeypatch.setattr('os.getpid', lambda: 99999)
    save_atomic(state, tmp_path / 'b.pth')
    assert file_sha256(tmp_path / 'a.pth') == file_sha256(tmp_path / 'b.pth')
