"""Export a model to ONNX, check it in ONNX Runtime against PyTorch, time both.

    python tools/export_onnx.py CONFIG_OR_TIMM_NAME [--checkpoint FILE] --out FILE
        [--shape H W] [--dynamic] [--opset N] [--dft {matmul,dft}] [--features]
        [--verify [HxW ...]] [--tolerance T] [--benchmark [HxW ...]] [--profile HxW]
        [--threads N]

- an MMSeg config: the segmentor in whole-image test mode, RGB float 0-255 NCHW
  in (mean / std inside the graph), per-pixel class logits at the input size out;
- an MMDet config: backbone + neck features and the dense head's raw outputs
  (class scores, box deltas per level) before box decoding and NMS;
- a timm name (``gfnet_h_s``, ``affnet_s``, ...): the classifier's logits
  (normalise the input as its ``pretrained_cfg`` says); with ``--features`` the
  backbone's feature maps (``features_only=True``), as dense prediction uses it.

``--shape`` is the export size (default 512 512); ``--dynamic`` makes batch, H and
W symbolic (one file for every size). ``--dft`` is the form of the FFTs: products
with DFT matrices built in the graph (``matmul``, the default: ONNX Runtime's
``DFT`` kernel is several times slower on CPU) or ``DFT`` nodes (``dft``).
``--verify`` runs ONNX Runtime and PyTorch on the same random images at the
given sizes (default: the export size and, with ``--dynamic``, a non-square size
and one that is no multiple of 32) and exits non-zero when the largest absolute
difference exceeds ``--tolerance``. ``--benchmark`` times ONNX Runtime and PyTorch
eager (its fast path) on the same threads (``--threads``, default all) at the
given sizes (default: the export size), alternating the two, median of
``--repeats``. ``--profile HxW`` prints where the time goes at that size: ONNX
Runtime's milliseconds per run by operator type (its profiler's kernel times)
and PyTorch's by operator (torch.profiler, self time). Sizes are HxW, or N for NxN.
Needs ``pip install -e .[deploy]``.
"""
import argparse
import importlib
import os.path as osp
import statistics
import sys
import time

import torch
from mmengine.config import DictAction

from gfnet_dense.cli import parse_size, run_tool
from gfnet_dense.deploy import (DetectorForExport, SegmentorForExport, export_onnx,
                                max_abs_diff, onnx_session, run_onnx)
from gfnet_dense.deploy.onnx_export import DEFAULT_OPSET
from gfnet_dense.deploy.profile import onnx_operator_ms, top, torch_operator_ms
from gfnet_dense.ops.config import ONNX_DFT_FORMS


def build_from_config(path: str, checkpoint: str = None,
                      cfg_options: dict = None) -> torch.nn.Module:
    """The wrapped MMSeg segmentor or MMDet detector of a config (``cfg_options``
    merged in), weights from ``checkpoint``."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    importlib.import_module('gfnet_dense')  # registers the backbones
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in ('mmseg', 'mmdet'):
        raise ValueError(f'{path}: default_scope is {scope!r}; export takes MMSeg or MMDet '
                         'configs (or a timm model name)')
    init_default_scope(scope)
    cfg.model.backbone.init_cfg = None  # weights come from --checkpoint
    if cfg.model.get('pretrained'):
        cfg.model.pretrained = None
    model = MODELS.build(cfg.model)
    if checkpoint:
        from gfnet_dense.mm.model_checks import load_checked
        load_checked(model, checkpoint)
    else:
        print('no --checkpoint: exporting randomly initialised weights')
    model.eval()
    return (SegmentorForExport if scope == 'mmseg' else DetectorForExport)(model).eval()


def build_timm(name: str, checkpoint: str = None, features: bool = False) -> torch.nn.Module:
    """The classifier ``name`` (``features``: its feature-map backbone), weights
    from ``checkpoint``."""
    import timm
    importlib.import_module('gfnet_dense.models')  # registers gfnet_*, gfnet_h_*, affnet_*
    if name not in timm.list_models():
        raise ValueError(f'{name!r} is neither a config file nor a timm model name')
    kwargs = dict(features_only=True) if features else {}
    if checkpoint:
        return timm.create_model(name, pretrained=True, **kwargs,
                                 pretrained_cfg_overlay=dict(file=checkpoint)).eval()
    print('no --checkpoint: exporting randomly initialised weights')
    return timm.create_model(name, **kwargs).eval()


def verification_sizes(shape, dynamic: bool):
    h, w = shape
    return [(h, w)] + ([(h * 3 // 4, w), (h + 13, w - 7)] if dynamic else [])


def benchmark(session, model, size, repeats: int):
    """Median ms of ONNX Runtime and of PyTorch eager on one random image, the two
    run alternately (two warm-up runs each) so that both see the same machine."""
    image = torch.rand(1, 3, *size) * 255
    runs = {'onnx': lambda: run_onnx(session, image), 'eager': lambda: model(image)}
    times = {key: [] for key in runs}
    with torch.no_grad():
        for i in range(repeats + 2):
            for key, fn in runs.items():
                start = time.perf_counter()
                fn()
                if i >= 2:
                    times[key].append(1e3 * (time.perf_counter() - start))
    return statistics.median(times['onnx']), statistics.median(times['eager'])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', help='MMSeg / MMDet config file, or a timm model name')
    parser.add_argument('--checkpoint')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config settings, as tools/train.py')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--shape', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'))
    parser.add_argument('--dynamic', action='store_true', help='symbolic batch, H and W')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument('--dft', choices=ONNX_DFT_FORMS, default='matmul',
                        help='form of the FFTs in the graph (default matmul, see '
                        'deploy/onnx_fft.py)')
    parser.add_argument('--features', action='store_true',
                        help='timm names: export the feature-map backbone (features_only)')
    parser.add_argument('--verify', type=parse_size, nargs='*', metavar='HxW',
                        help='compare with PyTorch at these sizes (none given: the export '
                             'size, and with --dynamic two more)')
    parser.add_argument('--tolerance', type=float, default=1e-3,
                        help='largest absolute difference --verify accepts (default 1e-3)')
    parser.add_argument('--benchmark', type=parse_size, nargs='*', metavar='HxW',
                        help='time ONNX Runtime and PyTorch at these sizes (none given: '
                             'the export size)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='--benchmark runs per size, --profile runs')
    parser.add_argument('--profile', type=parse_size, metavar='HxW',
                        help='time per operator in ONNX Runtime and in PyTorch at this size')
    parser.add_argument('--threads', type=int, default=0, help='0: all cores')
    args = parser.parse_args(argv)
    if min(args.shape) < 2:
        parser.error(f'--shape {args.shape}: H and W must be at least 2')
    fixed = None if args.dynamic else tuple(args.shape)
    for flag, sizes in (('--verify', args.verify), ('--benchmark', args.benchmark),
                        ('--profile', [args.profile] if args.profile else None)):
        for size in sizes or []:  # refused before the (minutes-long) export
            if fixed and size != fixed:
                parser.error(f'{flag} {size[0]}x{size[1]}: without --dynamic the file is '
                             f'exported for {fixed[0]}x{fixed[1]} only (add --dynamic)')
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model = (build_from_config(args.model, args.checkpoint, args.cfg_options)
                 if osp.isfile(args.model)
                 else build_timm(args.model, args.checkpoint, args.features))
    except (ValueError, TypeError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')
    torch.manual_seed(0)
    example = torch.rand(2 if args.dynamic else 1, 3, *args.shape) * 255
    try:
        export_onnx(model, example, args.out, args.dynamic, args.opset, args.dft)
    except ValueError as err:
        sys.exit(f'error: {err}')
    print(f'wrote {args.out} ({"dynamic batch, H, W" if args.dynamic else tuple(example.shape)})')
    session = onnx_session(args.out, args.threads)
    status = 0
    if args.verify is not None:
        for size in args.verify or verification_sizes(args.shape, args.dynamic):
            image = torch.rand(1, 3, *size) * 255
            diff, magnitude = max_abs_diff(session, model, image, with_magnitude=True)
            ok = diff <= args.tolerance
            status |= not ok
            print(f'verify {size[0]}x{size[1]}: largest absolute difference {diff:.3g} '
                  f'({"within" if ok else "ABOVE"} tolerance {args.tolerance:g}; '
                  f'outputs up to {magnitude:.3g})')
    if args.benchmark is not None:
        for size in args.benchmark or [tuple(args.shape)]:
            runtime, eager = benchmark(session, model, size, args.repeats)
            print(f'benchmark {size[0]}x{size[1]}, {torch.get_num_threads()} threads: '
                  f'ONNX Runtime {runtime:.1f} ms, PyTorch eager {eager:.1f} ms '
                  f'(ratio {runtime / eager:.2f})')
    if args.profile:
        image = torch.rand(1, 3, *args.profile) * 255
        print(f'profile {args.profile[0]}x{args.profile[1]}, {torch.get_num_threads()} threads, '
              f'ms per run:\nONNX Runtime, by operator type\n'
              f'{top(onnx_operator_ms(args.out, image, args.threads, args.repeats))}\n'
              f'PyTorch eager, by operator (self time)\n'
              f'{top(torch_operator_ms(model, image, args.repeats))}')
    return status


if __name__ == '__main__':
    sys.exit(run_tool(main))
