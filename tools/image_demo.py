"""Run a trained model on one image and save the drawing as an image file.

Segmentation configs give a colour overlay of the predicted classes; detection
configs draw boxes and masks. The config's default_scope decides.

    python tools/image_demo.py IMAGE CONFIG CHECKPOINT --out result.png [--device cpu]
    python tools/image_demo.py IMAGE CONFIG [CHECKPOINT] --onnx model.onnx --out result.png

``--onnx`` runs a segmentor exported by ``tools/export_onnx.py`` in ONNX Runtime
instead of PyTorch: the config's test pipeline resizes the image, the logits are
resized back and drawn as the PyTorch path draws them (class names from the
checkpoint when given, else from the config).

The checkpoint must fit the config's model exactly (every missing, unexpected or
misshapen weight is listed otherwise). Class names and colours come from the
checkpoint's ``meta['dataset_meta']``, else from the config's test dataset.
Grayscale, palette and RGBA images are converted to colour (alpha dropped).

The image is checked before it is decoded: its size is read from the header
(PIL reads it without decoding), and images over ``--max-pixels`` (decompression
bombs), with a side under 2 px or longer than 32 times wide as they are high
(or the reverse) are refused with one line, as are empty and unreadable files.
Formats PIL does not know but OpenCV does (e.g. Radiance HDR, PFM) are checked
after decoding, within OpenCV's own limit (``OPENCV_IO_MAX_IMAGE_PIXELS``).
Class names and colours that are not a list of names and one ``[r, g, b]``
(0-255) per class are replaced by the config's, with a warning.
"""
import argparse
import copy
import numbers
import os
import os.path as osp
import sys
import warnings
from typing import Optional, Tuple

import mmcv
import numpy as np
from mmengine.config import Config

import gfnet_dense  # noqa: F401
from gfnet_dense.cli import InputError, run_tool
from gfnet_dense.mm.model_checks import check_model_widths, load_checked

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp')
# 40 million pixels: 19x a 2048x1024 Cityscapes image, 1.7x a 24-megapixel photo; decoded
# as 8-bit BGR that is 120 MB. A 30000x30000 decompression bomb (a 1 MB PNG) is 900 million.
DEFAULT_MAX_PIXELS = 40_000_000
# MMSeg's visualiser fails on a 1x1 result (a one-element mask indexes as an integer);
# 1-pixel strips are no images to segment either.
MIN_SIDE = 2
# A keep-ratio Resize to the config's scale rounds the shorter side to 0 px (OpenCV's
# resize then fails) once the sides differ by more than twice the scale's long edge
# (1024:1 for the demo's (512, 128), 800:1 for (400, 400)); far before that the shorter
# side is a few pixels, below the backbone's stride of 32.
MAX_ASPECT = 32
# MMSeg resizes a segmentor's logits to the image and keeps them in the result: 4 bytes
# per class and pixel (1.3 GB for 150 classes on a 2048x1024 image, 24 GB at 40e6 pixels).
DEFAULT_MAX_LOGITS_GB = 8.0


def _one_line(err: BaseException) -> str:
    text = ' '.join(str(err).split()) or type(err).__name__
    return text[:200]


def check_image_size(path: str, width: int, height: int,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Refuse sizes this tool cannot, or should not, draw (see the module docstring)."""
    shown = f'image {path!r} is {width}x{height} px (width x height)'
    if width * height > max_pixels:
        raise InputError(f'{shown}: {width * height:,} pixels, more than --max-pixels '
                         f'{max_pixels:,} allows (a decompression bomb, or an image '
                         f'too large for this demo); downscale it, or raise --max-pixels if '
                         f'it is genuine')
    if min(width, height) < MIN_SIDE:
        raise InputError(f'{shown}: each side must be at least {MIN_SIDE} px')
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise InputError(f'{shown}: one side is more than {MAX_ASPECT} times the other, which '
                         f'the test pipeline would squash to a few pixels (or none); crop it '
                         f'into pieces')


def check_image_file(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Optional[Tuple[int, int]]:
    """``(width, height)`` from the file's header, checked, before anything is decoded;
    ``None`` when PIL does not know the format (``read_bgr`` then checks after decoding)."""
    from PIL import Image, UnidentifiedImageError
    try:
        size = osp.getsize(path)
    except OSError as err:
        raise InputError(f'cannot read image {path!r}: {err.strerror or _one_line(err)}')
    if size == 0:
        raise InputError(f'cannot read image {path!r}: the file is empty (not an image?)')
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # PIL's own bomb check: ours below, with --max-pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with Image.open(path) as image:  # lazy: reads the header only
                width, height = image.size
    except UnidentifiedImageError:
        return None
    except Exception as err:  # noqa: BLE001  (a damaged header: any parser error)
        raise InputError(f'cannot read image {path!r}: {_one_line(err)} (not an image, or a '
                         f'damaged one?)')
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    check_image_size(path, width, height, max_pixels)
    return width, height


def read_bgr(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The image as 8-bit BGR: grayscale, palette, 16-bit and RGBA (alpha dropped) converted
    as the pipelines' LoadImageFromFile converts them; checked (``check_image_file``) first."""
    import cv2
    header = check_image_file(path, max_pixels)
    if header is None and not cv2.haveImageReader(path):
        raise InputError(f'cannot read image {path!r}: it is not an image file OpenCV can read '
                         f'(not an image?)')
    try:
        image = mmcv.imread(path, flag='color', channel_order='bgr')
    except (cv2.error, OSError, ValueError) as err:
        raise InputError(f'cannot read image {path!r}: OpenCV cannot decode it: '
                         f'{_one_line(err)[-120:]}')
    if image is None or image.size == 0:
        raise InputError(f'cannot read image {path!r}: OpenCV cannot decode it (a damaged or '
                         f'truncated file?)')
    check_image_size(path, image.shape[1], image.shape[0], max_pixels)
    return image


def check_logits_memory(path: str, height: int, width: int, num_classes: Optional[int],
                        max_gb: float = DEFAULT_MAX_LOGITS_GB) -> None:
    """Refuse an image whose full-resolution segmentation logits (float32, one per class
    and pixel) would take more than ``max_gb``; a config without a class count passes."""
    need = height * width * (num_classes or 0) * 4 / 1e9
    if need > max_gb:
        raise InputError(f'image {path!r}: {height * width:,} pixels x {num_classes} classes '
                         f'need {need:.1f} GB of full-resolution logits, more than '
                         f'--max-logits-gb {max_gb:g} allows; downscale the image, or raise '
                         f'--max-logits-gb if this machine has the memory')


def _model_num_classes(cfg) -> Optional[int]:
    """Classes the config's model predicts (segmentor or detector), when it says."""
    model = (cfg.get('model') if cfg is not None else None) or {}
    if isinstance(model.get('module'), dict):  # a TTA wrapper
        model = model['module']
    heads = [model.get('decode_head'), model.get('bbox_head'),
             (model.get('roi_head') or {}).get('bbox_head')]
    for head in heads:
        if isinstance(head, (list, tuple)) and head:  # cascade heads
            head = head[-1]
        if isinstance(head, dict) and isinstance(head.get('num_classes'), int):
            return head['num_classes']
    return None


def _colour(colour) -> Optional[Tuple[int, int, int]]:
    """``(r, g, b)`` as Python ints from a list, tuple or array of three ints 0-255."""
    if isinstance(colour, np.ndarray):
        colour = colour.tolist()
    if isinstance(colour, (list, tuple)) and len(colour) == 3 and all(
            isinstance(c, numbers.Integral) and not isinstance(c, bool) and 0 <= c <= 255
            for c in colour):
        return tuple(int(c) for c in colour)
    return None


def check_meta(meta, num_classes: Optional[int] = None, named_palettes=()) -> dict:
    """``meta`` with lower-case keys, ``classes`` a list / tuple of names and ``palette`` a
    list of ``(r, g, b)`` ints 0-255, one per class (numpy arrays converted); ``InputError``
    naming the first problem otherwise. ``named_palettes``: strings also taken as a palette
    (MMDet's visualiser resolves ``'random'``, ``'coco'``, ...)."""
    if not isinstance(meta, dict):
        raise InputError(f'dataset_meta is a {type(meta).__name__}, not a dict')
    meta = {k.lower() if isinstance(k, str) else k: v for k, v in meta.items()}
    classes = meta.get('classes')
    if classes is not None:
        if isinstance(classes, np.ndarray):
            classes = classes.tolist()
        if not (isinstance(classes, (list, tuple)) and classes):
            raise InputError(f'classes must be a list of names, got {_shown(classes)}')
        odd = [c for c in classes if not isinstance(c, str)]
        if odd:
            raise InputError(f'class entry {classes.index(odd[0])} is {_shown(odd[0])}, '
                             f'not a name')
        if num_classes is not None and len(classes) != num_classes:
            raise InputError(f'it names {len(classes)} classes, the model predicts '
                             f'{num_classes}')
        meta['classes'] = classes
    palette = meta.get('palette')
    if palette is None or (isinstance(palette, str) and palette in named_palettes):
        return meta
    if isinstance(palette, np.ndarray):
        palette = palette.tolist()
    if not isinstance(palette, (list, tuple)) or not palette:
        raise InputError(f'palette must be a list of [r, g, b] ints 0-255, got '
                         f'{_shown(palette)}')
    colours = [_colour(c) for c in palette]
    if None in colours:
        i = colours.index(None)
        raise InputError(f'palette entry {i} is {_shown(palette[i])}, not [r, g, b] ints 0-255')
    count = len(classes) if classes is not None else num_classes
    if count is not None and len(colours) < count:
        raise InputError(f'its palette has {len(colours)} colours for {count} classes')
    meta['palette'] = colours[:count]
    return meta


def _shown(value) -> str:
    text = ' '.join(repr(value).split())
    return f'{text[:60]}{"..." if len(text) > 60 else ""} ({type(value).__name__})'


def _config_meta(cfg) -> dict:
    from mmengine.registry import DATASETS
    dataset = copy.deepcopy(cfg.test_dataloader.dataset)
    while 'dataset' in dataset or 'datasets' in dataset:  # RepeatDataset, ConcatDataset
        dataset = dataset.get('dataset') or dataset['datasets'][0]
    dataset['lazy_init'] = True  # only the metainfo: no files are read
    return dict(DATASETS.build(dataset).metainfo)


def dataset_meta(cfg, checkpoint: dict) -> dict:
    """Classes and palette: the checkpoint's meta when it has them, else the config's test set.

    Meta that ``check_meta`` refuses is replaced, with a one-line warning, by the config's
    (the config built the model, so its classes fit it; the checkpoint's weights are not
    in doubt, only their labels); and the config's, when it is broken too, by none (the
    drawing numbers the classes and picks fixed colours)."""
    num_classes = _model_num_classes(cfg)
    named = ('random', 'coco', 'citys', 'voc') + tuple(mmcv.Color.__members__) \
        if cfg is not None and cfg.get('default_scope') == 'mmdet' else ()
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
    if meta is not None and (not isinstance(meta, dict) or meta):
        try:
            return check_meta(meta, num_classes, named)
        except InputError as err:
            if cfg is None:
                raise InputError(f"the checkpoint's meta['dataset_meta'] is unusable: {err}")
            _warn(f"the checkpoint's meta['dataset_meta'] is unusable ({err}); "
                  f"drawing with the config's classes and colours")
    try:
        return check_meta(_config_meta(cfg), num_classes, named)
    except InputError as err:
        _warn(f"the config's test dataset metainfo is unusable ({err}); drawing numbered "
              f"classes in fixed colours")
        return {}


def _warn(message: str) -> None:
    print(f'warning: {message}', file=sys.stderr, flush=True)


def build(init_fn, cfg, checkpoint_path, device):
    """The config's model with the checkpoint loaded strictly, and its dataset_meta."""
    with warnings.catch_warnings():  # mmdet warns that no checkpoint means COCO classes
        warnings.simplefilter('ignore')
        model = init_fn(cfg, None, device=device)
    checkpoint = load_checked(model, checkpoint_path)
    model.dataset_meta = dataset_meta(model.cfg, checkpoint)
    return model


def draw_segmentation(image, cfg, checkpoint, out, device, opacity):
    from mmseg.apis import inference_model, init_model
    from mmseg.visualization import SegLocalVisualizer
    model = build(init_model, cfg, checkpoint, device)
    result = inference_model(model, image)
    visualizer = SegLocalVisualizer(vis_backends=[dict(type='LocalVisBackend')],
                                    save_dir=osp.dirname(out) or '.', alpha=opacity)
    meta = model.dataset_meta
    classes = meta.setdefault('classes', [str(i) for i in range(model.decode_head.num_classes)])
    if len(meta.get('palette') or ()) < len(classes):  # no colours saved: fixed random ones
        meta['palette'] = np.random.RandomState(42).randint(0, 256, (len(classes), 3)).tolist()
    visualizer.dataset_meta = meta
    visualizer.add_datasample('result', image[..., ::-1], result, draw_gt=False, show=False,
                              out_file=out, with_labels=False)
    return result


def onnx_segmentation(image, cfg, onnx_file):
    """The test pipeline's resize, the ONNX file's logits (RGB 0-255 in), resized back
    to the image and arg-maxed as MMSeg's whole-image inference does."""
    import torch
    import torch.nn.functional as F
    from mmengine.dataset import Compose
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules
    from gfnet_dense.deploy import onnx_session, run_onnx
    register_all_modules()
    steps = [dict(type='LoadImageFromNDArray')] + [
        t for t in cfg.test_pipeline if t['type'] not in ('LoadImageFromFile', 'LoadAnnotations')]
    inputs = Compose(steps)(dict(img=image))['inputs']  # uint8 CHW, BGR as loaded
    rgb = inputs[[2, 1, 0]].float()[None]
    logits = run_onnx(onnx_session(onnx_file), rgb)[0]
    logits = F.interpolate(logits, size=image.shape[:2], mode='bilinear',
                           align_corners=cfg.model.decode_head.get('align_corners', False))
    result = SegDataSample()
    result.pred_sem_seg = PixelData(data=logits.argmax(1).to(torch.int64))
    return result


def draw_onnx_segmentation(image, cfg, checkpoint, onnx_file, out, opacity):
    from mmseg.visualization import SegLocalVisualizer
    from gfnet_dense.checkpoints import read_checkpoint
    result = onnx_segmentation(image, cfg, onnx_file)
    meta = dataset_meta(cfg, read_checkpoint(checkpoint) if checkpoint else {})
    classes = meta.setdefault('classes', [str(i) for i in range(cfg.model.decode_head.num_classes)])
    if len(meta.get('palette') or ()) < len(classes):
        meta['palette'] = np.random.RandomState(42).randint(0, 256, (len(classes), 3)).tolist()
    visualizer = SegLocalVisualizer(vis_backends=[dict(type='LocalVisBackend')],
                                    save_dir=osp.dirname(out) or '.', alpha=opacity)
    visualizer.dataset_meta = meta
    visualizer.add_datasample('result', image[..., ::-1], result, draw_gt=False, show=False,
                              out_file=out, with_labels=False)
    return result


def draw_detection(image, cfg, checkpoint, out, device, score_thr):
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS
    model = build(init_detector, cfg, checkpoint, device)
    model.dataset_meta.setdefault('palette', 'random')
    result = inference_detector(model, image)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    visualizer.add_datasample('result', image[..., ::-1], result, draw_gt=False, show=False,
                              out_file=out, pred_score_thr=score_thr)
    return result


def _number(text: str, smallest: float, inclusive: bool, what: str) -> float:
    """``text`` as a finite number at or above (``inclusive``) or above ``smallest``, for
    argparse; else one line naming ``what`` it should have been."""
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not ((value >= smallest if inclusive else value > smallest) and value < float('inf')):
        raise argparse.ArgumentTypeError(f'{text!r} is not {what}')
    return value


def _pixel_count(text: str) -> int:
    return int(_number(text, 1, True, 'a pixel count (e.g. 40e6)'))


def _gigabytes(text: str) -> float:
    return _number(text, 0, False, 'a size in GB (e.g. 8)')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image')
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='optional with --onnx (class names)')
    parser.add_argument('--onnx', help='a segmentor exported by tools/export_onnx.py: run it '
                        'in ONNX Runtime')
    parser.add_argument('--out', default='result.png',
                        help=f'image file to write ({", ".join(IMAGE_EXTENSIONS)})')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--opacity', type=float, default=0.5, help='segmentation overlay')
    parser.add_argument('--score-thr', type=float, default=0.3, help='detection boxes')
    parser.add_argument('--max-pixels', type=_pixel_count, default=DEFAULT_MAX_PIXELS,
                        metavar='N', help='refuse images with more pixels than this, read from '
                        'the header before decoding (default 40e6; a 2048x1024 Cityscapes image '
                        'is 2.1e6)')
    parser.add_argument('--max-logits-gb', type=_gigabytes, default=DEFAULT_MAX_LOGITS_GB,
                        metavar='GB', help='segmentation: refuse images whose logits, which '
                        'MMSeg resizes to the image (4 bytes per class and pixel), would take '
                        'more (default 8: 13e6 pixels at 150 classes; the peak of MMSeg\'s '
                        'post-processing is higher)')
    args = parser.parse_args(argv)
    if osp.splitext(args.out)[1].lower() not in IMAGE_EXTENSIONS:
        parser.error(f'--out {args.out!r} is not an image file name: it must end in '
                     f'{", ".join(IMAGE_EXTENSIONS)}')
    if not (args.checkpoint or args.onnx):
        parser.error('give a CHECKPOINT, or --onnx with an exported model')
    for path in (args.image, args.config, args.checkpoint, args.onnx):
        if path and not osp.isfile(path):
            raise FileNotFoundError(f'{path!r} is not a file' if osp.exists(path) else
                                    f'{path!r} does not exist')
    image = read_bgr(args.image, args.max_pixels)
    cfg = Config.fromfile(args.config)
    check_model_widths(cfg)
    if cfg.get('default_scope') != 'mmdet':
        check_logits_memory(args.image, *image.shape[:2], _model_num_classes(cfg),
                            args.max_logits_gb)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    if args.onnx:
        if cfg.get('default_scope') == 'mmdet':
            parser.error('--onnx draws segmentation only: an exported detector gives raw head '
                         'outputs, without box decoding and NMS')
        draw_onnx_segmentation(image, cfg, args.checkpoint, args.onnx, args.out, args.opacity)
    elif cfg.get('default_scope') == 'mmdet':
        draw_detection(image, cfg, args.checkpoint, args.out, args.device, args.score_thr)
    else:
        draw_segmentation(image, cfg, args.checkpoint, args.out, args.device, args.opacity)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    run_tool(main)
