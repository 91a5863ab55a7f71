"""tools/image_demo.py's input checks, in process: image files refused from their header
before decoding allocates (sizes, decompression bombs, empty and damaged files), and
checkpoint meta whose classes or palette are unusable replaced by the config's."""
import struct
import zlib

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from helpers import DEMO_CONFIG, load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('image_demo')


def png(path, width, height, rows=4):
    """A grayscale PNG declaring ``width x height`` with only ``rows`` rows of data:
    a decompression bomb's header, a few hundred bytes on disk."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + \
            struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    data = zlib.compress(b'\0' * (width + 1) * rows, 9)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height,
                                                                         8, 0, 0, 0, 0))
                     + chunk(b'IDAT', data) + chunk(b'IEND', b''))
    return str(path)


def image(path, width, height):
    Image.new('RGB', (width, height), (10, 120, 200)).save(path)
    return str(path)


@pytest.mark.parametrize('size,message', [
    ((1, 1), 'is 1x1 px (width x height): each side must be at least 2 px'),
    ((3000, 1), 'is 3000x1 px (width x height): each side must be at least 2 px'),
    ((1, 3000), 'is 1x3000 px (width x height): each side must be at least 2 px'),
    ((70, 2), 'is 70x2 px (width x height): one side is more than 32 times the other'),
    ((3, 100), 'one side is more than 32 times the other'),
])
def test_sizes_the_pipeline_or_visualiser_cannot_take(tool, tmp_path, size, message):
    path = image(tmp_path / 'x.png', *size)
    with pytest.raises(tool.InputError, match='image .*x.png') as err:
        tool.read_bgr(path)
    assert message in str(err.value) and '\n' not in str(err.value)


@pytest.mark.parametrize('size', [(2, 2), (64, 2), (2, 64), (33, 1024)])
def test_small_and_narrow_images_that_work_are_read(tool, tmp_path, size):
    assert tool.read_bgr(image(tmp_path / 'x.png', *size)).shape == (size[1], size[0], 3)


def test_decompression_bomb_refused_from_its_header(tool, tmp_path, monkeypatch):
    bomb = png(tmp_path / 'bomb.png', 30000, 30000)
    monkeypatch.setattr(tool.mmcv, 'imread', lambda *a, **k: pytest.fail('decoded'))
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(tool.InputError) as err:
        tool.read_bgr(bomb)
    assert 'is 30000x30000 px (width x height): 900,000,000 pixels, more than --max-pixels ' \
        '40,000,000 allows (a decompression bomb' in str(err.value)
    assert Image.MAX_IMAGE_PIXELS == limit  # PIL's own limit is put back
    with pytest.raises(tool.InputError, match='more than --max-pixels 1,000 allows'):
        tool.check_image_file(image(tmp_path / 'ok.png', 64, 48), max_pixels=1000)
    assert tool.check_image_file(str(tmp_path / 'ok.png')) == (64, 48)


def test_raised_limit_lets_it_through_to_opencv(tool, tmp_path):
    """--max-pixels above the header's size: the truncated data fails to decode, in one line."""
    with pytest.raises(tool.InputError, match='OpenCV cannot decode it'):
        tool.read_bgr(png(tmp_path / 'big.png', 3000, 2000), max_pixels=10 ** 7)


def test_empty_text_damaged_and_truncated_files(tool, tmp_path):
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    with pytest.raises(tool.InputError, match=r"empty.png': the file is empty \(not an image\?\)"):
        tool.read_bgr(str(empty))
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    with pytest.raises(tool.InputError, match=r'not an image file OpenCV can read \(not an image'):
        tool.read_bgr(str(text))
    header_only = tmp_path / 'header.png'
    header_only.write_bytes(open(image(tmp_path / 'p.png', 30, 20), 'rb').read()[:20])
    with pytest.raises(tool.InputError, match='header.png'):
        tool.read_bgr(str(header_only))
    truncated = tmp_path / 'half.png'
    truncated.write_bytes(open(png(tmp_path / 'p2.png', 300, 200, rows=200), 'rb').read()[:60])
    with pytest.raises(tool.InputError, match='half.png'):
        tool.read_bgr(str(truncated))
    assert tool.read_bgr(image(tmp_path / 'full.jpg', 300, 200)).shape == (200, 300, 3)


def test_format_pil_does_not_know_is_checked_after_decoding(tool, tmp_path):
    import cv2
    path = str(tmp_path / 'tiny.hdr')  # Radiance HDR: OpenCV reads it, PIL does not
    cv2.imwrite(path, np.ones((1, 1, 3), np.float32))
    assert tool.check_image_file(path) is None
    with pytest.raises(tool.InputError, match='is 1x1 px'):
        tool.read_bgr(path)
    cv2.imwrite(path, np.ones((8, 12, 3), np.float32))
    assert tool.read_bgr(path).shape == (8, 12, 3)


def test_main_refuses_the_image_before_reading_config_or_checkpoint(tool, tmp_path, capsys):
    not_a_checkpoint = tmp_path / 'model.pth'
    not_a_checkpoint.write_bytes(b'never read')
    args = [image(tmp_path / 'dot.png', 1, 1), DEMO_CONFIG, str(not_a_checkpoint),
            '--out', str(tmp_path / 'o.png')]
    with pytest.raises(tool.InputError, match='each side must be at least 2 px'):
        tool.main(args)
    with pytest.raises(SystemExit):
        tool.main(args + ['--max-pixels', 'lots'])
    assert "--max-pixels: 'lots' is not a pixel count" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main(['--help'])
    assert 'default 40e6' in ' '.join(capsys.readouterr().out.split())


CLASSES = [f'c{i}' for i in range(150)]


@pytest.mark.parametrize('meta,classes,palette', [
    (dict(classes=CLASSES, palette=np.arange(450).reshape(150, 3) % 256), CLASSES, (0, 1, 2)),
    (dict(classes=tuple(CLASSES), palette=np.full((150, 3), 7, np.uint8)), tuple(CLASSES),
     (7, 7, 7)),
    (dict(classes=np.array(CLASSES), palette=[np.array([1, 2, 3])] * 150), CLASSES, (1, 2, 3)),
    (dict(CLASSES=CLASSES, PALETTE=[[1, 2, 3]] * 300), CLASSES, (1, 2, 3)),  # extra: cut
])
def test_meta_arrays_and_old_keys_are_converted(tool, meta, classes, palette):
    out = tool.check_meta(meta, num_classes=150)
    assert out['classes'] == classes and len(out['palette']) == 150
    assert out['palette'][0] == palette and all(type(c) is int for c in out['palette'][0])


@pytest.mark.parametrize('meta,problem', [
    (dict(classes='cat'), "classes must be a list of names, got 'cat' (str)"),
    (dict(classes=[]), 'classes must be a list of names, got [] (list)'),
    (dict(classes=list(range(150))), 'class entry 0 is 0 (int), not a name'),
    (dict(classes=['a', 'b']), 'it names 2 classes, the model predicts 150'),
    (dict(classes=CLASSES, palette=np.zeros((150, 3))),
     'palette entry 0 is [0.0, 0.0, 0.0] (list), not [r, g, b] ints 0-255'),
    (dict(classes=CLASSES, palette=[[1, 2, 256]] * 150), 'palette entry 0 is [1, 2, 256]'),
    (dict(classes=CLASSES, palette=[[1, 2, 3, 4]] * 150), 'palette entry 0 is [1, 2, 3, 4]'),
    (dict(classes=CLASSES, palette=[[1, 2, 3]] * 10), 'its palette has 10 colours for 150'),
    (dict(classes=CLASSES, palette='random'), "palette must be a list of [r, g, b] ints 0-255, "
     "got 'random' (str)"),
    ([('classes', CLASSES)], 'dataset_meta is a list, not a dict'),
])
def test_unusable_meta_is_named(tool, meta, problem):
    with pytest.raises(tool.InputError) as err:
        tool.check_meta(meta, num_classes=150)
    assert problem in str(err.value) and '\n' not in str(err.value)


def test_named_palette_for_detection(tool):
    assert tool.check_meta(dict(classes=['a'], palette='random'), 1, ('random',)) == \
        dict(classes=['a'], palette='random')


def test_unusable_checkpoint_meta_falls_back_to_the_config(tool, capsys):
    cfg = Config.fromfile(DEMO_CONFIG)
    meta = tool.dataset_meta(cfg, {'meta': {'dataset_meta': dict(classes='cat')}})
    assert meta['classes'][:2] == ('wall', 'building') and len(meta['palette']) == 150
    err = capsys.readouterr().err.strip()
    assert err == ("warning: the checkpoint's meta['dataset_meta'] is unusable (classes must be "
                   "a list of names, got 'cat' (str)); drawing with the config's classes and "
                   "colours")
    good = dict(classes=CLASSES, palette=np.zeros((150, 3), np.int64))
    assert tool.dataset_meta(cfg, {'meta': {'dataset_meta': good}})['classes'] == CLASSES
    assert tool.dataset_meta(cfg, {'meta': np.zeros(3)})['classes'][0] == 'wall'
    with pytest.raises(tool.InputError, match=r"meta\['dataset_meta'\] is unusable: classes"):
        tool.dataset_meta(None, {'meta': {'dataset_meta': dict(classes='cat')}})  # no config


def test_segmentation_logits_over_the_memory_cap_are_refused(tool, tmp_path, capsys):
    tool.check_logits_memory('ok.png', 1024, 2048, 150)  # 1.3 GB: under the default 8
    with pytest.raises(tool.InputError, match=r"'big.png': 40,000,000 pixels x 150 classes need "
                                              r'24.0 GB of full-resolution logits, more than '
                                              r'--max-logits-gb 8 allows'):
        tool.check_logits_memory('big.png', 5000, 8000, 150)
    tool.check_logits_memory('any.png', 5000, 8000, None)  # no class count: not known
    # main checks it from the config, before the checkpoint is read
    not_a_checkpoint = tmp_path / 'model.pth'
    not_a_checkpoint.write_bytes(b'never read')
    args = [image(tmp_path / 'small.png', 64, 48), DEMO_CONFIG, str(not_a_checkpoint),
            '--out', str(tmp_path / 'o.png')]
    with pytest.raises(tool.InputError, match='3,072 pixels x .* classes need 0.0 GB'):
        tool.main(args + ['--max-logits-gb', '1e-9'])
    with pytest.raises(SystemExit):
        tool.main(args + ['--max-logits-gb', '0'])
    assert "--max-logits-gb: '0' is not a size in GB" in capsys.readouterr().err
