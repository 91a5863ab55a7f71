"""Run a trained model on one image and save the drawing as a PNG.

Segmentation configs give a colour overlay of the predicted classes; detection
configs draw boxes and masks. The config's default_scope decides.

    python tools/image_demo.py IMAGE CONFIG CHECKPOINT --out result.png [--device cpu]
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmcv  # noqa: E402
from mmengine.config import Config  # noqa: E402

import gfnet_dense  # noqa: E402,F401
from gfnet_dense.runtime import install_checkpoint_loader  # noqa: E402


def draw_segmentation(image_path, cfg, checkpoint, out, device, opacity):
    from mmseg.apis import inference_model, init_model
    from mmseg.visualization import SegLocalVisualizer
    model = init_model(cfg, checkpoint, device=device)
    result = inference_model(model, image_path)
    visualizer = SegLocalVisualizer(vis_backends=[dict(type='LocalVisBackend')],
                                    save_dir=osp.dirname(out) or '.', alpha=opacity)
    visualizer.dataset_meta = model.dataset_meta
    image = mmcv.imread(image_path, channel_order='rgb')
    visualizer.add_datasample('result', image, result, draw_gt=False, show=False,
                              out_file=out, with_labels=False)
    return result


def draw_detection(image_path, cfg, checkpoint, out, device, score_thr):
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS
    model = init_detector(cfg, checkpoint, device=device)
    result = inference_detector(model, image_path)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    image = mmcv.imread(image_path, channel_order='rgb')
    visualizer.add_datasample('result', image, result, draw_gt=False, show=False,
                              out_file=out, pred_score_thr=score_thr)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', default='result.png', help='PNG to write')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--opacity', type=float, default=0.5, help='segmentation overlay')
    parser.add_argument('--score-thr', type=float, default=0.3, help='detection boxes')
    args = parser.parse_args(argv)
    for path in (args.image, args.config, args.checkpoint):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path!r} does not exist')
    install_checkpoint_loader()
    cfg = Config.fromfile(args.config)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    if cfg.get('default_scope') == 'mmdet':
        draw_detection(args.image, cfg, args.checkpoint, args.out, args.device, args.score_thr)
    else:
        draw_segmentation(args.image, cfg, args.checkpoint, args.out, args.device, args.opacity)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
