"""What ``tools/train.py`` and ``tools/test.py`` share: config preparation and checks.

Both tools serve MMSeg and MMDet configs alike; the config's ``default_scope``
picks the registries.
"""
import os
import os.path as osp
from typing import Any, Iterator, List, Optional, Union

import torch

CPU_NOTE = 'no GPU found: using the gloo backend and plain BatchNorm instead of SyncBN'


def parse_with_launcher_args(parser, argv=None):
    """Add the options train and test share (--cfg-options, --launcher, --local-rank) and parse."""
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _walk(value)


def use_cpu_fallbacks(cfg) -> None:
    """Make a GPU config run on CPU processes: gloo, BatchNorm, DDP without devices."""
    for node in _walk(cfg.get('model', {})):
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('launcher', 'none') != 'none':
        wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
        wrapper.setdefault('broadcast_buffers', False)
        wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
        wrapper['device_ids'] = None  # CPU modules take no device ids
        cfg.model_wrapper_cfg = wrapper


def init_cpu_distributed(cfg) -> None:
    """Start the gloo process group ourselves: MMEngine's launcher insists on CUDA."""
    import torch.distributed as dist
    if cfg.get('launcher', 'none') != 'none' and not dist.is_initialized():
        if cfg.launcher != 'pytorch':
            raise RuntimeError(f'launcher {cfg.launcher!r} needs GPUs; on CPU use '
                               '--launcher pytorch (tools/dist_train.sh does)')
        dist.init_process_group(backend='gloo')
        print(f'rank {dist.get_rank()}: gloo process group, world size {dist.get_world_size()}',
              flush=True)


def _leaf_datasets(dataset: dict) -> Iterator[dict]:
    """The datasets that read files, inside ConcatDataset / RepeatDataset / MultiImageMixDataset."""
    if 'datasets' in dataset:
        for d in dataset['datasets']:
            yield from _leaf_datasets(d)
    elif 'dataset' in dataset:
        yield from _leaf_datasets(dataset['dataset'])
    else:
        yield dataset


def _dataset_paths(dataset: dict) -> List[str]:
    """Files and folders a dataset config will read."""
    paths = []
    for leaf in _leaf_datasets(dataset):
        root = leaf.get('data_root') or ''
        paths += [root] if root else []
        if leaf.get('ann_file'):
            paths.append(osp.join(root, leaf['ann_file']))
        for prefix in (leaf.get('data_prefix') or {}).values():
            if isinstance(prefix, str) and prefix:
                paths.append(osp.join(root, prefix))
    return paths


def _format_only(evaluator) -> bool:
    evaluators = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator or {}]
    return any(e.get('format_only') for e in evaluators)


def _coco_problems(path: str, need_annotations: bool) -> List[str]:
    """What is missing from a COCO-format annotation file (an empty list when nothing is)."""
    import json
    try:
        with open(path) as f:
            coco = json.load(f)
    except (OSError, ValueError) as err:
        return [f'{path}: not a readable JSON file ({err})']
    if not isinstance(coco, dict) or not {'images', 'annotations', 'categories'} & set(coco):
        return []  # not COCO format: the dataset class decides
    return [f'{path}: no {key}' for key, needed in
            (('images', True), ('annotations', need_annotations), ('categories', True))
            if needed and not coco.get(key)]


def check_data_paths(cfg, loaders=('train_dataloader', 'val_dataloader', 'test_dataloader')
                     ) -> None:
    """Fail before building anything when a dataset path does not exist, or a COCO
    annotation file of an MMDet dataset has no images, categories or annotations."""
    missing, empty = [], []
    for loader in loaders:
        dataset = (cfg.get(loader) or {}).get('dataset')
        if not dataset:
            continue
        missing += [f'{loader}: {p}' for p in _dataset_paths(dataset) if not osp.exists(p)]
        # a test set may come without annotations when the evaluator only formats results
        need_annotations = not (loader == 'test_dataloader' and
                                _format_only(cfg.get('test_evaluator')))
        for leaf in _leaf_datasets(dataset):
            ann_file = osp.join(leaf.get('data_root') or '', leaf.get('ann_file') or '')
            if ann_file.endswith('.json') and osp.isfile(ann_file):
                empty += [f'{loader}: {p}' for p in _coco_problems(ann_file, need_annotations)]
    if missing:
        raise FileNotFoundError(
            'dataset paths do not exist:\n  ' + '\n  '.join(dict.fromkeys(missing)) +
            '\nset data_root in the config (or --cfg-options '
            'train_dataloader.dataset.data_root=...) to where the data lives; see '
            'docs/segmentation.md and docs/detection.md, "Data layout"')
    if empty:
        raise ValueError(
            'COCO annotation files without data:\n  ' + '\n  '.join(dict.fromkeys(empty)) +
            '\nthe dataset would have nothing to train on or evaluate; point ann_file at the '
            'instances_*.json that lists the images and their annotations')


AMP_DTYPES = {'fp16': 'float16', 'bf16': 'bfloat16'}


def prepare_config(cfg, *, launcher: str, work_dir: Optional[str], config_path: str,
                   cfg_options: Optional[dict] = None, amp: Union[str, bool, None] = None):
    """Apply the command-line choices every tool shares, and check the model's widths.

    ``amp``: ``'fp16'`` (or ``True``): MMEngine's AmpOptimWrapper in float16 with
    dynamic loss scaling; ``'bf16'``: bfloat16, no loss scaling; ``None`` /
    ``'none'`` / ``False``: full precision.
    """
    from .model_checks import check_model_widths
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    check_model_widths(cfg)
    cfg.launcher = launcher
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])
    amp = 'fp16' if amp is True else (amp or 'none')
    if amp != 'none':
        if amp not in AMP_DTYPES:
            raise ValueError(f'unknown amp {amp!r}; choose fp16 or bf16')
        if not torch.cuda.is_available():
            raise RuntimeError(f'--amp {amp} needs a GPU (MMEngine AmpOptimWrapper); '
                               'drop --amp on CPU')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = AMP_DTYPES[amp]
        if amp == 'bf16':  # bfloat16 has float32's range: no scaling, no skipped steps
            cfg.optim_wrapper.loss_scale = dict(enabled=False)
        else:
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if not torch.cuda.is_available():
        use_cpu_fallbacks(cfg)
    os.makedirs(cfg.work_dir, exist_ok=True)
    return cfg
