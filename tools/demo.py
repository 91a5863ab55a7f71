"""The quick-start demo: train UperNet + GFNet-H-Ti on the bundled ADE20K-layout data.

Generates the data (if missing), trains on CPU for a few minutes, evaluates mIoU
and writes a colour overlay of one validation image.

    python tools/demo.py [--work-dir work_dirs/demo] [--iters N]
"""
import argparse
import glob
import os.path as osp
import sys

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.dirname(HERE))
sys.path.insert(0, HERE)

import image_demo  # noqa: E402
import train  # noqa: E402

from gfnet_dense.demo_data import make_ade20k_demo  # noqa: E402

CONFIG = osp.join(osp.dirname(HERE), 'configs/demo/upernet_gfnet_h_ti_ade20k_demo.py')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/ade20k_demo')
    parser.add_argument('--iters', type=int, default=None, help='override max_iters')
    args = parser.parse_args(argv)

    make_ade20k_demo(args.data_root)
    options = [f'train_dataloader.dataset.data_root={args.data_root}',
               f'val_dataloader.dataset.data_root={args.data_root}',
               f'test_dataloader.dataset.data_root={args.data_root}']
    if args.iters:
        options += [f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.iters}',
                    f'default_hooks.checkpoint.interval={args.iters}']
    train.main([CONFIG, '--work-dir', args.work_dir, '--cfg-options', *options])

    checkpoint = open(osp.join(args.work_dir, 'last_checkpoint')).read().strip()
    image = sorted(glob.glob(osp.join(args.data_root, 'images/validation/*.jpg')))[0]
    out = osp.join(args.work_dir, 'overlay.png')
    image_demo.main([image, CONFIG, checkpoint, '--out', out])
    print(f'demo done: checkpoint {checkpoint}, overlay {out}')


if __name__ == '__main__':
    main()
