"""One crafted checkpoint through each tool entry point (code execution, memory
described by the file, non-finite weights and training state), and MMSeg's own test
tool with our config's SafeCheckpointLoadingHook. Every class of hostile file goes
through the loader in-process in tests/unit/checkpoints/test_hostile.py."""
import os
import os.path as osp

import pytest
import torch

from crafted import HOSTILE, PAYLOADS, genuine_message_hub, write_crafted
from gfnet_dense.mm import GFNetH
from helpers import DEMO_CONFIG, data_options, run_tool

# what each payload's refusal must name
NAMED = {'numpy_runstring': 'numpy.testing._private.utils.runstring',
         'getattr_chain_to_eval': "attribute '__init__'",
         'torch_save_call': 'torch.serialization.save',
         'history_buffer_getattr': "attribute '__init__'"}
assert set(NAMED) == set(PAYLOADS)


@pytest.fixture
def sentinel(tmp_path):
    path = str(tmp_path / 'sentinel.txt')
    yield path
    assert not osp.exists(path), 'code from the checkpoint ran'


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    from gfnet_dense.datasets.demo import make_ade20k_demo
    return make_ade20k_demo(str(tmp_path_factory.mktemp('ade') / 'ade20k_demo'),
                            num_train=2, num_val=1)


def _demo_state():
    """A state dict of the demo config's segmentor (so only the policy can refuse it)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(DEMO_CONFIG)
    init_default_scope('mmseg')
    return MODELS.build(cfg.model).state_dict()


# tool: (a code-running payload and its place, or a HOSTILE writer), what the refusal names
TOOL_CASES = {
    'train_resume': ('void_dtype_object_fields', 'not a numeric dtype'),
    'train_load_from': (('getattr_chain_to_eval', 'optimizer_state'),
                        NAMED['getattr_chain_to_eval']),
    'test': ('nan_complex_filter', 'NaN or Inf'),
    'image_demo': ('void_dtype_object_fields', 'not a numeric dtype'),
    'convert': ('legacy_unwritten_storage', 'legacy (non-zip) torch file'),
    'pretrain_resume': ('nan_scheduler_state', 'training state is not usable'),
    'pretrain_finetune': (('numpy_runstring', 'top_level'), NAMED['numpy_runstring']),
}


def _nan_scheduler_state(path, state_dict):
    """A tools/pretrain.py checkpoint whose scheduler would train at lr nan."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])
    torch.save({'model': state_dict, 'optimizer': optimizer.state_dict(),
                'scheduler': {'base_values': [float('nan')], 't_initial': 10}, 'epoch': 0},
               str(path))
    return str(path)


def _write_case(case, path, state, sentinel):
    kind, _ = TOOL_CASES[case]
    if isinstance(kind, tuple):
        return write_crafted(path, state, *kind, sentinel)
    if kind == 'nan_scheduler_state':
        return _nan_scheduler_state(path, state)
    return HOSTILE[kind][0](path, state)


def _tool_args(case, path, demo_root, work_dir):
    options = ['--cfg-options', *data_options(demo_root), 'train_dataloader.num_workers=0',
               'train_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
               'test_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
               'val_dataloader.persistent_workers=False']
    image = osp.join(demo_root, 'images', 'validation')
    image = osp.join(image, sorted(os.listdir(image))[0])
    folder = osp.join(work_dir, 'images')
    return {
        'train_resume': ['train.py', DEMO_CONFIG, '--work-dir', work_dir, '--resume', path,
                         *options],
        'train_load_from': ['train.py', DEMO_CONFIG, '--work-dir', work_dir, *options,
                            f'load_from={path}'],
        'test': ['test.py', DEMO_CONFIG, path, '--work-dir', work_dir, *options],
        'image_demo': ['image_demo.py', image, DEMO_CONFIG, path,
                       '--out', osp.join(work_dir, 'out.png')],
        'convert': ['convert_checkpoint.py', path, osp.join(work_dir, 'out.pth'),
                    '--model', 'gfnet_h_ti', '--to', 'backbone'],
        'pretrain_resume': ['pretrain.py', '--model', 'gfnet_h_ti', '--data-path', folder,
                            '--resume', path, '--output-dir', work_dir, '--epochs', '1',
                            '--batch-size', '2', '--workers', '0', '--input-size', '32'],
        'pretrain_finetune': ['pretrain.py', '--model', 'gfnet_h_ti', '--data-path', folder,
                              '--finetune', path, '--output-dir', work_dir, '--epochs', '1',
                              '--batch-size', '2', '--workers', '0', '--input-size', '32'],
    }[case]


@pytest.mark.parametrize('case', sorted(TOOL_CASES))
def test_tools_refuse_crafted_checkpoints(case, demo_root, tmp_path, sentinel):
    from helpers import write_image_folder
    work_dir = str(tmp_path / 'work')
    os.makedirs(work_dir)
    write_image_folder(osp.join(work_dir, 'images'), classes=2, per_class=(2, 1), size=32)
    state = _demo_state() if case != 'convert' else GFNetH(arch='ti').state_dict()
    path = _write_case(case, tmp_path / 'evil.pth', state, sentinel)
    proc = run_tool(*_tool_args(case, path, demo_root, work_dir), check=False, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert TOOL_CASES[case][1] in output, output[-3000:]
    assert 'Traceback' not in proc.stderr.split('Error:')[-1], output[-3000:]
    outputs = {'image_demo': 'out.png', 'convert': 'out.pth'}
    assert case not in outputs or not osp.exists(osp.join(work_dir, outputs[case]))
    assert not [f for f in os.listdir(work_dir) if f.endswith('.pth')], os.listdir(work_dir)


def test_image_demo_refuses_a_1x1_image_before_the_checkpoint(tmp_path, sentinel):
    """An image the tool cannot draw: one line, no traceback, the checkpoint never opened."""
    from PIL import Image
    image = str(tmp_path / 'dot.png')
    Image.new('RGB', (1, 1)).save(image)
    path = write_crafted(tmp_path / 'evil.pth', {'w': torch.zeros(1)}, 'history_buffer_getattr',
                         'message_hub', sentinel)
    proc = run_tool('image_demo.py', image, DEMO_CONFIG, path, '--out',
                    str(tmp_path / 'out.png'), check=False, timeout=300)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == \
        f'error: image {image!r} is 1x1 px (width x height): each side must be at least 2 px'


def test_mmseg_own_test_tool_with_our_config(demo_root, tmp_path, sentinel):
    """The config's SafeCheckpointLoadingHook: MMSeg's tools/test.py loads a genuine
    MMEngine checkpoint (its HistoryBuffers) and refuses a crafted one."""
    import subprocess
    import sys

    import mmseg
    tool = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'test.py')
    state = _demo_state()
    genuine = str(tmp_path / 'genuine.pth')
    torch.save({'meta': {'iter': 3}, 'state_dict': state,
                'message_hub': genuine_message_hub()}, genuine)
    evil = write_crafted(tmp_path / 'evil.pth', state, 'getattr_chain_to_eval', 'message_hub',
                         sentinel)
    options = ['--cfg-options', *data_options(demo_root), 'test_dataloader.num_workers=0',
               'test_dataloader.persistent_workers=False']
    outputs = {}
    for name, path in (('genuine', genuine), ('evil', evil)):
        proc = subprocess.run([sys.executable, tool, DEMO_CONFIG, path, '--work-dir',
                               str(tmp_path / name), *options], capture_output=True, text=True,
                              timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
        outputs[name] = (proc.returncode, proc.stdout + proc.stderr)
    assert outputs['genuine'][0] == 0 and 'mIoU' in outputs['genuine'][1], \
        outputs['genuine'][1][-3000:]
    assert outputs['evil'][0] != 0 and "attribute '__init__'" in outputs['evil'][1], \
        outputs['evil'][1][-3000:]
