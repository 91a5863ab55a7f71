"""MMSeg's and MMDet's own inference APIs on checkpoints our training writes (issue 25).

A fresh process (``python <this file> <folder>``) shrinks the demo segmentor
(``configs/demo/fpn_gfnet_h_ti_brain_lobes_demo.py``) and the COCO RetinaNet
(``configs/retinanet_gfnet_h_ti_fpn_1x_coco.py``, on a tiny COCO-format set) to tiny
backbones, writes them as config files and trains each for two iterations with
MMEngine's Runner: genuine ``iter_2.pth`` files, message hub (``HistoryBuffer``s
of numpy arrays, numpy scalars) and optimizer state included, which torch's
weights-only default refuses. ``mmseg.apis.init_model`` + ``inference_model``,
``MMSegInferencer``, ``mmdet.apis.init_detector`` + ``inference_detector`` and
``DetInferencer`` then load them by the configs' paths; crafted files are refused
through the same calls; torch's process-wide allow-list stays as it was.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

HERE = osp.dirname(osp.abspath(__file__))
TESTS = osp.dirname(osp.dirname(HERE))
ROOT = osp.dirname(TESTS)
SEG_CONFIG = osp.join(ROOT, 'configs/demo/fpn_gfnet_h_ti_brain_lobes_demo.py')
DET_CONFIG = osp.join(ROOT, 'configs/retinanet_gfnet_h_ti_fpn_1x_coco.py')
DET_CLASSES = ('square', 'triangle')
SEG_DATA = osp.join(ROOT, 'data/brain_lobes_demo')
SEG_IMAGE = osp.join(SEG_DATA, 'img_dir/val',
                     sorted(os.listdir(osp.join(SEG_DATA, 'img_dir/val')))[0])
TINY = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], layer_scale_init=1e-2)
LOADERS = ('', 'http://', 'https://', 'open-mmlab://', 'torchvision://')


def torch_allow_list() -> list:
    """torch's process-wide weights-only allow-list, once MMEngine, MMSeg and MMDet are
    imported (torch adds its own DTensor and dynamo types when they import those)."""
    import mmdet.apis  # noqa: F401
    import mmengine.runner  # noqa: F401
    import mmseg.apis  # noqa: F401
    return list(torch.serialization.get_safe_globals())


# ---------------------------------------------------- the training process (__main__)
def _loader_names() -> dict:
    from mmengine.runner.checkpoint import CheckpointLoader
    return {prefix: CheckpointLoader._schemes[prefix].__name__ for prefix in LOADERS}


def _tiny_configs(out: str):
    """The two configs with tiny backbones and narrow heads, dumped as files in ``out``
    (their paths, the segmentation and detection configs)."""
    sys.path.insert(0, TESTS)
    from helpers import write_tiny_coco
    from mmengine.config import Config
    seg = Config.fromfile(SEG_CONFIG)  # its custom_imports import gfnet_dense
    seg.model.backbone.arch = TINY
    seg.model.neck.update(in_channels=TINY['embed_dims'], out_channels=16)
    seg.model.decode_head.update(in_channels=[16] * 4, channels=16)
    coco = write_tiny_coco(osp.join(out, 'coco'), num_train=2, num_val=1, classes=DET_CLASSES)
    det = Config.fromfile(DET_CONFIG)
    det.model.backbone.update(arch=TINY, init_cfg=None)
    det.model.neck.update(in_channels=TINY['embed_dims'][1:], out_channels=16)
    det.model.bbox_head.update(num_classes=len(DET_CLASSES), in_channels=16, feat_channels=16,
                               stacked_convs=1)
    det.model.test_cfg.score_thr = 0.0  # two iterations from scratch: keep every box
    det.param_scheduler = None  # the 1x schedule counts epochs; two iterations need none
    det.log_processor = dict(by_epoch=False)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        seg[loader].dataset.data_root = SEG_DATA
        split = 'train' if loader == 'train_dataloader' else 'val'
        det[loader].dataset.update(data_root=coco, ann_file=f'annotations/{split}.json',
                                   data_prefix=dict(img=f'{split}/'),
                                   metainfo=dict(classes=DET_CLASSES))
        for step in det[loader].dataset.pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (160, 128)  # the config's (1333, 800), shrunk
    paths = dict(seg_config=osp.join(out, 'seg.py'), det_config=osp.join(out, 'det.py'),
                 det_image=osp.join(coco, 'val', 'val_000.jpg'))
    seg.dump(paths['seg_config'])
    det.dump(paths['det_config'])
    return paths, seg, det


def _train_two_iterations(cfg, work_dir: str) -> str:
    from mmengine.runner import Runner
    cfg = cfg.copy()
    cfg.work_dir = work_dir
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=1000)
    cfg.train_dataloader.update(batch_size=1, num_workers=0, persistent_workers=False)
    for part in ('val', 'test'):
        cfg[f'{part}_dataloader'] = cfg[f'{part}_cfg'] = cfg[f'{part}_evaluator'] = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=2)
    Runner.from_cfg(cfg).train()
    return osp.join(work_dir, 'iter_2.pth')


def write_trained_checkpoints(out: str) -> None:
    """In a fresh process: configs and two-iteration checkpoints, and a record of
    MMEngine's loaders before and after the config's ``custom_imports``."""
    safe_globals = torch_allow_list()
    record = dict(gfnet_dense_imported_first='gfnet_dense' in sys.modules,
                  loaders_before=_loader_names())
    paths, seg, det = _tiny_configs(out)
    record['loaders_after_config'] = _loader_names()
    paths['seg_checkpoint'] = _train_two_iterations(seg, osp.join(out, 'seg_work'))
    paths['det_checkpoint'] = _train_two_iterations(det, osp.join(out, 'det_work'))
    record['safe_globals_unchanged'] = list(torch.serialization.get_safe_globals()) == safe_globals
    with open(osp.join(out, 'record.json'), 'w') as f:
        json.dump(dict(paths=paths, record=record), f)


def _run(args, timeout=300):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


# ------------------------------------------------------------------------- tests
@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('inference_apis'))
    _run([osp.abspath(__file__), out])
    with open(osp.join(out, 'record.json')) as f:
        return json.load(f)


@pytest.fixture
def paths(trained):
    return trained['paths']


@pytest.fixture(autouse=True)
def _torch_allow_list_unchanged():
    before = torch_allow_list()
    yield
    assert list(torch.serialization.get_safe_globals()) == before


@pytest.fixture
def sentinel(tmp_path):
    path = str(tmp_path / 'sentinel.txt')
    yield path
    assert not osp.exists(path), 'code from the checkpoint ran'


def test_custom_imports_install_our_loaders_and_torch_refuses_the_checkpoints(trained):
    record, paths = trained['record'], trained['paths']
    assert not record['gfnet_dense_imported_first']
    assert record['loaders_before'][''] == 'load_from_local'  # MMEngine's, fresh
    assert record['loaders_after_config'] == {
        prefix: 'load_from_safe_local' if prefix == '' else 'load_from_safe_download'
        for prefix in LOADERS}
    assert record['safe_globals_unchanged']
    from gfnet_dense.checkpoints import load_file
    for kind in ('seg', 'det'):
        path = paths[f'{kind}_checkpoint']
        with pytest.raises(Exception, match='HistoryBuffer'):  # what the issue measured
            torch.load(path)
        checkpoint = load_file(path)
        assert checkpoint['meta']['iter'] == 2 and checkpoint['optimizer']['state']
        hub = checkpoint['message_hub']
        assert type(hub['log_scalars']['train/loss']).__name__ == 'HistoryBuffer'
        assert type(hub['runtime_info']['eta']).__module__ == 'numpy'


def test_install_is_idempotent_and_leaves_other_schemes_to_mmengine(monkeypatch):
    from mmengine.runner import checkpoint as mm
    from gfnet_dense.mm.safe_loading import install_safe_loading, safe_checkpoint_loading
    mmengine_table = dict(mm.CheckpointLoader._schemes, **{
        '': mm.load_from_local, 'http://': mm.load_from_http, 'https://': mm.load_from_http,
        'open-mmlab://': mm.load_from_openmmlab, 'torchvision://': mm.load_from_torchvision})
    ours = {prefix: 'load_from_safe_download' if prefix else 'load_from_safe_local'
            for prefix in LOADERS}
    monkeypatch.setattr(mm.CheckpointLoader, '_schemes', mmengine_table)
    install_safe_loading()
    table = mm.CheckpointLoader._schemes
    assert _loader_names() == ours
    assert list(table) == sorted(table, reverse=True)  # longest prefix first, as MMEngine's
    assert table['pavi://'] is mm.load_from_pavi  # cluster storage stays MMEngine's
    assert table[r'(\S+\:)?s3://'] is mm.load_from_ceph
    install_safe_loading()
    assert mm.CheckpointLoader._schemes is table
    with safe_checkpoint_loading():  # the stricter scope refuses the rest
        with pytest.raises(ValueError, match='not read under the safe loading policy'):
            mm.CheckpointLoader.load_checkpoint('s3://bucket/model.pth')
    assert mm.CheckpointLoader._schemes is table
    # a block entered over MMEngine's own loaders (swapped back by someone): its end
    # restores that table and then the process-wide install again
    monkeypatch.setattr(mm.CheckpointLoader, '_schemes', dict(mmengine_table))
    with safe_checkpoint_loading():
        pass
    assert _loader_names() == ours


def test_mmseg_init_model_in_a_fresh_process(paths):
    """The issue's call: nothing imported but MMSeg, gfnet_dense comes in through the
    config's custom_imports before the checkpoint is read."""
    code = '''if True:
        import json, sys, torch
        from mmseg.apis import inference_model, init_model
        allowed = list(torch.serialization.get_safe_globals())
        assert 'gfnet_dense' not in sys.modules
        model = init_model(sys.argv[1], sys.argv[2], device='cpu')
        result = inference_model(model, sys.argv[3])
        print(json.dumps(dict(
            shape=list(result.pred_sem_seg.data.shape),
            classes=len(model.dataset_meta['classes']),
            allowed=list(torch.serialization.get_safe_globals()) == allowed)))
    '''
    proc = _run(['-c', code, paths['seg_config'], paths['seg_checkpoint'], SEG_IMAGE])
    assert 'Loads checkpoint by safe_local backend' in proc.stdout + proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == dict(
        shape=[1, 217, 181], classes=16, allowed=True)


def _assert_weights_from(model, checkpoint_path):
    from gfnet_dense.checkpoints import load_file
    saved = load_file(checkpoint_path)['state_dict']
    state = model.state_dict()
    assert set(saved) <= set(state)
    for key, value in saved.items():
        torch.testing.assert_close(state[key].cpu(), value, rtol=0, atol=0)


def test_mmseg_init_model_and_inference_model(paths):
    from mmseg.apis import inference_model, init_model
    model = init_model(paths['seg_config'], paths['seg_checkpoint'], device='cpu')
    _assert_weights_from(model, paths['seg_checkpoint'])
    assert model.dataset_meta['classes'][1] == 'frontal_L'
    result = inference_model(model, SEG_IMAGE)
    assert tuple(result.pred_sem_seg.data.shape) == (1, 217, 181)


def test_mmseg_inferencer(paths):
    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(model=paths['seg_config'], weights=paths['seg_checkpoint'],
                                 device='cpu')
    _assert_weights_from(inferencer.model, paths['seg_checkpoint'])
    prediction = inferencer(SEG_IMAGE)['predictions']
    assert prediction.shape == (217, 181) and 0 <= prediction.min() <= prediction.max() < 16


def test_mmdet_init_detector_and_inference_detector(paths):
    from mmdet.apis import inference_detector, init_detector
    model = init_detector(paths['det_config'], paths['det_checkpoint'], device='cpu')
    _assert_weights_from(model, paths['det_checkpoint'])
    assert model.dataset_meta['classes'] == DET_CLASSES  # not COCO's 80
    result = inference_detector(model, paths['det_image'])
    boxes, scores = result.pred_instances.bboxes, result.pred_instances.scores
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 0
    assert scores.shape == (len(boxes),) and torch.isfinite(boxes).all()
    assert torch.isfinite(scores).all() and ((0 <= scores) & (scores <= 1)).all()
    assert set(result.pred_instances.labels.tolist()) <= {0, 1}


def test_mmdet_det_inferencer(paths):
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=paths['det_config'], weights=paths['det_checkpoint'],
                               device='cpu', show_progress=False)
    _assert_weights_from(inferencer.model, paths['det_checkpoint'])
    prediction = inferencer(paths['det_image'], no_save_vis=True)['predictions'][0]
    assert set(prediction) >= {'bboxes', 'scores', 'labels'}
    assert len(prediction['bboxes']) == len(prediction['scores']) > 0
    assert all(len(box) == 4 for box in prediction['bboxes'])
    assert all(0 <= score <= 1 for score in prediction['scores'])


def _crafted(kind, path, state_dict, sentinel):
    from crafted import HOSTILE, write_crafted
    if kind == 'void_dtype_object_fields':
        return HOSTILE[kind][0](path, state_dict)
    return write_crafted(path, state_dict, kind, 'message_hub', sentinel)


@pytest.mark.parametrize('kind, named', [
    ('void_dtype_object_fields', 'not a numeric dtype'),
    ('numpy_runstring', 'numpy.testing._private.utils.runstring'),
])
def test_crafted_checkpoints_are_refused_through_init_model(kind, named, paths, tmp_path,
                                                            sentinel):
    from gfnet_dense.checkpoints import UnsafeCheckpointError, load_file
    from mmseg.apis import init_model
    state = load_file(paths['seg_checkpoint'])['state_dict']
    evil = _crafted(kind, tmp_path / 'evil.pth', state, sentinel)
    with pytest.raises(UnsafeCheckpointError, match='Nothing from the file was run') as info:
        init_model(paths['seg_config'], evil, device='cpu')
    assert named in str(info.value)


def test_crafted_checkpoint_is_refused_through_det_inferencer(paths, tmp_path, sentinel):
    from gfnet_dense.checkpoints import UnsafeCheckpointError, load_file
    from mmdet.apis import DetInferencer
    state = load_file(paths['det_checkpoint'])['state_dict']
    evil = _crafted('numpy_runstring', tmp_path / 'evil.pth', state, sentinel)
    with pytest.raises(UnsafeCheckpointError, match='runstring'):
        DetInferencer(model=paths['det_config'], weights=evil, device='cpu')


if __name__ == '__main__':
    write_trained_checkpoints(sys.argv[1])
