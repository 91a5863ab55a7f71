"""Unit tests of the registry data in gfnet_dense.datasets: the file readers, label maps and
splits on small files written here, and the registry fetcher with the subprocess
calls faked (nothing is downloaded)."""
import gzip
import os.path as osp
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gfnet_dense.datasets import RealDataUnavailable, aal, cache_dir, fashion_mnist
from gfnet_dense.datasets import packages

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


# Fashion-MNIST: IDX files ---------------------------------------------------------------

def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b''.join(
        int(n).to_bytes(4, 'big') for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize('gzipped', [False, True])
@pytest.mark.parametrize('shape', [(7,), (3, 4, 5)])
def test_read_idx_round_trips(tmp_path, gzipped, shape):
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / ('a-idx-ubyte.gz' if gzipped else 'a-idx-ubyte')
    data = _idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gzipped else data)
    out = fashion_mnist.read_idx(path)
    assert out.dtype == np.uint8 and out.shape == shape
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize('header', [b'\x00\x01\x08\x01', b'\x00\x00\x0d\x01', b'\x1f\x8b\x08\x01'])
def test_read_idx_rejects_wrong_magic(tmp_path, header):
    path = tmp_path / 'bad-idx-ubyte'
    path.write_bytes(header + (4).to_bytes(4, 'big') + bytes(4))
    with pytest.raises(ValueError, match='bad-idx-ubyte'):
        fashion_mnist.read_idx(path)


@pytest.mark.parametrize('gzipped', [False, True])
def test_read_idx_rejects_truncated_body(tmp_path, gzipped):
    data = _idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-5]
    path = tmp_path / ('short.gz' if gzipped else 'short')
    path.write_bytes(gzip.compress(data) if gzipped else data)
    with pytest.raises(ValueError, match='short'):
        fashion_mnist.read_idx(path)


def test_balanced_subset_takes_first_per_class_sorted():
    labels = np.array([3, 0, 3, 1, 0, 3, 1, 0, 9, 3, 0])
    picked = fashion_mnist.balanced_subset(labels, 2)
    # class 0: 1, 4; class 1: 3, 6; class 3: 0, 2; class 9: 8 (only one)
    assert picked.tolist() == [0, 1, 2, 3, 4, 6, 8]
    assert fashion_mnist.balanced_subset(labels, None).tolist() == list(range(len(labels)))
    assert fashion_mnist.balanced_subset(labels, 0).tolist() == []


def test_balanced_subset_counts_per_class():
    labels = np.random.default_rng(1).integers(0, 10, 500)
    picked = fashion_mnist.balanced_subset(labels, 5)
    assert np.all(np.diff(picked) > 0)
    assert np.bincount(labels[picked], minlength=10).tolist() == [5] * 10
    for c in range(10):  # the first five of each class, not any five
        assert picked[labels[picked] == c].tolist() == np.flatnonzero(labels == c)[:5].tolist()


# AAL: NIfTI, labels, splits, orientation ------------------------------------------------

_NIFTI_CODES = {np.dtype(np.uint8): 2, np.dtype(np.int16): 4, np.dtype(np.float32): 16}


def _nifti_bytes(volume: np.ndarray, endian: str = '<') -> bytes:
    """A single-file NIfTI-1 (.nii) image: 348-byte header, 4 bytes of extension
    flags, then the voxels with x varying fastest."""
    header = bytearray(348)
    struct.pack_into(endian + 'i', header, 0, 348)
    dim = [volume.ndim, *volume.shape] + [1] * (7 - volume.ndim)
    struct.pack_into(endian + '8h', header, 40, *dim)
    struct.pack_into(endian + 'h', header, 70, _NIFTI_CODES[volume.dtype])
    struct.pack_into(endian + 'h', header, 72, volume.dtype.itemsize * 8)
    struct.pack_into(endian + '8f', header, 76, 1, 1, 1, 1, 0, 0, 0, 0)
    struct.pack_into(endian + 'f', header, 108, 352.0)
    struct.pack_into(endian + 'f', header, 112, 1.0)  # scl_slope
    header[344:348] = b'n+1\0'
    body = volume.astype(volume.dtype.newbyteorder(endian)).tobytes(order='F')
    return bytes(header) + bytes(4) + body


def _volume(dtype, shape=(5, 6, 4)) -> np.ndarray:
    x, y, z = np.indices(shape)
    values = x + 8 * y + 64 * z  # every voxel different, and telling which axis is which
    if np.dtype(dtype) == np.int16:
        values = values * 37 - 300  # negative and above 255 too
    return values.astype(dtype)


@pytest.mark.parametrize('endian', ['<', '>'])
@pytest.mark.parametrize('dtype', [np.uint8, np.int16])
def test_read_nifti_round_trips(tmp_path, dtype, endian):
    volume = _volume(dtype)
    path = tmp_path / 'v.nii.gz'
    path.write_bytes(gzip.compress(_nifti_bytes(volume, endian)))
    out = aal.read_nifti(path)
    assert out.shape == volume.shape
    assert out.dtype.kind == np.dtype(dtype).kind and out.dtype.itemsize == volume.dtype.itemsize
    np.testing.assert_array_equal(out, volume)
    assert out[4, 0, 0] == volume[4, 0, 0] and out[0, 5, 0] == volume[0, 5, 0]


def test_read_nifti_plain_file(tmp_path):
    volume = _volume(np.uint8, (3, 2, 7))
    path = tmp_path / 'v.nii'
    path.write_bytes(_nifti_bytes(volume))
    np.testing.assert_array_equal(aal.read_nifti(path), volume)


def test_read_nifti_rejects_other_files(tmp_path):
    path = tmp_path / 'not_nifti.nii.gz'
    path.write_bytes(gzip.compress(b'\x89PNG\r\n\x1a\n' + bytes(400)))
    with pytest.raises(ValueError, match='not_nifti'):
        aal.read_nifti(path)
    path = tmp_path / 'text.nii'
    path.write_text('x' * 400)
    with pytest.raises(ValueError, match='not a NIfTI-1'):
        aal.read_nifti(path)


def test_read_nifti_rejects_unsupported_datatype(tmp_path):
    data = bytearray(_nifti_bytes(_volume(np.uint8)))
    struct.pack_into('<h', data, 70, 128)  # RGB24
    path = tmp_path / 'rgb.nii'
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match='datatype 128'):
        aal.read_nifti(path)


def test_region_to_class(tmp_path):
    names = tmp_path / 'aal.nii.txt'
    # the Debian file has CRLF line ends and a blank last line
    names.write_text('1 Precentral_L 2001\r\n2 Precentral_R 2002\r\n3 Insula_L 3001\r\n'
                     '4 Hippocampus_R 4102\r\n5 Vermis_3 9110\r\n6 Occipital_Sup_L 5101\r\n'
                     '7 Cerebelum_Crus1_R 9002\r\n8 Temporal_Pole_Sup_L 8201\r\n'
                     '9 Putamen_R 7012\r\n10 Parietal_Sup_L 6101\r\n\r\n', newline='')
    table = aal.region_to_class(names)
    assert table.dtype == np.uint8 and table.shape == (256,)
    expected = {0: 'background', 1: 'frontal_L', 2: 'frontal_R', 3: 'insula_limbic_L',
                4: 'insula_limbic_R', 5: 'vermis', 6: 'occipital_L', 7: 'cerebellum_R',
                8: 'temporal_L', 9: 'deep_grey_R', 10: 'parietal_L', 11: 'background'}
    assert {v: aal.CLASSES[table[v]] for v in expected} == expected
    assert not table[11:].any()
    atlas = np.array([[0, 1], [5, 4]], np.uint8)
    assert table[atlas].tolist() == [[0, aal.CLASSES.index('frontal_L')],
                                     [aal.CLASSES.index('vermis'),
                                      aal.CLASSES.index('insula_limbic_R')]]


def test_classes_cover_every_lobe_and_side():
    assert aal.CLASSES[0] == 'background' and aal.CLASSES[-1] == 'vermis'
    assert len(aal.CLASSES) == 16 == len(set(aal.CLASSES))
    assert len(aal.PALETTE) == len(aal.CLASSES)
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in aal.PALETTE)
    assert len(set(aal.PALETTE)) == len(aal.PALETTE)


def test_classes_and_palette_match_the_config():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs/brain_lobes/_base_/fpn_brain_lobes.py'))
    assert tuple(cfg.classes) == aal.CLASSES
    assert [tuple(c) for c in cfg.palette] == [tuple(c) for c in aal.PALETTE]
    assert cfg.model.decode_head.num_classes == len(aal.CLASSES)


def _gap(a, b):
    return min(abs(x - y) for x in a for y in b)


@pytest.mark.parametrize('n', [146, 30, 26, 17, 60, 181])
def test_split_slices_keeps_validation_away_from_training(n):
    labelled = list(range(n))
    splits = aal.split_slices(labelled)
    train, val = splits['train'], splits['val']
    assert set(splits) == {'train', 'val'}
    assert not set(train) & set(val)
    assert train == sorted(train) and val == sorted(val)
    assert set(train) | set(val) <= set(labelled)
    if train and val:
        assert _gap(train, val) >= aal.GAP + 1


def test_split_slices_counts():
    splits = aal.split_slices(list(range(146)))
    # four full periods of 16 + 6, then 26 slices: 16 training, 4 gap, 6 validation
    assert (len(splits['train']), len(splits['val'])) == (80, 30)
    assert splits['train'][:17] == list(range(16)) + [30]
    assert splits['val'][:7] == [20, 21, 22, 23, 24, 25, 50]
    assert aal.PERIOD == aal.TRAIN + aal.GAP + aal.VAL + aal.GAP


def test_split_slices_uses_the_labelled_values():
    labelled = list(range(20, 166))  # e.g. the slices that carry labels
    splits = aal.split_slices(labelled)
    assert splits['train'][0] == 20 and splits['val'][0] == 40
    assert _gap(splits['train'], splits['val']) >= aal.GAP + 1


def test_axial_orientation():
    X, Y, Z = 3, 4, 2
    x, y, z = np.indices((X, Y, Z))
    volume = (100 * x + 10 * y + z).astype(np.int16)
    image = aal.axial(volume, 1)
    assert image.shape == (Y, X) and image.flags.c_contiguous
    # first row: the most anterior (highest y); first column: the subject's left (x = 0)
    assert image[0].tolist() == [100 * c + 10 * (Y - 1) + 1 for c in range(X)]
    assert image[:, 0].tolist() == [10 * (Y - 1 - r) + 1 for r in range(Y)]
    for r in range(Y):
        for c in range(X):
            assert image[r, c] == volume[c, Y - 1 - r, 1]


# packages: cache and error messages ------------------------------------------------------

@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('GFNET_DENSE_CACHE', str(tmp_path / 'cache'))
    return tmp_path / 'cache'


def _fail(exc):
    calls = []

    def run(cmd, *args, **kwargs):
        calls.append(list(cmd))
        raise exc(cmd) if exc is FileNotFoundError else exc
    run.calls = calls
    return run


def test_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv('GFNET_DENSE_CACHE', str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv('GFNET_DENSE_CACHE')
    assert cache_dir() == Path.home() / '.cache' / 'gfnet_dense'
    monkeypatch.setenv('GFNET_DENSE_CACHE', '')
    assert cache_dir() == Path.home() / '.cache' / 'gfnet_dense'


def test_debian_files_without_apt_get(cache, monkeypatch):
    run = _fail(FileNotFoundError)
    monkeypatch.setattr(packages.subprocess, 'run', run)
    with pytest.raises(RealDataUnavailable) as info:
        packages.debian_files('some-package', '/nonexistent/dir')
    message = str(info.value)
    assert "'some-package'" in message and 'apt-get install some-package' in message
    assert 'apt-get is not on this machine' in message
    assert str(cache / 'debian' / 'some-package') in message
    assert run.calls == [['apt-get', 'download', 'some-package']]
    assert not (cache / 'debian' / 'some-package').exists()


def test_debian_files_when_apt_get_fails(cache, monkeypatch):
    error = subprocess.CalledProcessError(100, ['apt-get'], '', 'Reading package lists...\n'
                                          'E: Unable to locate package some-package\n')
    monkeypatch.setattr(packages.subprocess, 'run', _fail(error))
    with pytest.raises(RealDataUnavailable, match='Unable to locate package some-package') as info:
        packages.debian_files('some-package', '/nonexistent/dir')
    assert 'apt-get install some-package' in str(info.value)


def test_debian_files_cache_hit_runs_nothing(cache, monkeypatch):
    run = _fail(AssertionError('nothing may run on a cache hit'))
    monkeypatch.setattr(packages.subprocess, 'run', run)
    folder = cache / 'debian' / 'some-package' / 'nonexistent' / 'dir'
    folder.mkdir(parents=True)
    (folder / 'data.bin').write_bytes(b'1')
    assert packages.debian_files('some-package', '/nonexistent/dir') == folder
    assert run.calls == []


def test_debian_files_prefers_the_installed_folder(cache, monkeypatch, tmp_path):
    monkeypatch.setattr(packages.subprocess, 'run', _fail(AssertionError('ran')))
    installed = tmp_path / 'usr' / 'share' / 'thing'
    installed.mkdir(parents=True)
    (installed / 'x').write_text('x')
    assert packages.debian_files('some-package', str(installed)) == installed


def test_debian_files_unpacks_into_the_cache(cache, monkeypatch):
    """apt-get download and dpkg -x faked: the unpacked tree moves into the cache."""
    calls = []

    def run(cmd, cwd=None, **kwargs):
        calls.append(cmd[:2])
        if cmd[:2] == ['apt-get', 'download']:
            (Path(cwd) / 'some-package_1.0-1_all.deb').write_bytes(b'deb')
        elif cmd[:2] == ['dpkg', '-x']:
            assert cmd[2].endswith('some-package_1.0-1_all.deb')
            target = Path(cmd[3]) / 'nonexistent' / 'dir'
            target.mkdir(parents=True)
            (target / 'data.txt').write_text('real data')
        else:
            raise AssertionError(cmd)
        return subprocess.CompletedProcess(cmd, 0, '', '')

    monkeypatch.setattr(packages.subprocess, 'run', run)
    folder = packages.debian_files('some-package', '/nonexistent/dir')
    assert folder == cache / 'debian' / 'some-package' / 'nonexistent' / 'dir'
    assert (folder / 'data.txt').read_text() == 'real data'
    assert calls == [['apt-get', 'download'], ['dpkg', '-x']]
    calls.clear()
    assert packages.debian_files('some-package', '/nonexistent/dir') == folder
    assert calls == []


def test_debian_files_package_without_the_folder(cache, monkeypatch):
    def run(cmd, cwd=None, **kwargs):
        if cmd[0] == 'apt-get':
            (Path(cwd) / 'some-package_1.0_all.deb').write_bytes(b'deb')
        else:
            (Path(cmd[3]) / 'usr').mkdir(parents=True)
        return subprocess.CompletedProcess(cmd, 0, '', '')

    monkeypatch.setattr(packages.subprocess, 'run', run)
    with pytest.raises(RealDataUnavailable, match="'some-package' has no /nonexistent/dir"):
        packages.debian_files('some-package', '/nonexistent/dir')
