"""Check that our AFFNet equals the public implementation (microsoft/TokenMixers).

Needs a copy of the public code (not part of this project, never vendored):

    git clone https://github.com/microsoft/TokenMixers
    pip install einops requests   # what its imports need beside torch
    python tools/check_affnet_equivalence.py --public-root "TokenMixers/Adaptive Frequency Filters"

For AFFNet-ET, -T and -S it builds the public classifier, gives every weight and
BatchNorm statistic non-trivial random values (filter weights large enough that
the frequency filters change the logits), converts the state dict with
``gfnet_dense.cvnets_layout`` and loads it *strictly* into ``timm.create_model``;
then compares parameter counts and logits at 256x256 and at a non-square size in
eval mode (float32; both compute the filters in float32). It then
does the same for the public DeepLabv3 segmentation model (output stride 8): its
checkpoint file, written with ``torch.save``, goes through our ``AFFNet``
backbone's ``init_cfg`` and the encoder's deepest map is compared. Exits non-zero
when a difference exceeds ``--tolerance`` or is not finite (a NaN or inf output on
either side, or outputs of different shapes), or when parameter counts differ.
``--write-keys FILE`` also writes the public key names and shapes (the fixture
behind ``tests/unit/test_cvnets_layout.py``).
"""
import argparse
import contextlib
import io
import json
import math
import os
import os.path as osp
import sys
import tempfile

import timm
import torch

from gfnet_dense import AFFNet
from gfnet_dense.checkpoints import load_into
from gfnet_dense.checkpoints.cvnets import cvnets_to_ours

PUBLIC_MODES = {'et': 'xx_small', 't': 'x_small', 's': 'small'}


def public_opts(arch: str, **extra):
    """cvnets options of the public AFFNet recipe: swish activations, BatchNorm."""
    opts = argparse.Namespace()
    settings = {
        'model.classification.name': 'affnet',
        'model.classification.affnet.mode': PUBLIC_MODES[arch],
        'model.classification.n_classes': 1000,
        'model.activation.name': 'swish', 'model.normalization.name': 'batch_norm',
        'model.layer.global_pool': 'mean', 'model.layer.conv_init': 'kaiming_normal',
        'model.layer.linear_init': 'trunc_normal', 'model.layer.linear_init_std_dev': 0.02,
        **extra}
    for key, value in settings.items():
        setattr(opts, key, value)
    return opts


def build_public(arch: str, segmentation: bool = False) -> torch.nn.Module:
    """The public classifier, or its DeepLabv3 segmentation model (output stride 8)."""
    with contextlib.redirect_stdout(io.StringIO()):  # it prints while building
        if not segmentation:
            from affnet.models.classification.affnet import AffNet
            return AffNet(public_opts(arch))
        from affnet.models.segmentation import build_segmentation_model
        return build_segmentation_model(public_opts(
            arch, **{'model.segmentation.name': 'encoder_decoder',
                     'model.segmentation.seg_head': 'deeplabv3',
                     'model.segmentation.output_stride': 8,
                     'model.segmentation.n_classes': 150,
                     'model.segmentation.deeplabv3.aspp_rates': (12, 24, 36)}))


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int) -> None:
    """Random values everywhere: conv / linear weights at their fan-in scale, norm
    affines and BatchNorm statistics around their neutral values, and frequency
    filter weights 10x the public init so that the filters matter."""
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            continue
        noise = torch.randn(tensor.shape, generator=gen)
        leaf = name.rsplit('.', 1)[-1]
        if leaf in ('w1', 'w2', 'b1', 'b2'):
            tensor.copy_(0.2 * noise)
        elif leaf == 'running_var':
            tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
        elif leaf == 'running_mean' or (leaf == 'bias'):
            tensor.copy_(0.1 * noise)
        elif tensor.dim() == 1:  # norm weights
            tensor.copy_(1 + 0.2 * noise)
        else:  # conv / linear weights
            fan_in = tensor[0].numel()
            tensor.copy_(noise / fan_in ** 0.5)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference of two outputs of one shape; NaN when either holds a
    NaN or inf (the comparison means nothing then), inf when the shapes differ (no
    broadcasting one against the other)."""
    if a.shape != b.shape:
        return float('inf')
    a, b = a.double(), b.double()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return float('nan')
    return (a - b).abs().max().item()


DIFFERENCE_KEYS = ('256', '320', 'features')  # the row keys holding a max_diff


def verdict(rows, tolerance: float):
    """``(passed, line)``: passes only when every difference is finite and within
    ``tolerance`` and the parameter counts are equal. A non-finite difference fails
    (``max(0.0, nan)`` is 0.0, so it is never folded into a running maximum)."""
    worst, nonfinite, counts_differ = 0.0, [], []
    for row in rows:
        for key, value in row.items():
            if not key.endswith(DIFFERENCE_KEYS):
                continue
            if not math.isfinite(value):
                nonfinite.append(f'{row.get("variant", "?")} {key}: {value}')
            else:
                worst = max(worst, value)
        if row.get('params_public') != row.get('params_ours', row.get('params_public')):
            counts_differ.append(row.get('variant', '?'))
    passed = not nonfinite and not counts_differ and worst <= tolerance
    line = (f'{"PASS" if passed else "FAIL"}: largest difference {worst:.3g} (tolerance '
            f'{tolerance:g}), parameter counts '
            + (f'DIFFERENT ({", ".join(counts_differ)})' if counts_differ else 'equal'))
    if nonfinite:
        line += ('; non-finite differences (NaN / inf outputs or different shapes): '
                 + '; '.join(nonfinite))
    return passed, line


def check_classifier(arch: str, sizes, seed: int) -> dict:
    public = build_public(arch).eval()
    randomize(public, seed)
    ours = timm.create_model(f'affnet_{arch}').eval()
    load_into(ours, cvnets_to_ours(public.state_dict()))  # strict
    row = dict(variant=f'affnet_{arch}',
               params_public=sum(p.numel() for p in public.parameters()),
               params_ours=sum(p.numel() for p in ours.parameters()))
    gen = torch.Generator().manual_seed(seed + 1)
    for size in sizes:
        x = torch.randn(2, 3, *size, generator=gen)
        with torch.no_grad():
            reference = public(x)
            row[f'{size[0]}x{size[1]}'] = max_diff(ours(x), reference)
            row[f'{size[0]}x{size[1]} |logit| max'] = reference.abs().max().item()
    return row


def check_segmentation(arch: str, size, seed: int, folder: str) -> dict:
    """The public DeepLabv3 checkpoint file through our backbone's ``init_cfg``."""
    public = build_public(arch, segmentation=True).eval()
    randomize(public, seed)
    path = osp.join(folder, f'deeplabv3_affnet_{arch}.pt')
    torch.save(public.state_dict(), path)
    ours = AFFNet(arch=arch, output_stride=8, out_indices=(4,),
                  init_cfg=dict(type='Pretrained', checkpoint=path))
    ours.init_weights()
    ours.eval()
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        reference = public.encoder.extract_end_points_all(x, use_l5=True)['out_l5']
        return dict(variant=f'deeplabv3 affnet_{arch} (os 8)',
                    **{f'{size[0]}x{size[1]} features': max_diff(ours(x)[0], reference),
                       'map shape': tuple(reference.shape)})


def public_keys(arch: str, segmentation: bool = False) -> dict:
    model = build_public(arch, segmentation)
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--public-root', required=True,
                        help='the folder "Adaptive Frequency Filters" of microsoft/TokenMixers')
    parser.add_argument('--variants', nargs='+', default=list(PUBLIC_MODES),
                        choices=list(PUBLIC_MODES))
    parser.add_argument('--tolerance', type=float, default=1e-4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--write-keys', help='write the public key names and shapes (JSON)')
    args = parser.parse_args(argv)
    if not osp.isdir(osp.join(args.public_root, 'affnet')):
        sys.exit(f'error: {args.public_root!r} has no affnet/ folder; pass the folder '
                 '"Adaptive Frequency Filters" of a microsoft/TokenMixers checkout')
    sys.path.insert(0, osp.abspath(args.public_root))
    rows = []
    # no_grad as a block: an in-process caller (the tests) keeps its grad mode
    with torch.no_grad(), tempfile.TemporaryDirectory() as folder:
        for arch in args.variants:
            rows.append(check_classifier(arch, [(256, 256), (224, 320)], args.seed))
            rows.append(check_segmentation(arch, (256, 256), args.seed, folder))
    for row in rows:
        print(json.dumps(row))
    if args.write_keys:
        with open(args.write_keys, 'w') as f:
            keys = {f'affnet_{arch}': public_keys(arch) for arch in args.variants}
            keys.update({f'deeplabv3_affnet_{arch}': public_keys(arch, segmentation=True)
                         for arch in args.variants})
            json.dump(keys, f, separators=(',', ':'))
        print(f'wrote {args.write_keys}')
    passed, line = verdict(rows, args.tolerance)
    print(line)
    return 0 if passed else 1


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '2')
    sys.exit(main())
