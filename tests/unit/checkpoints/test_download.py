"""Downloads against a local HTTP server that misbehaves in the ways servers do."""
import hashlib
import http.server
import io
import json
import os
import struct
import threading
import time

import pytest
import torch

from gfnet_dense.checkpoints import download as dl
from gfnet_dense.checkpoints.download import (DownloadRefused, cache_path, download, is_remote,
                                              resolve_url)

TIMEOUT = 0.5
STALL_S = 1.5  # longer than TIMEOUT; the server's wait ends early when the fixture closes


def _saved(obj, **kwargs):
    buf = io.BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


GENUINE = _saved({'w': torch.arange(4.)})
OTHER = _saved({'w': torch.zeros(3)})
LEGACY = _saved({'w': torch.ones(2)}, _use_new_zipfile_serialization=False)
SAFETENSORS = (lambda h: struct.pack('<Q', len(h)) + h + struct.pack('<2f', 1, 2))(
    json.dumps({'w': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}}).encode())
HTML = b'<!DOCTYPE html><html><body>Sign in to continue</body></html>'


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes by path; ``server.hits`` counts requests per path."""

    def log_message(self, *args):
        pass

    def _send(self, body, status=200, ctype='application/octet-stream', length=None):
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
        stop, path = self.server.stop, self.path
        files = {'/files/genuine.pth': GENUINE, '/a/model.pth': GENUINE, '/b/model.pth': OTHER,
                 f'/files/genuine-{sha(GENUINE)[:8]}.pth': GENUINE,
                 '/files/genuine-deadbeef.pth': GENUINE,
                 '/files/legacy.pth': LEGACY, f'/files/legacy-{sha(LEGACY)[:8]}.pth': LEGACY,
                 '/files/model.safetensors': SAFETENSORS}
        try:
            if path in files:
                self._send(files[path])
            elif path == '/html/gfnet-h-ti.pth':
                self._send(HTML, ctype='text/html; charset=utf-8')
            elif path == '/html-bom/gfnet-h-ti.pth':  # a page served as a binary file
                self._send(b'\xef\xbb\xbf\n ' + HTML)
            elif path == '/redirect/genuine.pth':
                self.send_response(302)
                self.send_header('Location', '/files/genuine.pth')
                self.end_headers()
            elif path == '/stall/headers.pth':
                stop.wait(STALL_S)
            elif path == '/stall/body.pth':
                self.send_response(200)
                self.send_header('Content-Length', str(len(GENUINE)))
                self.end_headers()
                self.wfile.write(GENUINE[:2])
                self.wfile.flush()
                stop.wait(STALL_S)
            elif path == '/short/genuine.pth':
                self._send(GENUINE[:len(GENUINE) // 2], length=len(GENUINE))
            elif path == '/cut/genuine.pth':
                self._send(GENUINE[:len(GENUINE) // 2])
            elif path == '/huge/model.pth':
                self._send(b'', length=10 ** 12)
            elif path == '/endless/model.pth':
                self.send_response(200)
                self.end_headers()
                for _ in range(160):  # 10 MiB at most, close-delimited
                    if stop.is_set():
                        break
                    self.wfile.write(b'PK\x03\x04' + bytes(65532))
            else:
                self._send(b'not found', status=404, ctype='text/plain')
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope='module')
def server():
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    srv.hits, srv.stop = {}, threading.Event()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, f'http://127.0.0.1:{srv.server_address[1]}'
    srv.stop.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture
def base(server):
    return server[1]


def fetch(url, tmp_path, **kwargs):
    kwargs.setdefault('timeout', TIMEOUT)
    return download(url, model_dir=str(tmp_path), **kwargs)


def refused(url, tmp_path, error=DownloadRefused, **kwargs):
    """The one-line error for ``url``; nothing may be left in the cache folder."""
    with pytest.raises(error) as info:
        fetch(url, tmp_path, **kwargs)
    message = str(info.value)
    assert '\n' not in message and url in message and str(tmp_path) in message
    assert not tmp_path.exists() or os.listdir(tmp_path) == []
    return message


def test_genuine_file_is_cached_under_the_whole_url(base, tmp_path):
    url = f'{base}/files/genuine.pth'
    got = fetch(url, tmp_path)
    assert got.path == str(tmp_path / f'{sha(url.encode())[:16]}-genuine.pth')
    assert not got.sha256_verified
    assert open(got.path, 'rb').read() == GENUINE
    assert torch.equal(torch.load(got.path, weights_only=True)['w'], torch.arange(4.))
    assert os.listdir(tmp_path) == [os.path.basename(got.path)]


def test_cached_file_is_reused_without_network(server, tmp_path):
    srv, base = server
    url = f'{base}/files/model.safetensors'
    first = fetch(url, tmp_path)
    hits = srv.hits[url[len(base):]]
    assert fetch(url, tmp_path) == first
    assert srv.hits[url[len(base):]] == hits


def test_basename_keyed_cache_entry_is_not_trusted(base, tmp_path):
    (tmp_path / 'genuine.pth').write_bytes(HTML)
    got = fetch(f'{base}/files/genuine.pth', tmp_path)
    assert open(got.path, 'rb').read() == GENUINE


def test_same_basename_on_two_urls_gets_two_entries(base, tmp_path):
    a, b = fetch(f'{base}/a/model.pth', tmp_path), fetch(f'{base}/b/model.pth', tmp_path)
    assert a.path != b.path
    assert open(a.path, 'rb').read() == GENUINE and open(b.path, 'rb').read() == OTHER


def test_redirect_is_followed_and_checked(base, tmp_path):
    got = fetch(f'{base}/redirect/genuine.pth', tmp_path)
    assert open(got.path, 'rb').read() == GENUINE


@pytest.mark.parametrize('where', ['headers', 'body'])
def test_stalled_server_fails_within_the_timeout(base, tmp_path, where):
    start = time.monotonic()
    message = refused(f'{base}/stall/{where}.pth', tmp_path, ConnectionError)
    assert time.monotonic() - start < STALL_S
    assert 'timed out' in message


def test_body_shorter_than_its_content_length(base, tmp_path):
    assert 'after' in refused(f'{base}/short/genuine.pth', tmp_path, ConnectionError)


def test_truncated_zip_is_refused(base, tmp_path):
    assert 'cut short' in refused(f'{base}/cut/genuine.pth', tmp_path)


def test_content_length_over_the_cap_is_refused_before_reading(base, tmp_path):
    message = refused(f'{base}/huge/model.pth', tmp_path, max_bytes=1 << 20)
    assert 'Content-Length' in message


def test_endless_body_stops_at_the_cap(base, tmp_path):
    start = time.monotonic()
    message = refused(f'{base}/endless/model.pth', tmp_path, max_bytes=1 << 20)
    assert 'cap' in message and time.monotonic() - start < 2


def test_html_page_with_status_200_is_refused(base, tmp_path):
    assert 'HTML page' in refused(f'{base}/html/gfnet-h-ti.pth', tmp_path)
    # named from its bytes too, behind a byte-order mark, when no header says text/html
    assert 'HTML page' in refused(f'{base}/html-bom/gfnet-h-ti.pth', tmp_path)


def test_404(base, tmp_path):
    assert '404' in refused(f'{base}/missing/model.pth', tmp_path, ConnectionError)


def test_hash_prefix_in_the_name(base, tmp_path):
    got = fetch(f'{base}/files/genuine-{sha(GENUINE)[:8]}.pth', tmp_path)
    assert got.sha256_verified
    assert 'sha256' in refused(f'{base}/files/genuine-deadbeef.pth', tmp_path / 'bad')


def test_given_sha256(base, tmp_path):
    assert fetch(f'{base}/files/genuine.pth', tmp_path, sha256=sha(GENUINE)).sha256_verified
    url = f'{base}/files/model.safetensors'
    assert 'sha256' in refused(url, tmp_path / 'other', sha256=sha(GENUINE))


def test_legacy_pickle_only_when_hash_verified(base, tmp_path):
    message = refused(f'{base}/files/legacy.pth', tmp_path)
    assert 'non-zip' in message and 'sha256=' in message
    assert fetch(f'{base}/files/legacy-{sha(LEGACY)[:8]}.pth', tmp_path).sha256_verified
    got = fetch(f'{base}/files/legacy.pth', tmp_path, sha256=sha(LEGACY))
    assert got.sha256_verified
    assert torch.equal(torch.load(got.path, weights_only=True)['w'], torch.ones(2))


def test_bad_cached_file_is_reported_not_trusted(base, tmp_path):
    url = f'{base}/files/genuine.pth'
    open(cache_path(url, str(tmp_path)), 'wb').write(HTML)
    with pytest.raises(DownloadRefused, match='delete the cached file'):
        fetch(url, tmp_path)


def test_is_remote():
    for name in ('http://x/a.pth', 'https://x/a.pth', 'open-mmlab://resnet50_v1c',
                 'mmcls://resnet18', 'torchvision://resnet18'):
        assert is_remote(name)
    for name in ('a.pth', '/tmp/a.pth', 's3://bucket/a.pth', None):
        assert not is_remote(name)


@pytest.fixture
def mmengine_home(tmp_path, monkeypatch):
    """MMEngine's tables without the user's own ``open_mmlab.json``."""
    home = tmp_path / 'mmengine_home'
    home.mkdir()
    monkeypatch.setenv('MMENGINE_HOME', str(home))
    return home


def test_resolve_url(mmengine_home):
    from mmengine.runner.checkpoint import get_external_models, get_mmcls_models
    cases = {
        'open-mmlab://resnet50_v1c':
            'https://download.openmmlab.com/pretrain/third_party/resnet50_v1c-2cccc1ad.pth',
        'torchvision://resnet18': 'https://download.pytorch.org/models/resnet18-f37072fd.pth',
        'mmcls://resnet18': 'https://download.openmmlab.com/mmclassification/v0/resnet/'
                            'resnet18_8xb32_in1k_20210831-fbbb1da6.pth',
    }
    assert get_external_models()['resnet50_v1c'] == cases['open-mmlab://resnet50_v1c']
    assert get_mmcls_models()['resnet18'] == cases['mmcls://resnet18']
    for name, url in cases.items():
        assert resolve_url(name) == url
    assert resolve_url('https://x/a.pth') == 'https://x/a.pth'
    with pytest.raises(ValueError, match="'s3://'"):
        resolve_url('s3://bucket/a.pth')
    with pytest.raises(ValueError, match='no URL scheme'):
        resolve_url('a.pth')
    with pytest.raises(ValueError, match='resnet50_v1c'):
        resolve_url('open-mmlab://resnet50_v1d')


def test_mmengine_name_is_downloaded_and_verified(base, tmp_path, mmengine_home):
    url = f'{base}/files/legacy-{sha(LEGACY)[:8]}.pth'
    (mmengine_home / 'open_mmlab.json').write_text(json.dumps({'tiny_legacy': url}))
    got = fetch('open-mmlab://tiny_legacy', tmp_path / 'cache')
    assert got.sha256_verified and got.path == cache_path(url, str(tmp_path / 'cache'))


def test_max_bytes_from_env(monkeypatch):
    monkeypatch.setenv('GFNET_DENSE_MAX_DOWNLOAD_BYTES', '12345')
    assert dl._max_bytes_from_env() == 12345
    monkeypatch.setenv('GFNET_DENSE_MAX_DOWNLOAD_BYTES', '1GB')
    with pytest.raises(ValueError, match='GFNET_DENSE_MAX_DOWNLOAD_BYTES'):
        dl._max_bytes_from_env()


@pytest.mark.parametrize('data, kind', [
    (GENUINE, 'zip'), (SAFETENSORS, 'safetensors'), (LEGACY, 'legacy'), (HTML, None),
    (b'\x80\x04\x95' + bytes(13), None), (b'', None)])
def test_the_downloader_sniffs_with_the_readers_rules(tmp_path, data, kind):
    """One format test (``reading.checkpoint_format``) for what a download keeps and
    what the reader reads: they cannot drift apart."""
    from gfnet_dense.checkpoints.reading import checkpoint_format
    path = tmp_path / 'file'
    path.write_bytes(data)
    assert checkpoint_format(data[:16], len(data)) == kind
    found = dl._kind(str(path))
    assert found == kind if kind else found.startswith(f'{len(data)} bytes starting with')
