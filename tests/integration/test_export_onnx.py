"""ONNX export (tools/export_onnx.py, gfnet_dense.deploy): ONNX Runtime equals PyTorch.

Tiny variants of GFNet-H (every ``filter_resize`` mode), isotropic GFNet and
AFFNet, and a UperNet and a RetinaNet config with a one-block-per-stage GFNet-H,
exported with fixed and with symbolic batch / H / W and run at several sizes:
non-square ones and ones that are no multiple of the patch or of 32.
"""
import importlib
import os.path as osp

# the deploy extra (tools/setup_env.sh installs it): fails, never skips
import onnxruntime  # noqa: F401
import pytest
import torch

from gfnet_dense import GFNet, GFNetH
from gfnet_dense.deploy import export_onnx, max_abs_diff, onnx_session, run_onnx
from helpers import ROOT, load_tool, run_tool

pytestmark = pytest.mark.slow
TINY_H = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1])
SIZES = [(64, 64), (70, 90), (33, 47), (96, 40)]
TOLERANCE = 1e-4  # measured <= 2e-6 on these outputs (magnitudes ~1-10)


def _check(model, path, sizes, dynamic=True, example_size=(64, 64), dft_form='matmul'):
    torch.manual_seed(0)
    example = torch.randn(2 if dynamic else 1, 3, *example_size)
    export_onnx(model, example, str(path), dynamic=dynamic, dft_form=dft_form)
    session = onnx_session(str(path))
    diffs = {size: max_abs_diff(session, model, torch.randn(1, 3, *size)) for size in sizes}
    assert all(d <= TOLERANCE for d in diffs.values()), diffs
    return diffs


@pytest.fixture(scope='module')
def tiny_h_dynamic(tmp_path_factory):
    """``(model, path)``: the tiny GFNet-H (bicubic) exported with symbolic batch, H and
    W, checked at ``SIZES``. A dynamic export takes a minute or more on 2 cores, so the
    tests that need this graph share it."""
    torch.manual_seed(0)
    model = GFNetH(arch=TINY_H, pretrain_img_size=64, filter_resize='bicubic').eval()
    path = tmp_path_factory.mktemp('onnx') / 'gfnet_h.onnx'
    _check(model, path, SIZES)
    return model, path


@pytest.mark.parametrize('resize', ['bilinear', 'spatial'])
def test_gfnet_h_dynamic_every_filter_resize_mode(resize, tmp_path):
    """Filters and pos_embed resized inside the graph, from the stored 16x16 grid (the
    bicubic graph is ``tiny_h_dynamic``'s)."""
    torch.manual_seed(0)
    model = GFNetH(arch=TINY_H, pretrain_img_size=64, filter_resize=resize).eval()
    _check(model, tmp_path / 'gfnet_h.onnx', SIZES)


def _op_types(path):
    import onnx
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_both_fft_forms(tiny_h_dynamic, tmp_path):
    """The default graph computes its FFTs with MatMul nodes on DFT matrices (no DFT
    node); ``dft_form='dft'`` keeps DFT nodes, the inverse in its Hermitian form,
    which ONNX Runtime runs at symbolic sizes too."""
    model, matmul = tiny_h_dynamic
    _check(model, tmp_path / 'dft.onnx', SIZES[:3], dft_form='dft')
    assert 'DFT' not in _op_types(matmul)
    assert 'DFT' in _op_types(tmp_path / 'dft.onnx')


def test_factored_form_in_fixed_size_exports_only(tmp_path, monkeypatch):
    """A fixed-size export whose stage-1 grid (64 x 48) allows it computes that
    stage's global filters in the factored form (deploy/onnx_fft.py); a dynamic export at
    that size keeps the direct form, which serves every size."""
    from gfnet_dense.deploy import onnx_fft as dft
    calls = []
    factored = dft._filter_factored
    monkeypatch.setattr(dft, '_filter_factored', lambda *a: calls.append(1) or factored(*a))
    torch.manual_seed(0)
    model = GFNetH(arch=TINY_H, pretrain_img_size=64).eval()
    _check(model, tmp_path / 'fixed.onnx', [(256, 192)], dynamic=False, example_size=(256, 192))
    traced = len(calls)
    assert traced
    _check(model, tmp_path / 'dynamic.onnx', [(256, 192), (240, 200)], example_size=(256, 192))
    assert len(calls) == traced


def test_batch_is_symbolic_too(tiny_h_dynamic):
    model, path = tiny_h_dynamic
    session = onnx_session(str(path))
    assert max_abs_diff(session, model, torch.randn(3, 3, 50, 70)) <= TOLERANCE


def test_isotropic_gfnet_fixed_size(tmp_path):
    torch.manual_seed(0)
    model = GFNet(arch=dict(embed_dim=16, depth=2), pretrain_img_size=64,
                  out_indices=(1,)).eval()
    _check(model, tmp_path / 'gfnet.onnx', [(64, 64)], dynamic=False)


def test_timm_affnet_with_checkpoint_through_the_tool(tmp_path):
    """A classifier by timm name, its weights from a checkpoint, dynamic, verified
    by the tool at three sizes (exit status 0)."""
    import timm
    importlib.import_module('gfnet_dense.models')  # registers affnet_*
    torch.manual_seed(0)
    model = timm.create_model('affnet_et', num_classes=1000)
    ckpt = str(tmp_path / 'affnet_et.pth')
    torch.save({'model': model.state_dict()}, ckpt)
    out = str(tmp_path / 'affnet_et.onnx')
    proc = run_tool('export_onnx.py', 'affnet_et', '--checkpoint', ckpt, '--out', out,
                    '--shape', '64', '80', '--dynamic', '--verify', '--tolerance', '1e-4')
    assert proc.stdout.count('within tolerance') == 3, proc.stdout
    session = onnx_session(out)
    assert max_abs_diff(session, model.eval(), torch.rand(1, 3, 45, 77) * 255) <= 1e-4


def test_timm_backbone_features_verify_benchmark_and_profile(tmp_path):
    """``--features``: the feature maps of a timm backbone, one output per level;
    ``--verify`` / ``--benchmark`` / ``--profile`` at the sizes given."""
    out = str(tmp_path / 'affnet_et_features.onnx')
    proc = run_tool('export_onnx.py', 'affnet_et', '--features', '--out', out, '--shape', '64',
                    '64', '--dynamic', '--verify', '64x64', '50x70', '--tolerance', '1e-4',
                    '--benchmark', '48x64', '--repeats', '1', '--profile', '40x56')
    assert [line.split(':')[0] for line in proc.stdout.splitlines() if 'within' in line] == \
        ['verify 64x64', 'verify 50x70'], proc.stdout
    assert 'benchmark 48x64' in proc.stdout and 'ONNX Runtime' in proc.stdout
    profile = proc.stdout[proc.stdout.index('profile 40x56'):].splitlines()
    onnx_rows = profile[2:profile.index('PyTorch eager, by operator (self time)')]
    assert profile[1] == 'ONNX Runtime, by operator type' and onnx_rows[-1].split()[0] == '(all)'
    assert any(row.split()[0] == 'Conv' for row in onnx_rows), profile
    assert any('convolution' in row for row in profile[len(onnx_rows) + 3:]), profile
    session = onnx_session(out)
    assert session.get_session_options().get_session_config_entry(
        'session.intra_op.allow_spinning') == '0'
    outputs = run_onnx(session, torch.rand(1, 3, 50, 70) * 255)
    assert [tuple(o.shape) for o in outputs] == [(1, 32, 25, 35), (1, 48, 13, 18),
                                                 (1, 64, 7, 9), (1, 104, 4, 5), (1, 144, 2, 3)]


@pytest.mark.parametrize('args,message', [
    (['no_such_model'], 'neither a config file nor a timm model name'),
    (['affnet_et', '--opset', '17', '--shape', '32', '32'], 'DFT operator of opset 20'),
    (['affnet_et', '--dft', 'fft'], "invalid choice: 'fft'"),
    (['affnet_et', '--shape', '32', '32', '--verify', '48x48'],
     'exported for 32x32 only (add --dynamic)'),
    (['affnet_et', '--shape', '32', '32', '--profile', '48x48'],
     '--profile 48x48: without --dynamic the file is exported for 32x32 only'),
    (['affnet_et', '--verify', '48'],  # N is NxN (gfnet_dense.cli.parse_size)
     '--verify 48x48: without --dynamic the file is exported for 512x512 only'),
    (['affnet_et', '--verify', '48x'], "invalid size '48x': give HxW"),
])
def test_tool_refuses_bad_arguments(args, message, tmp_path):
    proc = run_tool('export_onnx.py', *args, '--out', str(tmp_path / 'x.onnx'), check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize('config,dynamic', [('upernet_gfnet_h_ti_ade20k.py', True),
                                            ('retinanet_gfnet_h_ti_fpn_1x_coco.py', False)])
def test_mm_configs(config, dynamic, tmp_path):
    """A segmentor (logits at the input size, normalisation inside) and a detector
    (features and raw head outputs), one block per stage."""
    tool = load_tool('export_onnx')
    options = {'model.backbone.arch': dict(_delete_=True, embed_dims=[64, 128, 256, 512],
                                           depths=[1, 1, 1, 1])}
    model = tool.build_from_config(osp.join(ROOT, 'configs', config), cfg_options=options)
    sizes = [(64, 96), (70, 90), (96, 64)] if dynamic else [(64, 96)]
    torch.manual_seed(0)
    example = torch.rand(2 if dynamic else 1, 3, 64, 96) * 255
    path = str(tmp_path / 'model.onnx')
    export_onnx(model, example, path, dynamic=dynamic)
    session = onnx_session(path)
    for size in sizes:
        image = torch.rand(1, 3, *size) * 255
        assert max_abs_diff(session, model, image) <= 1e-3, size
    if dynamic:  # segmentation logits at the input size
        outputs = session.run(None, {session.get_inputs()[0].name:
                                     (torch.rand(1, 3, 70, 90) * 255).numpy()})
        assert outputs[0].shape == (1, 150, 70, 90)


def test_image_demo_onnx_draws_what_pytorch_draws(tmp_path):
    """tools/image_demo.py --onnx on a real slice: the same labels as the PyTorch
    path of the same config and weights, and an overlay image written."""
    import numpy as np
    from mmengine.config import Config
    config = tmp_path / 'tiny_demo.py'
    config.write_text(
        f"_base_ = '{osp.join(ROOT, 'configs/demo/fpn_gfnet_h_ti_brain_lobes_demo.py')}'\n"
        "data_root = '" + osp.join(ROOT, 'data/brain_lobes_demo') + "'\n"
        "model = dict(backbone=dict(arch=dict(_delete_=True, embed_dims=[64, 128, 256, 512],"
        " depths=[1, 1, 1, 1])))\n"
        "val_dataloader = dict(dataset=dict(data_root=data_root))\n"
        "test_dataloader = val_dataloader\n")
    tool = load_tool('export_onnx')
    torch.manual_seed(0)
    wrapped = tool.build_from_config(str(config))
    checkpoint = str(tmp_path / 'tiny.pth')
    torch.save({'state_dict': wrapped.segmentor.state_dict(), 'meta': {}}, checkpoint)
    onnx_file = str(tmp_path / 'tiny.onnx')
    export_onnx(wrapped, torch.rand(2, 3, 96, 80) * 255, onnx_file, dynamic=True)

    demo = load_tool('image_demo')
    image = demo.read_bgr(osp.join(ROOT, 'data/brain_lobes_demo/img_dir/val/z030.png'))
    cfg = Config.fromfile(str(config))
    torch_out, onnx_out = str(tmp_path / 'torch.png'), str(tmp_path / 'onnx.png')
    expected = demo.draw_segmentation(image, cfg, checkpoint, torch_out, 'cpu', 0.5)
    got = demo.draw_onnx_segmentation(image, cfg, None, onnx_file, onnx_out, 0.5)
    labels = [r.pred_sem_seg.data.squeeze().numpy() for r in (expected, got)]
    assert labels[0].shape == labels[1].shape == image.shape[:2]
    assert (labels[0] == labels[1]).mean() >= 0.999
    assert osp.getsize(onnx_out) > 0 and osp.getsize(torch_out) > 0
    proc = run_tool('image_demo.py', osp.join(ROOT, 'data/brain_lobes_demo/img_dir/val/z030.png'),
                    str(config), '--onnx', onnx_file, '--out', str(tmp_path / 'cli.png'))
    assert 'wrote' in proc.stdout and np.array_equal(
        demo.read_bgr(str(tmp_path / 'cli.png')), demo.read_bgr(onnx_out))
