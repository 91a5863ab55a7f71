"""Training and evaluation engine of the proving ground (``tools/proving_ground.py``):
Fashion-MNIST pretraining, Semantic FPN and RetinaNet on the Fashion-MNIST scenes of
``gfnet_dense.datasets.fmnist_scenes``, in this process, deterministic and resumable.

The models are MMSegmentation's ``EncoderDecoder`` (Semantic FPN) and MMDetection's
RetinaNet with our ``GFNetH`` backbone or a timm peer (``TimmFeatures``), built from
registry dicts as a config would; a backbone starts from its Fashion-MNIST classifier
through its ``init_cfg`` (the checked loader that resizes the filters). Losses and
whole / sliding-window inference are the libraries' own; the loop is a plain AdamW loop
so that a run is a function of its seed: the batch of iteration ``i`` is drawn from
``(seed, i)`` and torch's generator is reseeded from them, so a run resumed from its
checkpoint continues exactly as if it had not stopped.

Images are single-channel, normalised with Fashion-MNIST's mean and std.
"""
import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from gfnet_dense.checkpoints import file_sha256, read_checkpoint, save_atomic
from gfnet_dense.datasets import baselines as B
from gfnet_dense.datasets import fmnist_scenes as S

MEAN, STD = 0.2860 * 255, 0.3530 * 255  # Fashion-MNIST training pixels
NUM_CLASSES = len(S.SEG_CLASSES)  # background + 10 garments
PEERS = ('resnet18', 'convnext_nano', 'pvt_v2_b1')
# the peers' feature channels at strides 4/8/16/32 (timm features_only, last four)
CHANNELS = {'gfnet_h_ti': (64, 128, 256, 512), 'resnet18': (64, 128, 256, 512),
            'convnext_nano': (80, 160, 320, 640), 'pvt_v2_b1': (64, 128, 320, 512)}
PRETRAIN_SIZE = 32  # Fashion-MNIST 28x28 resized to 32x32: the dense crops are 2x its grid


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    os.environ['OMP_NUM_THREADS'] = str(n)


def normalise(images: np.ndarray) -> torch.Tensor:
    """(N, H, W) uint8 -> (N, 1, H, W) float32, Fashion-MNIST mean/std."""
    return (torch.from_numpy(np.ascontiguousarray(images)).float()[:, None] - MEAN) / STD


def read_state(path: Path) -> Optional[dict]:
    """The training state at ``path`` (read by the checked loader), or None."""
    return read_checkpoint(str(path)) if path.exists() else None


def restore(state: dict, model: torch.nn.Module, opt: Optional[torch.optim.Optimizer]) -> None:
    """Load ``state``'s weights into ``model`` (and its optimizer into ``opt``, if both)."""
    model.load_state_dict(state['model'])
    if opt is not None and 'optimizer' in state:
        opt.load_state_dict(state['optimizer'])


def save_state(path: Path, model: torch.nn.Module, opt: Optional[torch.optim.Optimizer],
               **progress) -> None:
    """The training state a rerun resumes from: weights, optimizer (None: weights only,
    a finished training) and ``progress`` (plain numbers and lists)."""
    state = dict(model=model.state_dict(), **progress)
    if opt is not None:
        state['optimizer'] = opt.state_dict()
    save_atomic(state, path)


# ------------------------------------------------------------------------------- scenes

def scene_arrays(spec: S.SceneSpec, split: str, num: int, cache: Path,
                 loader=S.split_arrays) -> Dict[str, object]:
    """``num`` scenes of ``split`` as arrays: images, masks (S, H, W) uint8, boxes and
    box_labels (lists of per-scene arrays), cached in ``cache`` as a plain ``.npz`` (read
    back without pickle). ``loader``: the garment images (Fashion-MNIST by default)."""
    source = '' if loader is S.split_arrays else f'{loader.__module__}.{loader.__qualname__}'
    key = json.dumps([spec.to_json(), split, num, S.VAL_SEED, 1, source], sort_keys=True)
    path = cache / f'scenes-{split}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz'
    if not path.exists():
        scenes = S.make_split(spec, split, num, loader)
        counts = np.array([len(s.boxes) for s in scenes], np.int64)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f'{path.stem}.{os.getpid()}.tmp.npz')  # processes may race
        np.savez(tmp, images=np.stack([s.image for s in scenes]),
                 masks=np.stack([s.mask for s in scenes]), counts=counts,
                 boxes=np.concatenate([s.boxes for s in scenes]).reshape(-1, 4),
                 box_labels=np.concatenate([s.box_labels for s in scenes]))
        os.replace(tmp, path)
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    cuts = np.cumsum(d.pop('counts'))[:-1]
    d['boxes'] = np.split(d['boxes'], cuts)
    d['box_labels'] = np.split(d.pop('box_labels'), cuts)
    return d


def scaled_spec(spec: S.SceneSpec, scale: float, canvas_hw: Tuple[int, int]) -> S.SceneSpec:
    """``spec`` on another canvas with garments ``scale`` times as large; the count per
    area follows the square of the scale, so garments cover the same share."""
    lo, hi = spec.object_px
    return dataclasses.replace(spec, canvas_hw=tuple(canvas_hw),
                               object_px=(round(lo * scale), round(hi * scale)),
                               count_area=round(spec.count_area * scale * scale))


def training_batch(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
                   batch: int, crop: int, resize_range: Optional[Tuple[float, float]]
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``batch`` random crops (N, 1, crop, crop) normalised, labels (N, crop, crop) int64.
    With ``resize_range`` each scene is first resized by a ratio drawn uniformly from it
    (MMSeg's ``RandomResize`` ratio_range: bilinear image, nearest labels), then cropped
    (padded with ignore / zeros where smaller); every crop is flipped with p = 0.5."""
    xs, ys = [], []
    for j in rng.integers(0, len(images), batch):
        img = torch.from_numpy(images[j]).float()[None, None]
        lab = torch.from_numpy(masks[j]).float()[None, None]
        if resize_range is not None:
            r = rng.uniform(*resize_range)
            hw = [max(1, round(s * r)) for s in img.shape[2:]]
            img = F.interpolate(img, size=hw, mode='bilinear', align_corners=False)
            lab = F.interpolate(lab, size=hw, mode='nearest')
        h, w = img.shape[2:]
        if h < crop or w < crop:
            ph, pw = max(crop - h, 0), max(crop - w, 0)
            img = F.pad(img, (0, pw, 0, ph), value=MEAN)
            lab = F.pad(lab, (0, pw, 0, ph), value=255)
            h, w = img.shape[2:]
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        img, lab = img[..., y:y + crop, x:x + crop], lab[..., y:y + crop, x:x + crop]
        if rng.uniform() < 0.5:
            img, lab = img.flip(-1), lab.flip(-1)
        xs.append(img[0])
        ys.append(lab[0, 0])
    return (torch.stack(xs) - MEAN) / STD, torch.stack(ys).long()


# -------------------------------------------------------------------------- pretraining

@dataclasses.dataclass(frozen=True)
class PretrainRecipe:
    epochs: int = 2
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 0.3
    label_smoothing: float = 0.1
    train_per_class: Optional[int] = None  # None: all 6,000


def classifier(model: str, num_classes: int = 10) -> torch.nn.Module:
    import timm

    import gfnet_dense  # noqa: F401  (registers gfnet_h_ti)
    kwargs = dict(img_size=PRETRAIN_SIZE) if model.startswith('gfnet') else {}
    return timm.create_model(model, num_classes=num_classes, in_chans=1, **kwargs)


def fashion_tensors(split: str, per_class: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST ``split`` at 32x32 (bilinear, antialiased), normalised; labels."""
    from gfnet_dense.datasets.fashion_mnist import balanced_subset, load_split
    images, labels = load_split(split)
    keep = balanced_subset(labels, per_class)
    x = F.interpolate(normalise(images[keep]), size=PRETRAIN_SIZE, mode='bilinear',
                      align_corners=False, antialias=True)
    return x, torch.from_numpy(labels[keep].astype(np.int64))


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                  for i in range(0, len(x), batch))
    return correct / len(x)


@torch.enable_grad()
def pretrain(model_name: str, seed: int, recipe: PretrainRecipe, work: Path,
             log: Callable[[str], None] = print) -> dict:
    """Train the timm classifier ``model_name`` on Fashion-MNIST (1 x 32 x 32) and score it
    on the 10,000 test images after every epoch. ``work/state.pth`` is written after
    every epoch (a rerun resumes from it), ``work/classifier.pth`` (the plain state dict
    a backbone's ``init_cfg`` loads) at the end. Returns the result dict."""
    work.mkdir(parents=True, exist_ok=True)
    x, y = fashion_tensors('train', recipe.train_per_class)
    xv, yv = fashion_tensors('val', None)
    torch.manual_seed(seed)
    model = classifier(model_name)
    opt = _optimizer(model, DenseRecipe(lr=recipe.lr, weight_decay=recipe.weight_decay))
    steps_per_epoch = len(x) // recipe.batch
    total, warmup = recipe.epochs * steps_per_epoch, recipe.warmup_epochs * steps_per_epoch
    history, start = [], 0
    state_path = work / 'state.pth'
    state = read_state(state_path)
    if state is not None:
        if state.get('recipe', dataclasses.asdict(recipe)) != dataclasses.asdict(recipe):
            raise RuntimeError(f'{state_path} was trained with {state["recipe"]}, not '
                               f'{dataclasses.asdict(recipe)}: use another --out')
        restore(state, model, opt)
        history, start = state['history'], int(state['epoch'])
        log(f'  resumed {model_name} seed {seed} after epoch {start}')
    for epoch in range(start, recipe.epochs):
        model.train()
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(len(x)))
        started, losses = time.time(), []
        for k in range(steps_per_epoch):
            step = epoch * steps_per_epoch + k
            lr = recipe.lr * (step + 1) / warmup if step < warmup else \
                0.5 * recipe.lr * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))
            for g in opt.param_groups:
                g['lr'] = lr
            idx = order[k * recipe.batch:(k + 1) * recipe.batch]
            torch.manual_seed(seed * 1_000_003 + step)
            xb = _augment_classification(x[idx])
            loss = F.cross_entropy(model(xb), y[idx], label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(float(loss.detach()))
        top1 = accuracy(model, xv, yv)
        history.append(dict(epoch=epoch + 1, loss=float(np.mean(losses)), top1=100 * top1,
                            seconds=round(time.time() - started, 1)))
        log(f'  {model_name} seed {seed} epoch {epoch + 1}/{recipe.epochs}: loss '
            f'{history[-1]["loss"]:.3f}, test top-1 {100 * top1:.2f}% '
            f'({history[-1]["seconds"]:.0f} s)')
        save_state(state_path, model, opt, epoch=epoch + 1, history=history,
                   recipe=dataclasses.asdict(recipe))
    save_atomic(model.state_dict(), work / 'classifier.pth')
    return dict(model=model_name, seed=seed, checkpoint=str(work / 'classifier.pth'),
                sha256=file_sha256(work / 'classifier.pth'), threads=torch.get_num_threads(),
                top1=history[-1]['top1'], history=history, params_m=params_m(model),
                gflops_32=gflops(model, PRETRAIN_SIZE),
                recipe=dataclasses.asdict(recipe))


def _augment_classification(x: torch.Tensor) -> torch.Tensor:
    """Random 2-pixel translation (zero-padded, in normalised units) and horizontal flip,
    drawn from torch's generator."""
    n = len(x)
    padded = F.pad(x, (2, 2, 2, 2), value=-MEAN / STD)
    dy, dx = torch.randint(0, 5, (2, n))
    out = torch.stack([padded[i, :, dy[i]:dy[i] + x.shape[2], dx[i]:dx[i] + x.shape[3]]
                       for i in range(n)])
    flip = torch.rand(n) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def params_m(model: torch.nn.Module) -> float:
    """Parameters in millions, to 2 places."""
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 2)


def gflops(model: torch.nn.Module, side: int) -> float:
    """GFLOPs of one forward of a (1, 1, side, side) image (``gfnet_dense.flops``)."""
    from gfnet_dense.flops import count_flops
    return round(count_flops(model, torch.zeros(1, 1, side, side)) / 1e9, 3)


# ------------------------------------------------------------------------- dense models

def backbone_cfg(model: str, checkpoint: Optional[str], mode: Optional[str],
                 out_indices: Sequence[int] = (0, 1, 2, 3)) -> dict:
    init = dict(type='Pretrained', checkpoint=checkpoint) if checkpoint else None
    if model == 'gfnet_h_ti':
        return dict(type='GFNetH', arch='ti', in_channels=1, pretrain_img_size=PRETRAIN_SIZE,
                    filter_resize=mode or 'bicubic', out_indices=tuple(out_indices),
                    init_cfg=init)
    return dict(type='TimmFeatures', model_name=model, in_channels=1,
                out_indices=tuple(i - 4 for i in out_indices), init_cfg=init)


def segmentor(model: str, checkpoint: Optional[str], mode: Optional[str], width: int = 64,
              seed: Optional[int] = None):
    """Semantic FPN: MMSeg's ``fpn_r50`` with our backbone, FPN and head ``width``
    channels, BN, and no data preprocessor (the scenes come normalised) or ImageNet
    ResNet weights (the backbone has its own ``init_cfg``). ``seed``: see
    ``_build_from_base``."""
    return _build_from_base('mmseg', '_base_/models/fpn_r50.py', seed, dict(
        data_preprocessor=None, pretrained=None,
        backbone=dict(_delete_=True, **backbone_cfg(model, checkpoint, mode)),
        neck=dict(in_channels=list(CHANNELS[model]), out_channels=width),
        decode_head=dict(in_channels=[width] * 4, channels=width, num_classes=NUM_CLASSES,
                         norm_cfg=dict(type='BN', requires_grad=True))))


def detector(model: str, checkpoint: Optional[str], mode: Optional[str], width: int = 96,
             seed: Optional[int] = None):
    """RetinaNet: MMDet's ``retinanet_r50_fpn`` on the backbone's stride 8/16/32 outputs
    (FPN from its first level), narrowed to ``width`` channels and 2 stacked convs, no
    data preprocessor. Anchors start at 3x the stride (24-38 px at P3, MMDet's 4x would
    start at 32) for garment boxes of about 15-30 px. ``seed``: see ``_build_from_base``."""
    return _build_from_base('mmdet', '_base_/models/retinanet_r50_fpn.py', seed, dict(
        data_preprocessor=None,
        backbone=dict(_delete_=True, **backbone_cfg(model, checkpoint, mode, (1, 2, 3))),
        neck=dict(in_channels=list(CHANNELS[model][1:]), out_channels=width, start_level=0),
        bbox_head=dict(num_classes=NUM_CLASSES - 1, in_channels=width, stacked_convs=2,
                       feat_channels=width, anchor_generator=dict(octave_base_scale=3))))


def _build_from_base(scope: str, base: str, seed: Optional[int],
                     changes: dict) -> torch.nn.Module:
    """The model of ``{scope}::{base}`` with ``changes`` merged in (MMEngine's rules:
    ``_delete_`` replaces a dict), built in ``scope`` and initialised; from torch's
    generator seeded with ``seed`` where given (the weights then do not depend on what
    the process drew before), else from its current state."""
    from mmengine.config import Config
    from mmengine.registry import MODELS as ROOT, init_default_scope

    import gfnet_dense.mm  # noqa: F401  (registers the backbones)
    cfg = Config.fromstring(f'_base_ = ["{scope}::{base}"]', file_format='.py')
    cfg.merge_from_dict(dict(model=changes))
    init_default_scope(scope)
    if seed is not None:
        torch.manual_seed(seed)
    model = ROOT.build(cfg.model)
    _quiet_init(model)
    return model


def _quiet_init(model) -> None:
    """``model.init_weights()`` without MMEngine's line per parameter."""
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------- dense loop

@dataclasses.dataclass(frozen=True)
class DenseRecipe:
    iters: int = 600
    batch: int = 8
    crop: int = 64  # segmentation crops; detection trains on whole training scenes
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 50
    head_lr_mult: float = 1.0  # learning rate of everything but the backbone, relative
    resize_range: Optional[Tuple[float, float]] = None  # e.g. (0.5, 2.0)
    checkpoint_every: int = 100


def _lr(recipe: DenseRecipe, it: int) -> float:
    if it < recipe.warmup:
        return recipe.lr * (it + 1) / recipe.warmup
    return recipe.lr * (1 - (it - recipe.warmup) / max(recipe.iters - recipe.warmup, 1)) ** 0.9


def _optimizer(model: torch.nn.Module, recipe: DenseRecipe) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and global filters; the backbone at
    ``lr``, the neck and head at ``lr * head_lr_mult`` (the group's ``lr_mult``)."""
    groups: Dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decay = p.ndim > 1 and 'complex_weight' not in name
            mult = 1.0 if name.startswith('backbone.') else recipe.head_lr_mult
            groups.setdefault((decay, mult), []).append(p)
    return torch.optim.AdamW(
        [dict(params=ps, weight_decay=recipe.weight_decay if decay else 0.0, lr_mult=mult)
         for (decay, mult), ps in groups.items()], lr=recipe.lr)


@torch.enable_grad()  # whatever the caller's grad mode
def train_dense(model: torch.nn.Module, loss_of_batch: Callable[[np.random.Generator], dict],
                recipe: DenseRecipe, seed: int, work: Path,
                log: Callable[[str], None] = print, name: str = '',
                init: Optional[str] = None) -> List[Tuple[int, float]]:
    """AdamW with linear warmup and poly decay (MMSeg's schedule) for ``recipe.iters``;
    ``loss_of_batch(rng)`` draws iteration ``i``'s batch from ``rng = default_rng([seed, i])``
    and returns MMSeg/MMDet's loss dict. ``work/state.pth`` every ``checkpoint_every``
    iterations and at the end (weights only); a rerun resumes from it (and skips the
    training when it is the final one); a state started from another ``init`` (the
    pretrained weights' sha256) is not resumed: the training starts over. Returns the
    loss curve [(iter, loss)]."""
    opt = _optimizer(model, recipe)
    work.mkdir(parents=True, exist_ok=True)
    curve, start = [], 0
    state_path = work / 'state.pth'
    state = read_state(state_path)
    if state is not None and state.get('init') != init:
        log(f'  {name}: {state_path} started from other weights ({state.get("init")}, not '
            f'{init}); starting over')
        state = None
    if state is not None:
        restore(state, model, opt)
        curve, start = [tuple(c) for c in state['curve']], int(state['iter'])
        running = [float(v) for v in state.get('running', [])]
        log(f'  resumed {name} at iteration {start}')
    else:
        running = []  # losses since the last point of the curve
    model.train()
    started = time.time()
    for it in range(start, recipe.iters):
        for g in opt.param_groups:
            g['lr'] = _lr(recipe, it) * g['lr_mult']
        torch.manual_seed(seed * 1_000_003 + it)
        losses = loss_of_batch(np.random.default_rng([seed, it]))
        loss, _ = model.parse_losses(losses)  # MMEngine's sum of the '*loss*' entries
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        running.append(float(loss.detach()))
        if not math.isfinite(running[-1]):
            raise FloatingPointError(f'{name}: loss {running[-1]} at iteration {it}')
        if (it + 1) % 25 == 0 or it + 1 == recipe.iters:
            curve.append((it + 1, float(np.mean(running))))
            running = []
        if (it + 1) % recipe.checkpoint_every == 0 and it + 1 < recipe.iters:
            save_state(state_path, model, opt, iter=it + 1, curve=[list(c) for c in curve],
                       running=running, init=init)
            recent = running or [curve[-1][1]]
            log(f'  {name} iteration {it + 1}/{recipe.iters}: loss {np.mean(recent):.3f} '
                f'({time.time() - started:.0f} s)')
    if start < recipe.iters:
        save_state(state_path, model, None, iter=recipe.iters, curve=[list(c) for c in curve],
                   init=init)
    return curve


def seg_loss_fn(model, train: Dict[str, object], recipe: DenseRecipe):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    def loss_of_batch(rng):
        x, y = training_batch(train['images'], train['masks'], rng, recipe.batch, recipe.crop,
                              recipe.resize_range)
        samples = []
        for lab in y:
            s = SegDataSample(metainfo=dict(img_shape=tuple(lab.shape),
                                            pad_shape=tuple(lab.shape)))
            s.gt_sem_seg = PixelData(data=lab[None])
            samples.append(s)
        return model.loss(x, samples)
    return loss_of_batch


def _det_sample(hw: Tuple[int, int]):
    """An MMDet data sample of an unscaled, unpadded ``hw`` image."""
    from mmdet.structures import DetDataSample
    return DetDataSample(metainfo=dict(img_shape=hw, pad_shape=hw, ori_shape=hw,
                                       batch_input_shape=hw, scale_factor=(1.0, 1.0)))


def det_loss_fn(model, train: Dict[str, object], recipe: DenseRecipe):
    from mmengine.structures import InstanceData

    images = train['images']
    hw = tuple(images.shape[1:])

    def loss_of_batch(rng):
        picks = rng.integers(0, len(images), recipe.batch)
        flips = rng.uniform(size=recipe.batch) < 0.5
        x = normalise(images[picks])
        samples = []
        for k, (j, flip) in enumerate(zip(picks, flips)):
            boxes = torch.from_numpy(train['boxes'][j].copy())
            if flip:
                x[k] = x[k].flip(-1)
                boxes[:, [0, 2]] = hw[1] - boxes[:, [2, 0]]
            s = _det_sample(hw)
            s.gt_instances = InstanceData(bboxes=boxes,
                                          labels=torch.from_numpy(train['box_labels'][j]))
            samples.append(s)
        return model.loss(x, samples)
    return loss_of_batch


# ---------------------------------------------------------------------------- inference

@torch.no_grad()
def predict_masks(model, images: np.ndarray, slide: Optional[Tuple[int, int]] = None,
                  batch: int = 8) -> np.ndarray:
    """(S, H, W) uint8 label maps from MMSeg's ``EncoderDecoder.inference``: whole-image,
    or sliding windows ``slide=(crop, stride)`` (MMSeg's ``mode='slide'``)."""
    from mmengine.config import ConfigDict
    model.eval()
    model.test_cfg = ConfigDict(mode='whole') if slide is None else \
        ConfigDict(mode='slide', crop_size=(slide[0],) * 2, stride=(slide[1],) * 2)
    hw = tuple(images.shape[1:])
    meta = dict(img_shape=hw, ori_shape=hw, pad_shape=hw, flip=False)
    out = []
    for i in range(0, len(images), batch):
        x = normalise(images[i:i + batch])
        logits = model.inference(x, [meta] * len(x))
        out.append(logits.argmax(1).to(torch.uint8).numpy())
    return np.concatenate(out)


@torch.no_grad()
def predict_boxes(model, images: np.ndarray, batch: int = 8) -> List[B.Detections]:
    """RetinaNet detections per image: (boxes (K, 4) x1y1x2y2, scores, labels 0..9)."""
    model.eval()
    hw = tuple(images.shape[1:])
    out = []
    for i in range(0, len(images), batch):
        x = normalise(images[i:i + batch])
        samples = [_det_sample(hw) for _ in range(len(x))]
        for r in model.predict(x, samples, rescale=False):
            p = r.pred_instances
            out.append((p.bboxes.numpy(), p.scores.numpy(), p.labels.numpy()))
    return out


def seg_scores(pred: np.ndarray, masks: np.ndarray) -> dict:
    m = B.seg_metrics(pred, masks, NUM_CLASSES)
    return dict(mIoU=100 * m['mIoU'], aAcc=100 * m['aAcc'],
                fgIoU=100 * B.foreground_iou(pred, masks))
