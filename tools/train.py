"""Train an MMSeg or MMDet model from a config (the config's default_scope decides).

    python tools/train.py configs/upernet_gfnet_h_s_ade20k.py [--work-dir DIR] [--amp [bf16]]
        [--resume [CKPT]] [--cfg-options key=value ...] [--launcher pytorch]

A checkpoint to resume from (or ``load_from``) must fit the config's model: any
missing, unexpected or misshapen weight stops the run before the first iteration.
"""
import argparse
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import gfnet_dense  # noqa: F401  (registers GFNetH / GFNet)
from gfnet_dense.cli import finish_distributed, run_tool
from gfnet_dense.mm.model_checks import check_run_checkpoint
from gfnet_dense.mm.runtime import (CPU_NOTE, check_data_paths, init_cpu_distributed,
                                    parse_with_launcher_args, prepare_config)
from gfnet_dense.mm.safe_loading import safe_checkpoint_loading


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--amp', nargs='?', const='fp16', default='none',
                        choices=['none', 'fp16', 'bf16'],
                        help='mixed precision training on GPU (MMEngine AmpOptimWrapper): '
                        '--amp alone is fp16 with dynamic loss scaling (the default dtype), '
                        '--amp bf16 is bfloat16 without loss scaling (Ampere or newer); '
                        'give it after CONFIG')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                        help='resume from CKPT, or from the latest checkpoint in the work '
                        'dir when no path is given')
    return parse_with_launcher_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = prepare_config(Config.fromfile(args.config), launcher=args.launcher,
                         work_dir=args.work_dir, config_path=args.config,
                         cfg_options=args.cfg_options, amp=args.amp)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume checkpoint {args.resume!r} does not exist')
        cfg.resume, cfg.load_from = True, args.resume
    check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
    if not torch.cuda.is_available():
        print(CPU_NOTE, flush=True)
        init_cpu_distributed(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    check_run_checkpoint(runner, cfg)
    with safe_checkpoint_loading():  # MMEngine loads the checkpoint under the policy
        runner.train()
    del runner  # its DDP model holds the process group
    finish_distributed()


if __name__ == '__main__':
    run_tool(main)
