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
"""
import argparse
import copy
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmcv  # noqa: E402
import numpy as np  # noqa: E402
from mmengine.config import Config  # noqa: E402

import gfnet_dense  # noqa: E402,F401
from gfnet_dense.mm.model_checks import check_model_widths, load_checked  # noqa: E402

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp')


def read_bgr(path: str) -> np.ndarray:
    """The image as 8-bit BGR: grayscale, palette, 16-bit and RGBA (alpha dropped) converted
    as the pipelines' LoadImageFromFile converts them."""
    image = mmcv.imread(path, flag='color', channel_order='bgr')
    if image is None:
        raise ValueError(f'{path!r} is not an image file OpenCV can read')
    return image


def dataset_meta(cfg, checkpoint: dict) -> dict:
    """Classes and palette: the checkpoint's meta when it has them, else the config's test set."""
    meta = (checkpoint.get('meta') or {}).get('dataset_meta')
    if meta:
        return {k.lower(): v for k, v in meta.items()}
    from mmengine.registry import DATASETS
    dataset = copy.deepcopy(cfg.test_dataloader.dataset)
    while 'dataset' in dataset or 'datasets' in dataset:  # RepeatDataset, ConcatDataset
        dataset = dataset.get('dataset') or dataset['datasets'][0]
    dataset['lazy_init'] = True  # only the metainfo: no files are read
    return dict(DATASETS.build(dataset).metainfo)


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
    from gfnet_dense.checkpoint import read_checkpoint
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
    args = parser.parse_args(argv)
    if osp.splitext(args.out)[1].lower() not in IMAGE_EXTENSIONS:
        parser.error(f'--out {args.out!r} is not an image file name: it must end in '
                     f'{", ".join(IMAGE_EXTENSIONS)}')
    if not (args.checkpoint or args.onnx):
        parser.error('give a CHECKPOINT, or --onnx with an exported model')
    for path in (args.image, args.config, args.checkpoint, args.onnx):
        if path and not osp.isfile(path):
            raise FileNotFoundError(f'{path!r} does not exist')
    cfg = Config.fromfile(args.config)
    check_model_widths(cfg)
    image = read_bgr(args.image)
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
    main()
