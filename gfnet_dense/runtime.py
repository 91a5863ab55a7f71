"""What ``tools/train.py`` and ``tools/test.py`` share: config preparation and checks.

Both tools serve MMSeg and MMDet configs alike; the config's ``default_scope``
picks the registries.
"""
import os
import os.path as osp
from typing import Any, Iterator, List, Optional

import torch

CPU_NOTE = 'no GPU found: using the gloo backend and plain BatchNorm instead of SyncBN'


def install_checkpoint_loader() -> None:
    """Route MMEngine's local checkpoint loading (resume, test, init_model) through
    ``gfnet_dense.models.checkpoint.torch_load``.

    torch >= 2.6 loads weights-only by default and MMEngine's own checkpoints
    (their message hub) then fail. ``torch_load`` loads those deliberately: in
    full only when every pickled global is one MMEngine writes.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    from .models.checkpoint import torch_load

    def load_from_local(filename, map_location):
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'checkpoint {filename!r} does not exist')
        return torch_load(filename, map_location=map_location)

    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


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


def _dataset_paths(dataset: dict) -> List[str]:
    """Files and folders a dataset config will read."""
    if 'datasets' in dataset:  # ConcatDataset
        return [p for d in dataset['datasets'] for p in _dataset_paths(d)]
    if 'dataset' in dataset:  # RepeatDataset, MultiImageMixDataset
        return _dataset_paths(dataset['dataset'])
    root = dataset.get('data_root') or ''
    paths = [root] if root else []
    ann_file = dataset.get('ann_file')
    if ann_file:
        paths.append(osp.join(root, ann_file))
    for prefix in (dataset.get('data_prefix') or {}).values():
        if isinstance(prefix, str) and prefix:
            paths.append(osp.join(root, prefix))
    return paths


def check_data_paths(cfg, loaders=('train_dataloader', 'val_dataloader', 'test_dataloader')) -> None:
    """Fail before building anything when a dataset path does not exist."""
    missing = []
    for loader in loaders:
        dataset = (cfg.get(loader) or {}).get('dataset')
        if dataset:
            missing += [f'{loader}: {p}' for p in _dataset_paths(dataset) if not osp.exists(p)]
    if missing:
        raise FileNotFoundError(
            'dataset paths do not exist:\n  ' + '\n  '.join(dict.fromkeys(missing)) +
            '\nset data_root in the config (or --cfg-options train_dataloader.dataset.data_root=...)'
            ' to where the data lives; see README "Data layout"')


def prepare_config(cfg, *, launcher: str, work_dir: Optional[str], config_path: str,
                   cfg_options: Optional[dict] = None, amp: bool = False):
    """Apply the command-line choices every tool shares."""
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])
    if amp:
        if not torch.cuda.is_available():
            raise RuntimeError('--amp needs a GPU (MMEngine AmpOptimWrapper); drop --amp on CPU')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if not torch.cuda.is_available():
        use_cpu_fallbacks(cfg)
    os.makedirs(cfg.work_dir, exist_ok=True)
    return cfg
