"""Proving ground: GFNet-H against timm peers on real pixels, beside trivial baselines.

    python tools/proving_ground.py --out DIR [--quick] [--stages STAGE ...] [--models M ...]
                                   [--background flat|noise|clutter] [--threads N] [--report]
                                   [--records RECORDS_DIR]

The data is Fashion-MNIST (Debian ``dataset-fashion-mnist``, fetched into
``$GFNET_DENSE_CACHE`` or ``~/.cache/gfnet_dense`` on first use) and scenes composed of
its photographs (``gfnet_dense.datasets.fmnist_scenes``: training scenes from the
60,000 training images, validation scenes from the 10,000 test images, fixed across
seeds; 20-30 px garments on a flat background by default, so that the task is the
garments' classes and extents, which a model learns in a CPU budget). Stages:

1. ``baselines``: what needs no learning, on the same validation sets: background
   everywhere, the per-pixel location prior, the nearest training scene's labels, the
   best per-pixel intensity rules, a box prior (``gfnet_dense.datasets.baselines``);
   nearest class centroid and logistic regression on Fashion-MNIST pixels.
2. ``pretrain``: each backbone's timm classifier on Fashion-MNIST at 32x32 (the dense
   crops are a 2x larger grid, the largest canvas 8x), once per model and seed, scored on
   the test images. Dense seed ``s`` starts from classifier ``s`` and records its sha256;
   a finished dense run from another classifier is moved to ``DIR/runs/stale`` and rerun.
3. ``seg``: Semantic FPN on 64x64 crops of 128x128 training scenes (400 iterations of
   16), every model from its classifier with the same recipe, per seed. Canvas study:
   whole-image and sliding-window (64, stride 48) inference on 1x, 2x and 4x (side) and
   non-square canvases with the garments at their training size. Scale study: the same
   training with random resize (each scene scaled by a ratio from 0.5-2.0, the range of
   MMSeg's ADE20K pipeline) and without it, evaluated
   with garments 0.5x-2x their training size on a 128x128 canvas.
4. ``det``: RetinaNet on the 128x128 training scenes, mAP on the validation scenes.

Results: ``DIR/results.json``, ``DIR/results.md`` and plots in DIR (``--report`` redraws
them from the finished runs). Every finished run is kept in ``DIR/runs/``; running the
command again skips them and resumes an interrupted training from its last checkpoint.
Runs are deterministic for a given ``--threads``. The runs go in blocks, one per seed and
model (the classifier, then every run from it); ``--records`` copies each finished block's
records to a folder and takes them from it, so that a run goes on on another machine.
"""
import argparse
import dataclasses
import functools
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from gfnet_dense.checkpoints import file_sha256
from gfnet_dense.datasets import RealDataUnavailable, cache_dir
from gfnet_dense.datasets import baselines as B
from gfnet_dense.datasets import fmnist_scenes as S
from gfnet_dense.layers import FILTER_RESIZE_MODES

# sibling tools: tools/ is on sys.path when this runs as python tools/proving_ground.py
import proving_report
import scene_study as E

STAGES = ('baselines', 'pretrain', 'seg', 'det')
DENSE = ('seg', 'det')  # the stages whose runs start from a classifier
GFNET = 'gfnet_h_ti'
TRAIN_SPEC = S.SceneSpec(canvas_hw=(128, 128), object_px=(20, 30), count=(4, 10),
                         background='flat')
RANDOM_RESIZE = (0.5, 2.0)  # MMSeg's ADE20K ratio_range
SLIDE = (64, 48)  # window, stride


@dataclasses.dataclass(frozen=True)
class Budget:
    num_train: int  # training scenes (128x128)
    seeds: Tuple[int, ...]  # of the dense runs (training scenes fixed, init and batches vary)
    pretrain: E.PretrainRecipe
    seg: E.DenseRecipe
    det: E.DenseRecipe
    seg_models: Tuple[Tuple[str, Optional[str]], ...]  # (model, filter_resize)
    scale_aug: bool  # the scale study's runs with random resize: the best GFNet-H mode ...
    aug_peers: Tuple[str, ...]  # ... and these peers
    det_models: Tuple[str, ...]
    canvases: Tuple[Tuple[int, int, int], ...]  # (H, W, validation scenes)
    scales: Tuple[float, ...]  # garment scale of the scale study
    scale_scenes: int  # validation scenes per scale (128x128)
    det_val: int  # validation scenes of the detection runs


FULL = Budget(
    num_train=2000, seeds=(0, 1, 2), pretrain=E.PretrainRecipe(epochs=4),
    seg=E.DenseRecipe(iters=400, batch=16, head_lr_mult=10),
    det=E.DenseRecipe(iters=400, batch=4, lr=3e-4, weight_decay=0.05),
    seg_models=tuple((GFNET, m) for m in FILTER_RESIZE_MODES) + tuple((p, None) for p in E.PEERS),
    scale_aug=True, aug_peers=E.PEERS, det_models=(GFNET, 'resnet18'),
    canvases=((64, 64, 256), (128, 128, 64), (256, 256, 16), (64, 256, 64), (256, 128, 32)),
    scales=(0.5, 0.75, 1.0, 1.5, 2.0), scale_scenes=64, det_val=128)
QUICK = Budget(
    num_train=400, seeds=(0,), pretrain=E.PretrainRecipe(epochs=1, train_per_class=1000),
    seg=E.DenseRecipe(iters=400, batch=16, head_lr_mult=10),
    det=E.DenseRecipe(iters=150, batch=4, lr=3e-4, weight_decay=0.05),
    seg_models=((GFNET, 'bicubic'),), scale_aug=False, aug_peers=(), det_models=(GFNET,),
    canvases=((64, 64, 64), (128, 128, 16), (64, 256, 16)), scales=(1.0,), scale_scenes=16,
    det_val=32)


def canvas_key(h: int, w: int) -> str:
    return f'{h}x{w}'


class Planned(NamedTuple):
    """One run of the plan: its name (``stage/...``), its block and what runs it."""
    name: str
    block: str
    action: Callable[[], dict]


class ProvingGround:
    def __init__(self, out: Path, budget: Budget, log: Callable[[str], None] = print,
                 spec: S.SceneSpec = TRAIN_SPEC, records: Optional[Path] = None):
        self.out, self.budget, self.log, self.spec = out, budget, log, spec
        self.records = records  # finished blocks' records, read at start, copied when done
        self.cache = cache_dir() / 'datasets' / 'fmnist_scenes'
        self._arrays: Dict[tuple, dict] = {}

    # data ------------------------------------------------------------------
    def scenes(self, spec: S.SceneSpec, split: str, num: int) -> dict:
        key = (spec, split, num)
        if key not in self._arrays:
            self._arrays[key] = E.scene_arrays(spec, split, num, self.cache)
        return self._arrays[key]

    def train_scenes(self) -> dict:
        return self.scenes(self.spec, 'train', self.budget.num_train)

    def canvas_sets(self) -> Dict[str, dict]:
        return {canvas_key(h, w): self.scenes(E.scaled_spec(self.spec, 1.0, (h, w)), 'val', n)
                for h, w, n in self.budget.canvases}

    def scale_sets(self) -> Dict[str, dict]:
        return {f'{s}x': self.scenes(E.scaled_spec(self.spec, s, (128, 128)), 'val',
                                     self.budget.scale_scenes) for s in self.budget.scales}

    def det_set(self) -> dict:
        return self.scenes(self.spec, 'val', self.budget.det_val)

    # stages ----------------------------------------------------------------
    def baselines(self) -> dict:
        train = self.train_scenes()
        prior = B.location_prior(train['masks'], E.NUM_CLASSES)
        lut = B.intensity_lut(train['images'], train['masks'], E.NUM_CLASSES)
        rule = B.best_threshold(train['images'], train['masks'])

        def seg_rows(val):
            n, hw = len(val['images']), val['images'].shape[1:]
            copy, _ = B.nearest_image_labels(train['images'], train['masks'], val['images'])
            return {'background everywhere': E.seg_scores(B.predict_background(val['masks'].shape),
                                                           val['masks']),
                    'location prior': E.seg_scores(B.apply_location_prior(prior, n, hw),
                                                   val['masks']),
                    'nearest training scene': E.seg_scores(copy, val['masks']),
                    'intensity lookup': E.seg_scores(lut[val['images']], val['masks']),
                    'intensity threshold': E.seg_scores(B.apply_threshold(val['images'], *rule),
                                                        val['masks'])}

        det = self.det_set()
        hw = det['images'].shape[1:]
        prior_boxes = B.box_prior(train['boxes'], train['box_labels'], self.spec.canvas_hw, hw)
        box = B.coco_map(det['boxes'], det['box_labels'], [prior_boxes] * len(det['images']), hw,
                         E.NUM_CLASSES - 1)
        return dict(canvas={k: seg_rows(v) for k, v in self.canvas_sets().items()},
                    scale={k: seg_rows(v) for k, v in self.scale_sets().items()},
                    det={'box prior': {k: 100 * v for k, v in box.items()}},
                    cls=self.classification_baselines())

    def classification_baselines(self) -> dict:
        from gfnet_dense.datasets.fashion_mnist import balanced_subset, load_split
        x, y = load_split('train')
        keep = balanced_subset(y, self.budget.pretrain.train_per_class)
        xv, yv = load_split('val')
        out = {'nearest class centroid': B.nearest_centroid(x[keep], y[keep], xv),
               'logistic regression': B.logistic_regression(x[keep], y[keep], xv)}
        return {k: dict(top1=100 * B.top1(v, yv)) for k, v in out.items()}

    def pretrain(self, model: str, seed: int) -> dict:
        work = f'{model}-s{seed}'  # its state.pth goes once the result is kept
        return dict(E.pretrain(model, seed, self.budget.pretrain, self.out / 'pretrain' / work,
                               self.log), work=work)

    def stale(self, name: str, result: dict) -> Optional[str]:
        """Why the finished run ``name`` no longer belongs to this budget's tables, or None:
        a classifier pretrained with another recipe (or by a proving ground that recorded
        no sha256), a dense run made from another classifier than its model and seed have.
        Reads the runs' records only (no checkpoint), so a copied folder can be reported."""
        if name.startswith('pretrain/'):
            wanted = dataclasses.asdict(self.budget.pretrain)
            if result.get('recipe') != wanted:
                return f'was pretrained with {result.get("recipe")}, not {wanted}'
            return None if 'sha256' in result else \
                'records no sha256 of its classifier (an older proving ground)'
        if name.split('/')[0] not in DENSE:
            return None
        run = f'pretrain/{result["model"]}-s{result["seed"]}'
        if not self.run_path(run).exists():
            return f'its classifier {run} has not run'
        classifier = json.loads(self.run_path(run).read_text())
        why = self.stale(run, classifier)
        made_from = result.get('classifier', {}).get('sha256')
        if why:
            return f'its classifier {run} {why}'
        if made_from is None:
            return 'records no classifier (made before one classifier per seed)'
        if made_from != classifier['sha256']:
            return f'was trained from classifier {made_from[:12]}, {run} is now ' \
                f'{classifier["sha256"][:12]}'
        return None

    def classifier(self, model: str, seed: int) -> Tuple[dict, str]:
        """What the dense runs of ``model`` and ``seed`` start from: the record they keep
        (its run and sha256) and the checkpoint, checked against the file's sha256."""
        run = f'pretrain/{model}-s{seed}'
        r = self.result(run)
        why = self.stale(run, r)
        if why:
            raise RuntimeError(f'{run} {why}: run the pretrain stage again')
        if not Path(r['checkpoint']).is_file():
            raise RuntimeError(f'{run}: its checkpoint {r["checkpoint"]} is gone (records copied '
                               f'without it): delete {self.record_copies(run)} to pretrain it '
                               'again')
        sha = file_sha256(r['checkpoint'])
        if sha != r['sha256']:
            raise RuntimeError(f'{r["checkpoint"]} is not the classifier {run} wrote (sha256 '
                               f'{sha[:12]}, recorded {r["sha256"][:12]}): delete '
                               f'{self.record_copies(run)} and {Path(r["checkpoint"]).parent} '
                               'to pretrain it again')
        return dict(run=run, sha256=sha), r['checkpoint']

    def record_copies(self, run: str) -> str:
        """The copies of ``run``'s record: DIR/runs' and, where it has one, the records
        folder's (a start copies it back from there into DIR/runs)."""
        paths = [self.run_path(run)]
        if self.records is not None and (self.records / paths[0].name).exists():
            paths.append(self.records / paths[0].name)
        return ' and '.join(str(p) for p in paths)

    def set_aside(self, name: str, text: str) -> str:
        """Move the stale run ``name`` (its record ``text``, and a classifier's folder) to
        ``stale/`` folders, under a name no other stale copy has; say where."""
        tag = hashlib.sha256(text.encode()).hexdigest()[:12]
        path = self.run_path(name)
        moves = [(path, path.parent / 'stale' / f'{path.stem}-{tag}.json')]
        if name.startswith('pretrain/'):
            work = self.out / name
            moves.append((work, work.parent / 'stale' / f'{work.name}-{tag}'))
        for src, dst in moves:
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                src.replace(dst)
            except FileNotFoundError:  # never written, or moved by another process
                pass
        return 'moved to ' + ', '.join(str(dst) for _, dst in moves)

    def segment(self, model: str, mode: Optional[str], aug: bool, seed: int) -> dict:
        name = seg_name(model, mode, aug, seed)
        recipe = dataclasses.replace(self.budget.seg,
                                     resize_range=RANDOM_RESIZE if aug else None)
        init, checkpoint = self.classifier(model, seed)
        net = E.segmentor(model, checkpoint, mode, seed=seed)
        curve = E.train_dense(net, E.seg_loss_fn(net, self.train_scenes(), recipe), recipe, seed,
                              self.out / 'seg' / name, self.log, name, init=init['sha256'])
        canvas = {}
        for key, val in self.canvas_sets().items():
            whole = E.seg_scores(E.predict_masks(net, val['images']), val['masks'])
            slide = E.seg_scores(E.predict_masks(net, val['images'], SLIDE), val['masks'])
            canvas[key] = dict(whole=whole, slide=slide)
            self.log(f'    {name} {key}: mIoU whole {whole["mIoU"]:.2f}, slide {slide["mIoU"]:.2f}')
        scale = {k: E.seg_scores(E.predict_masks(net, v['images']), v['masks'])
                 for k, v in self.scale_sets().items()}
        return dict(model=model, filter_resize=mode, random_resize=aug, seed=seed, work=name,
                    classifier=init, curve=curve,
                    canvas=canvas, scale=scale, iters=recipe.iters, params_m=E.params_m(net),
                    gflops_64=E.gflops(net, 64), recipe=dataclasses.asdict(recipe))

    def detect(self, model: str, mode: Optional[str], seed: int) -> dict:
        name = f'{model}-s{seed}'
        init, checkpoint = self.classifier(model, seed)
        net = E.detector(model, checkpoint, mode, seed=seed)
        curve = E.train_dense(net, E.det_loss_fn(net, self.train_scenes(), self.budget.det),
                              self.budget.det, seed, self.out / 'det' / name, self.log, name,
                              init=init['sha256'])
        val = self.det_set()
        dets = E.predict_boxes(net, val['images'])
        scores = B.coco_map(val['boxes'], val['box_labels'], dets, val['images'].shape[1:],
                            E.NUM_CLASSES - 1)
        self.log(f'    det {name}: mAP@50 {100 * scores["bbox_mAP_50"]:.2f}')
        return dict(model=model, filter_resize=mode, seed=seed, work=name,
                    classifier=init, curve=curve, iters=self.budget.det.iters,
                    params_m=E.params_m(net),
                    gflops_128=E.gflops(net, TRAIN_SPEC.canvas_hw[0]),
                    **{k: 100 * v for k, v in scores.items()},
                    detections_per_image=float(np.mean([len(d[0]) for d in dets])))

    # plan ------------------------------------------------------------------
    def result(self, name: str) -> dict:
        path = self.run_path(name)
        if not path.exists():
            raise RuntimeError(f'{name} has not run yet ({path} not found): run its stage first')
        return json.loads(path.read_text())

    def run_path(self, name: str) -> Path:
        return self.out / 'runs' / (name.replace('/', '-') + '.json')

    def best_mode(self) -> str:
        """The GFNet-H filter_resize mode with the highest mean whole-image mIoU over the
        canvases in seed 0's runs without random resize."""
        means = {}
        for model, mode in self.budget.seg_models:
            if model == GFNET:
                r = self.result(f'seg/{seg_name(model, mode, False, 0)}')
                means[mode] = np.mean([c['whole']['mIoU'] for c in r['canvas'].values()])
        return max(means, key=means.get)

    def plan(self, stages: Sequence[str]) -> List[Planned]:
        """The runs of ``stages`` in order, each with its block (``model/seed``: a
        classifier and every run that starts from it; ``baselines`` alone)."""
        b, runs = self.budget, []
        if 'baselines' in stages:
            runs.append(Planned('baselines', 'baselines', self.baselines))
        dense = []  # (model, seed, name, action)
        for seed in b.seeds:
            if 'seg' in stages:
                dense += [(m, seed, f'seg/{seg_name(m, mode, False, seed)}',
                           lambda a=(m, mode, False, seed): self.segment(*a))
                          for m, mode in b.seg_models]
                if b.scale_aug and any(m == GFNET for m, _ in b.seg_models):
                    dense.append((GFNET, seed, f'seg/{GFNET}-best-aug-s{seed}',
                                  lambda s=seed: self.segment(GFNET, self.best_mode(), True, s)))
                if b.scale_aug:
                    dense += [(p, seed, f'seg/{seg_name(p, None, True, seed)}',
                               lambda a=(p, None, True, seed): self.segment(*a))
                              for p in b.aug_peers]
            if 'det' in stages:
                dense += [(m, seed, f'det/{m}-s{seed}',
                           lambda a=(m, 'bicubic' if m == GFNET else None, seed): self.detect(*a))
                          for m in b.det_models]
        # one block per seed and model: its classifier, then every run that starts from it,
        # so that a finished block needs its classifier no more and its records alone carry
        # it to another machine (seed 0 of every model first)
        models = list(dict.fromkeys([m for m, _ in b.seg_models] + list(b.aug_peers)
                                    + list(b.det_models)))
        dense.sort(key=lambda d: (b.seeds.index(d[1]), models.index(d[0])))
        if 'pretrain' in stages:
            for m, s in [(m, s) for s in b.seeds for m in models]:
                first = next((i for i, d in enumerate(dense) if d[:2] == (m, s)), len(dense))
                dense.insert(first, (m, s, f'pretrain/{m}-s{s}',
                                     lambda a=(m, s): self.pretrain(*a)))
        return runs + [Planned(name, f'{m}/{s}', action) for m, s, name, action in dense]

    def import_records(self) -> None:
        """Copy the records in ``self.records`` that DIR/runs does not have into it."""
        if self.records is None or not self.records.is_dir():
            return
        (self.out / 'runs').mkdir(parents=True, exist_ok=True)
        for path in sorted(self.records.glob('*.json')):
            if not (self.out / 'runs' / path.name).exists():
                shutil.copy2(path, self.out / 'runs' / path.name)
                self.log(f'{path.name}: taken from {self.records}')

    def export_block(self, block: str, names: Sequence[str]) -> None:
        """Copy the records of ``names`` to ``self.records`` when every one has run."""
        if self.records is None or not all(self.run_path(n).exists() for n in names):
            return
        self.records.mkdir(parents=True, exist_ok=True)
        for n in names:
            shutil.copy2(self.run_path(n), self.records / self.run_path(n).name)
        self.log(f'block {block}: records copied to {self.records}')

    def run(self, stages: Sequence[str]) -> Dict[str, dict]:
        self.import_records()
        runs, results, started = self.plan(stages), {}, time.time()
        blocks: Dict[str, List[str]] = {}
        for name, block, _ in runs:
            blocks.setdefault(block, []).append(name)
        for i, (name, block, action) in enumerate(runs):
            path = self.run_path(name)
            if path.exists():
                text = path.read_text()
                why = self.stale(name, json.loads(text))
                if why:  # kept aside, and run again
                    self.log(f'[{i + 1}/{len(runs)}] {name} {why}; '
                             f'{self.set_aside(name, text)}; running it again')
            if path.exists():
                self.log(f'[{i + 1}/{len(runs)}] {name}: done before, kept')
            else:
                self.log(f'[{i + 1}/{len(runs)}] {name}  (elapsed {_clock(time.time() - started)})')
                t = time.time()
                result = action()
                result['seconds'] = round(time.time() - t, 1)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(result, indent=1))
                # the training state is only there to resume; the result is kept
                (self.out / name.split('/')[0] / result.get('work', '-') / 'state.pth'
                 ).unlink(missing_ok=True)
            results[name] = json.loads(path.read_text())
            if name == blocks[block][-1]:
                self.export_block(block, blocks[block])
        return results

    def finished(self) -> Dict[str, dict]:
        """Every run kept in DIR/runs, by name, less stale ones (``stale``; named in the
        log)."""
        out = {}
        for path in sorted((self.out / 'runs').glob('*.json')):
            stage, _, rest = path.stem.partition('-')
            name, r = stage if not rest else f'{stage}/{rest}', json.loads(path.read_text())
            why = self.stale(name, r)
            if why:
                self.log(f'{name} left out of the tables: {why}')
                continue
            out[name] = r
        return out


def only_models(budget: Budget, models: Optional[Sequence[str]]) -> Budget:
    """``budget`` restricted to ``models`` (all when None)."""
    if models is None:
        return budget
    return dataclasses.replace(
        budget, seg_models=tuple(m for m in budget.seg_models if m[0] in models),
        aug_peers=tuple(m for m in budget.aug_peers if m in models),
        det_models=tuple(m for m in budget.det_models if m in models))


def seg_name(model: str, mode: Optional[str], aug: bool, seed: int) -> str:
    return (f'{model}-{mode}' if model == GFNET else model) + ('-aug' if aug else '') + f'-s{seed}'


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='results folder')
    parser.add_argument('--quick', action='store_true',
                        help='GFNet-H-Ti alone, one seed, small budgets (the CI check)')
    parser.add_argument('--stages', nargs='+', choices=STAGES, default=list(STAGES))
    parser.add_argument('--models', nargs='+', choices=(GFNET,) + E.PEERS, default=None,
                        help='only these models (a later run without it adds the others)')
    parser.add_argument('--background', choices=S.BACKGROUNDS, default=TRAIN_SPEC.background,
                        help='scene background: flat (the studies; figure-ground is easy, the '
                        'garment classes are not), noise (brightness-matched smooth noise: no '
                        'intensity rule finds the garments; learns far slower) or clutter')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch threads (results are reproducible for a given number)')
    parser.add_argument('--records', default=None,
                        help='a folder of finished blocks\' records (docs/proving_ground/runs for '
                        'the full run): runs found there are not run again, and each block\'s '
                        'records are copied there when it finishes, so a run goes on on another '
                        'machine')
    parser.add_argument('--report', action='store_true',
                        help='only redraw the tables and plots from the finished runs')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    budget = only_models(QUICK if args.quick else FULL, args.models)
    ground = ProvingGround(out, budget, log=functools.partial(print, flush=True),  # to a file too
                           spec=dataclasses.replace(TRAIN_SPEC, background=args.background),
                           records=Path(args.records).resolve() if args.records else None)
    E.set_threads(args.threads)
    started = time.time()
    if args.report:
        ground.import_records()
    else:
        try:
            ground.run([s for s in STAGES if s in args.stages])
        except RealDataUnavailable as e:
            raise SystemExit(f'proving ground: the real data is not available here: {e}')
    command = ' '.join(['python tools/proving_ground.py'] + list(argv if argv is not None else
                                                                   __import__('sys').argv[1:]))
    summary = proving_report.write_report(out, ground.finished(), dict(
        budget=dataclasses.asdict(budget), quick=args.quick, command=command,
        report_only=args.report,
        threads=args.threads, wall_s=round(time.time() - started, 1)))
    print(f'results: {out / "results.md"}, {out / "results.json"}', flush=True)
    return summary


if __name__ == '__main__':
    main()
