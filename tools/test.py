"""Evaluate a checkpoint of an MMSeg or MMDet config (the config's default_scope decides).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--show-dir DIR]
        [--tta] [--cfg-options key=value ...] [--launcher pytorch]

The checkpoint must fit the config's model: any missing, unexpected or misshapen
weight stops the tool before evaluating (MMEngine alone would load what fits and
evaluate the rest at random).
"""
import argparse
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import gfnet_dense  # noqa: F401
from gfnet_dense.cli import finish_distributed, run_tool
from gfnet_dense.mm.model_checks import check_checkpoint_fits
from gfnet_dense.mm.runtime import (check_data_paths, init_cpu_distributed,
                                    parse_with_launcher_args, prepare_config)
from gfnet_dense.mm.safe_loading import safe_checkpoint_loading


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where evaluation logs go')
    parser.add_argument('--out', help='dump raw predictions to this pickle file '
                        '(segmentation: a folder of prediction PNGs)')
    parser.add_argument('--show-dir', help='save visualised predictions to this folder')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation '
                        '(the config tta_pipeline: multi-scale and flip)')
    return parse_with_launcher_args(parser, argv)


def _enable_visualization(cfg, show_dir: str) -> None:
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError('--show-dir needs a visualization hook in default_hooks')
    hook['draw'] = True
    if cfg.default_scope == 'mmdet':
        hook['test_out_dir'] = show_dir
    else:
        hook['interval'] = 1
        cfg.visualizer['save_dir'] = show_dir
        cfg.visualizer['vis_backends'] = [dict(type='LocalVisBackend')]


def _enable_tta(cfg) -> None:
    if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise ValueError('--tta needs tta_model and tta_pipeline in the config')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def _enable_output(cfg, out: str) -> None:
    if cfg.default_scope == 'mmseg':
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
    else:
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(cfg.test_evaluator, dict) \
            else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='DumpDetResults', out_file_path=out))


def main(argv=None) -> dict:
    """Returns the evaluator's metrics."""
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg = prepare_config(Config.fromfile(args.config), launcher=args.launcher,
                         work_dir=args.work_dir, config_path=args.config,
                         cfg_options=args.cfg_options)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        _enable_visualization(cfg, args.show_dir)
    if args.tta:
        _enable_tta(cfg)
    if args.out:
        _enable_output(cfg, args.out)
    check_data_paths(cfg, ('test_dataloader',))
    if not torch.cuda.is_available():
        init_cpu_distributed(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    check_checkpoint_fits(runner.model, args.checkpoint)
    with safe_checkpoint_loading():  # MMEngine loads the checkpoint under the policy
        metrics = runner.test()
    del runner  # its DDP model holds the process group
    finish_distributed()
    return metrics


if __name__ == '__main__':
    run_tool(main)
