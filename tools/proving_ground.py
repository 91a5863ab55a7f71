"""Real-data proving ground: pretrain on real images, transfer to dense tasks at other
resolutions, against timm peers, all on CPU.

    python tools/proving_ground.py [--quick] --out DIR [--stages STAGE ...] [--data DIR]

Stages (the data is fetched from the package registries on first use, into
``$GFNET_DENSE_CACHE`` or ``~/.cache/gfnet_dense``, and converted under ``--data``):

1. ``pretrain``: tools/pretrain.py on Fashion-MNIST (Debian ``dataset-fashion-mnist``)
   at 32x32: GFNet-H-Ti, ResNet-18 and ConvNeXt-Nano, one recipe and epoch budget.
2. ``seg``: Semantic FPN on brain MRI slices with AAL lobe labels (Debian
   ``mricron-data``) at their native 217x181 through tools/train.py: GFNet-H-Ti from
   scratch and from its Fashion-MNIST checkpoint once per ``filter_resize`` mode; the
   peers from their own checkpoints.
3. ``det``: RetinaNet on aerial tree crowns (PyPI ``deepforest==2.1.0``), validated on
   other sites: GFNet-H-Ti and ResNet-18, from scratch and pretrained.
4. ``resolution``: every segmentation model through tools/test.py at 0.5x-2x the
   training size and at two other aspect ratios.

Results: ``DIR/results.json``, ``DIR/results.md`` and plots in DIR. Each finished run
is kept in ``DIR/runs/``; running the command again skips finished runs and resumes
an interrupted training from its last checkpoint.
"""
import argparse
import contextlib
import dataclasses
import json
import os.path as osp
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from gfnet_dense.datasets import RealDataUnavailable, cache_dir
from gfnet_dense.layers import FILTER_RESIZE_MODES

# a sibling tool: tools/ is on sys.path when this runs as python tools/proving_ground.py
import proving_report

# the tools' own repository: the tools and configs run from it
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

STAGES = ('pretrain', 'seg', 'det', 'resolution')
PEERS = ('resnet18', 'convnext_nano')
# test sizes as (height factor, width factor) of the 217x181 training size
TEST_SIZES = ((0.5, 0.5), (0.75, 0.75), (1.0, 1.0), (1.5, 1.5), (2.0, 2.0), (1.0, 1.5),
              (1.5, 1.0))
SEG_SIZE_HW = (217, 181)
SEG_CONFIGS = {'gfnet_h_ti': 'fpn_gfnet_h_ti_brain_lobes.py',
               'resnet18': 'fpn_resnet18_brain_lobes.py',
               'convnext_nano': 'fpn_convnext_nano_brain_lobes.py'}
DET_CONFIGS = {'gfnet_h_ti': 'retinanet_gfnet_h_ti_trees.py',
               'resnet18': 'retinanet_resnet18_trees.py'}


@dataclasses.dataclass(frozen=True)
class Budget:
    train_per_class: Optional[int]  # Fashion-MNIST training images per class (None: 6000)
    val_per_class: Optional[int]  # test images per class (None: all 1000)
    epochs: int
    seg_iters: int
    seg_batch: int
    seg_from_scratch: bool  # GFNet-H-Ti from scratch too
    seg_peers: tuple
    det_iters: int
    det_runs: tuple  # (model, pretrained)


FULL = Budget(train_per_class=2000, val_per_class=None, epochs=2, seg_iters=120, seg_batch=8,
              seg_from_scratch=True, seg_peers=('resnet18',), det_iters=60,
              det_runs=(('gfnet_h_ti', False), ('gfnet_h_ti', True), ('resnet18', False),
                        ('resnet18', True)))
# every stage, fewer runs: segmentation only from the GFNet-H-Ti checkpoint (one run
# per filter_resize mode), no ResNet-18 detector from scratch
QUICK = Budget(train_per_class=100, val_per_class=30, epochs=1, seg_iters=30, seg_batch=8,
               seg_from_scratch=False, seg_peers=(), det_iters=12,
               det_runs=(('gfnet_h_ti', False), ('gfnet_h_ti', True), ('resnet18', True)))
# rough CPU seconds per unit, for the ETA only (corrected by the measured pace)
PRETRAIN_IMAGES_PER_S = {'gfnet_h_ti': 130, 'resnet18': 380, 'convnext_nano': 250}
SEG_S_PER_ITER = {'gfnet_h_ti': 2.4, 'resnet18': 1.5, 'convnext_nano': 2.0}  # batch 8
DET_S_PER_ITER = 1.2
STARTUP_S = 15


@dataclasses.dataclass
class Run:
    name: str  # e.g. 'seg/gfnet_h_ti-pretrained-spatial'
    estimate_s: float
    action: object  # callable returning the run's result dict


class Progress:
    """Prints each run with the elapsed time and an ETA from the measured pace
    (over the runs this invocation executes; finished ones are kept)."""

    def __init__(self, todo: List[Run]):
        self.todo, self.start, self.done_estimate = todo, time.time(), 0.0

    def begin(self, run: Run, i: int, count: int) -> None:
        elapsed = time.time() - self.start
        remaining = sum(r.estimate_s for r in self.todo[self.todo.index(run):])
        pace = elapsed / self.done_estimate if self.done_estimate > 0 else 1.0
        print(f'[{i + 1}/{count}] {run.name}  elapsed {_clock(elapsed)}, '
              f'ETA {_clock(pace * remaining)}', flush=True)

    def end(self, run: Run) -> None:
        self.done_estimate += run.estimate_s


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class ProvingGround:
    def __init__(self, out: Path, data: Path, budget: Budget, quick: bool):
        self.out, self.data, self.budget, self.quick = out, data, budget, quick
        self.python = sys.executable

    # data ------------------------------------------------------------------
    def fashion(self) -> Path:
        from gfnet_dense.datasets.fashion_mnist import write_imagefolder
        name = 'fashion_mnist_quick' if self.quick else 'fashion_mnist'
        return write_imagefolder(self.data / name, self.budget.train_per_class,
                                 self.budget.val_per_class)

    def brain(self) -> Path:
        from gfnet_dense.datasets.aal import write_seg_dataset
        return write_seg_dataset(self.data / 'brain_lobes')

    def trees(self) -> Path:
        from gfnet_dense.datasets.deepforest import write_coco_dataset
        return write_coco_dataset(self.data / 'tree_crowns')

    # tools -----------------------------------------------------------------
    def _tool(self, log: Path, *args: str) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, 'a') as f:
            done = subprocess.run([self.python, *args], cwd=ROOT, stdout=f,
                                  stderr=subprocess.STDOUT)
        if done.returncode:
            tail = ''.join(open(log).readlines()[-15:])
            raise RuntimeError(f'{args[0]} failed (exit {done.returncode}); log {log}:\n{tail}')

    def pretrain(self, model: str) -> dict:
        work = self.out / 'pretrain' / model
        ckpt = work / 'checkpoint.pth'
        args = ['tools/pretrain.py', '--model', model, '--data-path', str(self.fashion()),
                '--input-size', '32', '--epochs', str(self.budget.epochs), '--batch-size', '128',
                '--lr', '2e-3', '--warmup-epochs', '0', '--mixup', '0', '--cutmix', '0',
                '--aa', 'none', '--reprob', '0', '--workers', '1', '--seed', '0',
                '--log-interval', '20', '--device', 'cpu', '--output-dir', str(work)]
        if ckpt.exists():
            args += ['--resume', str(ckpt)]
        self._tool(work / 'stdout.log', *args)
        epochs = [json.loads(line) for line in open(work / 'log.jsonl')]
        return dict(model=model, checkpoint=str(ckpt), top1=epochs[-1]['top1'],
                    top5=epochs[-1]['top5'], epochs=epochs,
                    loss_curve=proving_report.pretrain_loss_curve(work / 'log.txt'),
                    params_m=proving_report.count_params_m(model))

    def _mm_options(self, root: Path, max_iters: int) -> List[str]:
        warmup = max(1, max_iters // 10)
        return [f'data_root={root}', f'train_dataloader.dataset.data_root={root}',
                f'val_dataloader.dataset.data_root={root}',
                f'test_dataloader.dataset.data_root={root}', f'train_cfg.max_iters={max_iters}',
                f'train_cfg.val_interval={max_iters}', f'param_scheduler.0.end={warmup}',
                f'param_scheduler.1.begin={warmup}', f'param_scheduler.1.end={max_iters}',
                f'default_hooks.checkpoint.interval={max(1, max_iters // 2)}',
                f'default_hooks.logger.interval={min(10, max(1, max_iters // 6))}',
                'randomness.seed=0']

    @staticmethod
    def _backbone_options(model: str, checkpoint: Optional[str], mode: Optional[str]) -> List[str]:
        opts = [f'model.backbone.init_cfg.checkpoint={checkpoint}'] if checkpoint else \
            ['model.backbone.init_cfg=None']
        return opts + ([f'model.backbone.filter_resize={mode}'] if mode else [])

    def _train(self, config: str, work: Path, options: List[str]) -> dict:
        args = ['tools/train.py', config, '--work-dir', str(work)]
        if (work / 'last_checkpoint').exists():
            args.append('--resume')
        self._tool(work / 'stdout.log', *args, '--cfg-options', *options)
        scalars = proving_report.read_scalars(work)
        checkpoint = (work / 'last_checkpoint').read_text().strip()
        return dict(checkpoint=checkpoint, metrics=scalars['metrics'], curve=scalars['loss'])

    def segment(self, model: str, pretrained: bool, mode: Optional[str]) -> dict:
        name = _seg_name(model, pretrained, mode)
        checkpoint = self.pretrained_checkpoint(model) if pretrained else None
        config = f'configs/proving_ground/{SEG_CONFIGS[model]}'
        options = (self._mm_options(self.brain(), self.budget.seg_iters)
                   + [f'train_dataloader.batch_size={self.budget.seg_batch}']
                   + self._backbone_options(model, checkpoint, mode))
        result = self._train(config, self.out / 'seg' / name, options)
        return dict(result, model=model, pretrained=pretrained, filter_resize=mode,
                    config=config, options=options, mIoU=result['metrics']['mIoU'])

    def detect(self, model: str, pretrained: bool) -> dict:
        name = f'{model}-{"pretrained" if pretrained else "scratch"}'
        checkpoint = self.pretrained_checkpoint(model) if pretrained else None
        root = self.trees()
        config = f'configs/proving_ground/{DET_CONFIGS[model]}'
        options = (self._mm_options(root, self.budget.det_iters)
                   + [f'val_evaluator.ann_file={root}/annotations/val.json']
                   + self._backbone_options(model, checkpoint, None))
        result = self._train(config, self.out / 'det' / name, options)
        # no detection above the score threshold: COCO evaluation reports nothing, mAP 0
        metrics = result['metrics']
        return dict(result, model=model, pretrained=pretrained, config=config, options=options,
                    bbox_mAP=metrics.get('coco/bbox_mAP', 0.0),
                    bbox_mAP_50=metrics.get('coco/bbox_mAP_50', 0.0),
                    no_detections='coco/bbox_mAP' not in metrics)

    def pretrained_checkpoint(self, model: str) -> str:
        result = self.out / 'runs' / f'pretrain-{model}.json'
        if not result.exists():
            raise RuntimeError(f'the {model} Fashion-MNIST checkpoint is missing: run the '
                               f'pretrain stage first ({result} not found)')
        return json.loads(result.read_text())['checkpoint']

    def resolution(self, name: str) -> dict:
        """tools/test.py on one segmentation checkpoint at every test size (in this
        process, its log in ``DIR/resolution/NAME/test.log``)."""
        import test as test_tool
        seg = json.loads((self.out / 'runs' / f'seg-{name}.json').read_text())
        root, work, out = self.brain(), self.out / 'resolution' / name, {}
        work.mkdir(parents=True, exist_ok=True)
        for fh, fw in TEST_SIZES:
            h, w = round(SEG_SIZE_HW[0] * fh), round(SEG_SIZE_HW[1] * fw)
            options = [o for o in seg['options'] if not o.startswith('model.backbone.init_cfg')]
            options += ['model.backbone.init_cfg=None', f'data_root={root}',
                        f'test_dataloader.dataset.pipeline.1.scale=({w},{h})']
            with open(work / 'test.log', 'a') as log, contextlib.redirect_stdout(log), \
                    contextlib.redirect_stderr(log):
                metrics = test_tool.main([seg['config'], seg['checkpoint'], '--work-dir',
                                          str(work), '--cfg-options', *options])
            out[f'{fh}x{fw}'] = dict(height=h, width=w, mIoU=float(metrics['mIoU']))
            print(f'    {name} at {h}x{w}: mIoU {metrics["mIoU"]:.2f}', flush=True)
        return dict(name=name, sizes=out)

    # plan ------------------------------------------------------------------
    def seg_runs(self) -> List[tuple]:
        runs = [('gfnet_h_ti', False, 'bicubic')] if self.budget.seg_from_scratch else []
        runs += [('gfnet_h_ti', True, mode) for mode in FILTER_RESIZE_MODES]
        return runs + [(peer, True, None) for peer in self.budget.seg_peers]

    def plan(self, stages) -> List[Run]:
        b, runs = self.budget, []
        images = 10 * (b.train_per_class or 6000) * b.epochs
        if 'pretrain' in stages:
            for model in ('gfnet_h_ti',) + PEERS:
                runs.append(Run(f'pretrain/{model}',
                                STARTUP_S + images / PRETRAIN_IMAGES_PER_S[model],
                                lambda m=model: self.pretrain(m)))
        if 'seg' in stages:
            for model, pretrained, mode in self.seg_runs():
                runs.append(Run(f'seg/{_seg_name(model, pretrained, mode)}',
                                STARTUP_S + b.seg_iters * b.seg_batch / 8 * SEG_S_PER_ITER[model],
                                lambda a=(model, pretrained, mode): self.segment(*a)))
        if 'det' in stages:
            for model, pretrained in b.det_runs:
                runs.append(Run(f'det/{model}-{"pretrained" if pretrained else "scratch"}',
                                STARTUP_S + b.det_iters * DET_S_PER_ITER,
                                lambda a=(model, pretrained): self.detect(*a)))
        if 'resolution' in stages:
            for model, pretrained, mode in self.seg_runs():
                name = _seg_name(model, pretrained, mode)
                runs.append(Run(f'resolution/{name}', 4 * len(TEST_SIZES),
                                lambda n=name: self.resolution(n)))
        return runs

    def run(self, stages) -> Dict[str, dict]:
        runs, results = self.plan(stages), {}
        path = {r.name: self.out / 'runs' / (r.name.replace('/', '-') + '.json') for r in runs}
        progress = Progress([r for r in runs if not path[r.name].exists()])
        for i, run in enumerate(runs):
            if path[run.name].exists():
                print(f'[{i + 1}/{len(runs)}] {run.name}: done before, kept', flush=True)
            else:
                progress.begin(run, i, len(runs))
                started = time.time()
                result = run.action()
                result['seconds'] = round(time.time() - started, 1)
                path[run.name].parent.mkdir(parents=True, exist_ok=True)
                path[run.name].write_text(json.dumps(result, indent=1))
                progress.end(run)
            results[run.name] = json.loads(path[run.name].read_text())
        for name in [n for n in results if n.startswith('resolution/')]:
            seg = name.replace('resolution/', 'seg/')  # the report labels rows by training run
            results.setdefault(seg, json.loads(
                (self.out / 'runs' / (seg.replace('/', '-') + '.json')).read_text()))
        return results


def _seg_name(model: str, pretrained: bool, mode: Optional[str]) -> str:
    if not pretrained:
        return f'{model}-scratch'
    return f'{model}-pretrained' + (f'-{mode}' if mode and model == 'gfnet_h_ti' else '')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='results folder')
    parser.add_argument('--quick', action='store_true',
                        help='every stage with small budgets (about 10 minutes on 2 cores)')
    parser.add_argument('--stages', nargs='+', choices=STAGES, default=list(STAGES))
    parser.add_argument('--data', default=None,
                        help='where the converted datasets go (default: the cache\'s '
                             'datasets/ folder, $GFNET_DENSE_CACHE or ~/.cache/gfnet_dense)')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    data = Path(args.data).resolve() if args.data else cache_dir() / 'datasets'
    budget = QUICK if args.quick else FULL
    ground = ProvingGround(out, data, budget, args.quick)
    started = time.time()
    try:
        results = ground.run([s for s in STAGES if s in args.stages])
    except RealDataUnavailable as e:
        sys.exit(f'proving ground: the real data is not available here: {e}')
    summary = proving_report.write_report(
        out, results, dict(dataclasses.asdict(budget), quick=args.quick,
                           command=' '.join(['python', 'tools/proving_ground.py'] + (argv or sys.argv[1:])),
                           wall_s=round(time.time() - started, 1),
                           runs_s=round(sum(r['seconds'] for r in results.values()), 1)))
    print(f'results: {out / "results.md"}, {out / "results.json"}', flush=True)
    return summary


if __name__ == '__main__':
    main()
