"""ImageNet-style (pre)training of the registered GFNet classifiers with timm components.

Single process (GPU or CPU):
    python tools/pretrain.py --model gfnet_h_s --data-path /data/imagenet --output-dir out
Multi-GPU (DDP), one process per GPU:
    torchrun --nproc_per_node 8 tools/pretrain.py --model gfnet_h_s --data-path ... --amp bf16
Fine-tune at 384 from a 224 checkpoint (filters and pos_embed are resized on load):
    python tools/pretrain.py --model gfnet_h_s --input-size 384 --finetune out/checkpoint.pth \
        --lr 5e-6 --weight-decay 1e-8 --epochs 30 --warmup-epochs 0 ...

``--data-path`` holds ImageNet-layout ``train/<class>/*`` and ``val/<class>/*``.
Defaults are the public GFNet recipe (DeiT style). ``<output-dir>/checkpoint.pth``
holds ``model`` in the released layout plus optimizer / scheduler / epoch state.
"""
import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import os.path as osp
import sys
import time

import timm
import torch
import torch.distributed as dist
from timm.data import (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, Mixup,
                       auto_augment, create_transform)
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3, NativeScaler, accuracy, dispatch_clip_grad
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from torchvision.datasets import ImageFolder

import gfnet_dense  # noqa: F401  (registers the classifiers)
from gfnet_dense.checkpoints import (CheckpointMismatchError, adapt_state_dict,
                                     check_finite, check_training_state, load_into,
                                     read_checkpoint, save_atomic, unwrap_state_dict)
from gfnet_dense.cli import finish_distributed, run_tool

logger = logging.getLogger('pretrain')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--model', default='gfnet_h_s', help='any registered timm classifier')
    p.add_argument('--data-path', required=True, help='folder with train/ and val/')
    p.add_argument('--input-size', type=int, default=224)
    p.add_argument('--epochs', type=int, default=300)
    p.add_argument('--batch-size', type=int, default=128, help='per process')
    p.add_argument('--output-dir', default='work_dirs/pretrain')
    p.add_argument('--resume', default='', help='checkpoint.pth to continue training from')
    p.add_argument('--finetune', default='', help='weights to start from (resized to input size)')
    p.add_argument('--num-classes', type=int, default=None, help='default: class folders found')
    # optimisation (public recipe)
    p.add_argument('--lr', type=float, default=5e-4, help='per 512 images; scaled by batch')
    p.add_argument('--weight-decay', type=float, default=0.05)
    p.add_argument('--warmup-epochs', type=int, default=5)
    p.add_argument('--warmup-lr', type=float, default=1e-6)
    p.add_argument('--min-lr', type=float, default=1e-5)
    p.add_argument('--clip-grad', type=float, default=1.0, help='0 disables')
    p.add_argument('--drop-path', type=float, default=None, help='default: the variant value')
    # data augmentation (public recipe)
    p.add_argument('--smoothing', type=float, default=0.1)
    p.add_argument('--mixup', type=float, default=0.8)
    p.add_argument('--cutmix', type=float, default=1.0)
    p.add_argument('--aa', default='rand-m9-mstd0.5-inc1', help="RandAugment; 'none' disables")
    p.add_argument('--reprob', type=float, default=0.25, help='random erasing probability')
    p.add_argument('--color-jitter', type=float, default=0.4)
    # engineering
    p.add_argument('--amp', nargs='?', const='fp16', choices=['none', 'bf16', 'fp16'],
                   default='none', help='autocast dtype (--amp alone: fp16 with dynamic loss '
                   'scaling; bf16 needs no scaling); the FFT itself always runs in float32')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--compile', action='store_true', help='torch.compile the model')
    p.add_argument('--model-ema', action='store_true')
    p.add_argument('--model-ema-decay', type=float, default=0.99996)
    p.add_argument('--workers', type=int, default=8)
    p.add_argument('--log-interval', type=int, default=50)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--device', default=None, help='default: cuda when available, else cpu')
    return p.parse_args(argv)


# --------------------------------------------------------------------------- setup
def init_distributed(device: torch.device):
    """(rank, world_size); starts the process group under torchrun."""
    world_size = int(os.environ.get('WORLD_SIZE', 1))
    if world_size == 1:
        return 0, 1
    dist.init_process_group(backend='nccl' if device.type == 'cuda' else 'gloo')
    if device.type == 'cuda':
        torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
    return dist.get_rank(), world_size


def setup_logging(output_dir: str, rank: int) -> None:
    logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    fmt = logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S')
    handlers = [logging.StreamHandler(sys.stdout)]
    if rank == 0:
        handlers.append(logging.FileHandler(osp.join(output_dir, 'log.txt')))
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)


def _posterize(img, bits_to_keep, **kwargs):
    """timm's posterize, also for 0 bits: a black image, as older Pillow releases gave.

    RandAugment with ``inc1`` asks for ``4 - 4 = 0`` bits at the top magnitude
    (reached through the magnitude noise ``mstd``); Pillow 13 (pinned) raises
    there, which would stop a run at a random step.
    """
    if bits_to_keep <= 0:
        return img.point([0] * 256 * len(img.getbands()))
    return auto_augment.posterize(img, bits_to_keep, **kwargs)


def allow_zero_bit_posterize() -> None:
    """Make timm's RandAugment / AutoAugment posterize ops accept 0 bits (see ``_posterize``)."""
    for name in ('Posterize', 'PosterizeIncreasing', 'PosterizeOriginal'):
        auto_augment.NAME_TO_OP[name] = _posterize


def input_normalisation(model_name: str) -> dict:
    """The model's own input normalisation (its timm pretrained config): ImageNet
    mean / std for GFNet and the CNN peers, RGB in [0, 1] for AFFNet (the public
    AFFNet weights' input), so that our checkpoints and released ones take the same."""
    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is None:
        return dict(mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD)
    return dict(mean=tuple(cfg.mean), std=tuple(cfg.std))


def build_loaders(args, rank, world_size):
    for split in ('train', 'val'):
        if not osp.isdir(osp.join(args.data_path, split)):
            raise FileNotFoundError(
                f'{osp.join(args.data_path, split)!r} does not exist; --data-path needs '
                'ImageNet layout: train/<class>/<images> and val/<class>/<images>')
    size = (3, args.input_size, args.input_size)
    norm = input_normalisation(args.model)
    allow_zero_bit_posterize()
    train_tf = create_transform(
        size, is_training=True, color_jitter=args.color_jitter,
        auto_augment=None if args.aa == 'none' else args.aa, interpolation='bicubic',
        re_prob=args.reprob, re_mode='pixel', re_count=1, **norm)
    # evaluation as the public code: resize to 256/224 of the size, centre crop
    eval_tf = create_transform(size, is_training=False, interpolation='bicubic',
                               crop_pct=224 / 256, **norm)
    train_set = ImageFolder(osp.join(args.data_path, 'train'), transform=train_tf)
    val_set = ImageFolder(osp.join(args.data_path, 'val'), transform=eval_tf)
    if train_set.classes != val_set.classes:
        raise ValueError('train/ and val/ must hold the same class folders')
    train_sampler = DistributedSampler(train_set, world_size, rank, shuffle=True,
                                       seed=args.seed) if world_size > 1 else None
    val_sampler = DistributedSampler(val_set, world_size, rank, shuffle=False) \
        if world_size > 1 else None
    common = dict(num_workers=args.workers, pin_memory=torch.cuda.is_available(),
                  persistent_workers=args.workers > 0)
    if len(train_set) // world_size < args.batch_size:
        raise ValueError(f'{len(train_set)} training images over {world_size} processes do not '
                         f'fill one batch of {args.batch_size}; lower --batch-size')
    train_loader = DataLoader(train_set, args.batch_size, shuffle=train_sampler is None,
                              sampler=train_sampler, drop_last=True, **common)
    val_loader = DataLoader(val_set, args.batch_size, shuffle=False, sampler=val_sampler, **common)
    return train_loader, val_loader, len(train_set.classes)


def load_finetune(model, path: str) -> None:
    """Start from ``path``: pos_embed and filters resized, a head of another size dropped."""
    state = adapt_state_dict(read_checkpoint(path), model)
    head = model.get_classifier()
    if state.get('head.weight') is not None and state['head.weight'].shape != head.weight.shape:
        logger.info('finetune: classifier head of another size, starting it from scratch')
        state = {k: v for k, v in state.items() if not k.startswith('head.')}
    load_into(model, state, allowed_missing={'head.weight', 'head.bias'})


def create_model(args, num_classes: int):
    """The classifier at ``--input-size``; models without size-dependent weights
    (AFFNet, CNNs) take no ``img_size`` and run at any size as they are."""
    kwargs = dict(num_classes=num_classes)
    if args.drop_path is not None:
        kwargs['drop_path_rate'] = args.drop_path
    try:
        return timm.create_model(args.model, img_size=args.input_size, **kwargs)
    except TypeError as err:
        if 'img_size' not in str(err):
            raise
        return timm.create_model(args.model, **kwargs)


TRAINING_STATE = ('model', 'optimizer', 'scheduler', 'epoch')


def read_training_checkpoint(path: str) -> dict:
    """A checkpoint.pth of this tool, or an error that says what ``path`` is instead."""
    ckpt = read_checkpoint(path)
    keys = set(ckpt) if isinstance(ckpt, dict) else set()
    lacking = [k for k in TRAINING_STATE if k not in keys]
    if not lacking:
        if isinstance(ckpt['epoch'], bool) or not isinstance(ckpt['epoch'], int) \
                or ckpt['epoch'] < 0:
            raise CheckpointMismatchError(f'--resume {path!r}: its epoch is {ckpt["epoch"]!r}, '
                                          'not a count')
        if ckpt.get('model_ema') is not None:
            check_finite(unwrap_state_dict(ckpt['model_ema']), f'--resume {path!r} (model_ema)')
        check_training_state({k: ckpt.get(k) for k in ('optimizer', 'scheduler', 'scaler')},
                             path)
        return ckpt
    todo = f'to train from its weights, start a new run with --finetune {path}'
    if {'meta', 'state_dict'} <= keys:
        what = 'an MMEngine checkpoint (a segmentor or detector of tools/train.py)'
        todo = 'continue that run with tools/train.py --resume'
    elif 'model' in keys:
        what = "a weights file ({'model': ...}: released, or tools/convert_checkpoint.py output)"
    elif 'state_dict' in keys:
        what = 'a backbone file (tools/convert_checkpoint.py --to backbone)'
    else:
        what = 'a plain state dict'
    raise CheckpointMismatchError(
        f'--resume {path!r} is {what}, not a training checkpoint of tools/pretrain.py: it has '
        f'no {", ".join(lacking)}; {todo}')


# --------------------------------------------------------------------------- loops
def autocast(args, device):
    if args.amp == 'none':
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if args.amp == 'bf16' else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def train_one_epoch(args, model, loader, optimizer, scheduler, criterion, mixup, scaler, ema,
                    epoch, device):
    model.train()
    num_steps = len(loader)
    start = window_start = time.time()
    seen = 0
    for step, (images, targets) in enumerate(loader):
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if mixup is not None:
            images, targets = mixup(images, targets)
        with autocast(args, device):
            loss = criterion(model(images), targets)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f'loss is {loss.item()} at epoch {epoch} step {step}; '
                                     'lower --lr or use --amp bf16 instead of fp16')
        optimizer.zero_grad(set_to_none=True)
        clip = args.clip_grad or None
        if scaler is not None:
            scaler(loss, optimizer, clip_grad=clip, parameters=model.parameters())
        else:
            loss.backward()
            if clip:
                dispatch_clip_grad(model.parameters(), clip)
            optimizer.step()
        if ema is not None:
            ema.update(model, step=epoch * num_steps + step)
        scheduler.step_update(epoch * num_steps + step + 1)
        seen += images.shape[0]
        if (step + 1) % args.log_interval == 0 or step + 1 == num_steps:
            if device.type == 'cuda':
                torch.cuda.synchronize()
            elapsed = time.time() - window_start
            world = dist.get_world_size() if dist.is_initialized() else 1
            logger.info(f'epoch {epoch} [{step + 1}/{num_steps}] loss {loss.item():.4f} '
                        f'lr {optimizer.param_groups[0]["lr"]:.3e} '
                        f'{seen * world / elapsed:.1f} images/s')
            window_start, seen = time.time(), 0
    return time.time() - start


@torch.no_grad()
def evaluate(args, model, loader, device):
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # top1, top5, count
    for images, targets in loader:
        images, targets = images.to(device), targets.to(device)
        if args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(args, device):
            logits = model(images)
        top1, top5 = accuracy(logits.float(), targets, topk=(1, min(5, logits.shape[1])))
        n = targets.shape[0]
        totals += torch.tensor([top1.item() * n / 100, top5.item() * n / 100, n],
                               dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(totals)
    return {'top1': 100 * totals[0].item() / totals[2].item(),
            'top5': 100 * totals[1].item() / totals[2].item()}


def save_checkpoint(path, model, optimizer, scheduler, scaler, ema, epoch, args, metrics):
    state = {'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
             'scheduler': scheduler.state_dict(), 'epoch': epoch, 'args': vars(args),
             'metrics': metrics}
    if scaler is not None:
        state['scaler'] = scaler.state_dict()
    if ema is not None:
        state['model_ema'] = ema.module.state_dict()
    save_atomic(state, path)  # a run killed while saving keeps the previous checkpoint


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    rank, world_size = init_distributed(device)
    os.makedirs(args.output_dir, exist_ok=True)
    setup_logging(args.output_dir, rank)
    torch.manual_seed(args.seed + rank)

    train_loader, val_loader, found_classes = build_loaders(args, rank, world_size)
    num_classes = args.num_classes or found_classes
    model = create_model(args, num_classes)
    if args.finetune:
        load_finetune(model, args.finetune)
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)

    total_batch = args.batch_size * world_size
    lr = args.lr * total_batch / 512
    optimizer = create_optimizer_v2(model, opt='adamw', lr=lr, weight_decay=args.weight_decay)
    scheduler, _ = create_scheduler_v2(
        optimizer, sched='cosine', num_epochs=args.epochs, warmup_epochs=args.warmup_epochs,
        warmup_lr=args.warmup_lr, min_lr=args.min_lr, step_on_epochs=False,
        updates_per_epoch=len(train_loader))
    scaler = NativeScaler(device=device.type) if args.amp == 'fp16' else None
    ema = ModelEmaV3(model, decay=args.model_ema_decay) if args.model_ema else None

    start_epoch = 0
    if args.resume:
        ckpt = read_training_checkpoint(args.resume)
        load_into(model, adapt_state_dict(ckpt, model))
        optimizer.load_state_dict(ckpt['optimizer'])
        scheduler.load_state_dict(ckpt['scheduler'])
        if scaler is not None and 'scaler' in ckpt:
            scaler.load_state_dict(ckpt['scaler'])
        if ema is not None and 'model_ema' in ckpt:
            ema.module.load_state_dict(ckpt['model_ema'])
        start_epoch = ckpt['epoch'] + 1
        logger.info(f'resumed from {args.resume}: continuing at epoch {start_epoch}')

    train_model = model
    if args.compile:
        train_model = torch.compile(model)
    if world_size > 1:
        train_model = DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == 'cuda' else None)

    mixup = None
    if args.mixup > 0 or args.cutmix > 0:
        mixup = Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix,
                      label_smoothing=args.smoothing, num_classes=num_classes)
        criterion = SoftTargetCrossEntropy()
    elif args.smoothing > 0:
        criterion = LabelSmoothingCrossEntropy(args.smoothing)
    else:
        criterion = torch.nn.CrossEntropyLoss()

    logger.info(f'{args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, '
                f'{num_classes} classes, {world_size} process(es) on {device.type}, '
                f'batch {total_batch}, lr {lr:.3e}, amp {args.amp}')
    for epoch in range(start_epoch, args.epochs):
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        seconds = train_one_epoch(args, train_model, train_loader, optimizer, scheduler,
                                  criterion, mixup, scaler, ema, epoch, device)
        scheduler.step(epoch + 1)
        metrics = evaluate(args, model, val_loader, device)
        if ema is not None:
            metrics.update({f'ema_{k}': v for k, v in
                            evaluate(args, ema.module, val_loader, device).items()})
        metrics.update(epoch=epoch, seconds=round(seconds, 1))
        logger.info(f'epoch {epoch}: ' + json.dumps(metrics))
        if rank == 0:
            save_checkpoint(osp.join(args.output_dir, 'checkpoint.pth'), model, optimizer,
                            scheduler, scaler, ema, epoch, args, metrics)
            with open(osp.join(args.output_dir, 'log.jsonl'), 'a') as f:
                f.write(json.dumps(metrics) + '\n')
    del train_model  # a DDP wrapper holds the process group
    finish_distributed()
    logger.info(f'done at {datetime.datetime.now():%Y-%m-%d %H:%M:%S}')


if __name__ == '__main__':
    run_tool(main)
