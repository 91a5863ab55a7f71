"""Unit tests of tools/proving_report.py on synthetic results shaped like those
tools/proving_ground.py writes, and on synthetic MMEngine / pretrain logs."""
import json
import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools'))

import proving_ground  # noqa: E402
import proving_report  # noqa: E402

SEG_NAMES = {  # run name -> (model, pretrained, filter_resize, mIoU)
    'gfnet_h_ti-scratch': ('gfnet_h_ti', False, 'bicubic', 12.3456),
    'gfnet_h_ti-pretrained-spatial': ('gfnet_h_ti', True, 'spatial', 23.4567),
    'resnet18-pretrained': ('resnet18', True, None, 34.5678),
}


def _size_key(fh, fw):
    return f'{fh}x{fw}'


def _results() -> dict:
    results = {}
    for i, (model, top1) in enumerate((('gfnet_h_ti', 81.2345), ('resnet18', 79.8765))):
        results[f'pretrain/{model}'] = dict(
            model=model, checkpoint=f'/w/pretrain/{model}/checkpoint.pth', top1=top1,
            top5=99.1234 - i, epochs=[dict(epoch=0, top1=70.0, top5=98.0, seconds=60.0),
                                      dict(epoch=1, top1=top1, top5=99.1234 - i, seconds=61.0)],
            loss_curve=[[20, 2.1], [40, 1.5 + i / 10], [60, 1.1], [80, 0.9]],
            params_m=6.93 + 4 * i, seconds=123.4 + i)
    for j, (name, (model, pretrained, mode, miou)) in enumerate(SEG_NAMES.items()):
        results[f'seg/{name}'] = dict(
            model=model, pretrained=pretrained, filter_resize=mode, mIoU=miou,
            checkpoint=f'/w/seg/{name}/iter_16.pth', config='configs/proving_ground/x.py',
            options=['data_root=/d'], metrics=dict(aAcc=80.0, mIoU=miou, mAcc=30.0),
            curve=[[10, 3.0 - j / 10], [16, 2.5]], seconds=55.0 + j)
        results[f'resolution/{name}'] = dict(name=name, sizes={
            _size_key(fh, fw): dict(height=round(proving_ground.SEG_SIZE_HW[0] * fh),
                                    width=round(proving_ground.SEG_SIZE_HW[1] * fw),
                                    mIoU=miou - 10 * abs(fh - 1) - 2 * abs(fw - 1) + k / 1000)
            for k, (fh, fw) in enumerate(proving_ground.TEST_SIZES)})
    for model, pretrained, m, m50 in (('gfnet_h_ti', False, 0.1234, 0.4567),
                                      ('gfnet_h_ti', True, 0.2345, 0.5678),
                                      ('resnet18', True, 0.0789, 0.3012)):
        name = f'det/{model}-{"pretrained" if pretrained else "scratch"}'
        results[name] = dict(model=model, pretrained=pretrained, bbox_mAP=m, bbox_mAP_50=m50,
                             metrics={'coco/bbox_mAP': m, 'coco/bbox_mAP_50': m50},
                             curve=[[10, 1.2], [12, 1.1]], seconds=77.7)
    return results


META = dict(command='python tools/proving_ground.py --quick --out /tmp/pg', wall_s=125.0,
            runs_s=600.0, quick=True, epochs=1)


def _rows(md: str, heading: str) -> list:
    """The data rows of the table under the heading that starts with ``heading``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('### ' + heading))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        rows.append([c.strip() for c in line.strip('|').split('|')])
    return rows  # header, separator, data...


def test_size_keys_match_proving_ground():
    keys = {_size_key(fh, fw) for fh, fw in proving_ground.TEST_SIZES}
    assert keys == set(proving_report.SIZE_LABELS)


def test_write_report(tmp_path):
    from PIL import Image
    results = _results()
    out = tmp_path / 'report'
    summary = proving_report.write_report(out, results, META)
    assert summary == dict(meta=META, results=results)
    assert json.loads((out / 'results.json').read_text()) == json.loads(json.dumps(summary))

    md = (out / 'results.md').read_text()
    assert md.startswith('# Proving ground results')
    assert f'`{META["command"]}`: 10.0 min of runs (this invocation 2.1 min wall' in md

    pre = _rows(md, 'Pretraining')
    assert pre[0] == ['model', 'params (M)', 'epochs', 'top-1', 'top-5', 'train time (s)']
    assert pre[2:] == [['GFNet-H-Ti', '6.93', '2', '81.23', '99.12', '123'],
                       ['ResNet-18', '10.93', '2', '79.88', '98.12', '124']]

    seg = _rows(md, 'Segmentation')
    assert seg[2:] == [['GFNet-H-Ti (scratch)', '12.35', '55'],
                       ['GFNet-H-Ti (Fashion-MNIST, filters spatial)', '23.46', '56'],
                       ['ResNet-18 (Fashion-MNIST)', '34.57', '57']]

    det = _rows(md, 'Detection')
    assert det[0] == ['backbone (start)', 'bbox mAP', 'mAP@50', 'train time (s)']
    assert det[2:] == [['GFNet-H-Ti (scratch)', '12.3', '45.7', '78'],
                       ['GFNet-H-Ti (Fashion-MNIST)', '23.4', '56.8', '78'],
                       ['ResNet-18 (Fashion-MNIST)', '7.9', '30.1', '78']]

    res = _rows(md, 'Resolution transfer')
    assert res[0] == ['backbone (start)', '0.5x 108x90', '0.75x 163x136', '1x (train) 217x181',
                      '1.5x 326x272', '2x 434x362', '1x H, 1.5x W 217x272',
                      '1.5x H, 1x W 326x181']
    assert res[1] == ['---'] * 8
    assert [r[0] for r in res[2:]] == [r[0] for r in seg[2:]]
    for row, name in zip(res[2:], SEG_NAMES):
        sizes = results[f'resolution/{name}']['sizes']
        assert row[1:] == [f'{v["mIoU"]:.2f}' for v in sizes.values()]
    assert res[2][3] == '12.35'  # the 1x column is the training size

    for png, min_height in (('learning_curves.png', 400), ('resolution_transfer.png', 400)):
        path = out / png
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        assert path.stat().st_size > 10_000
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.width >= 800 and image.height >= min_height
    with Image.open(out / 'learning_curves.png') as image:
        assert image.width > 2 * image.height  # three panels side by side


def test_write_report_single_stage(tmp_path):
    results = {k: v for k, v in _results().items() if k.startswith('det/')}
    proving_report.write_report(tmp_path, results, META)
    md = (tmp_path / 'results.md').read_text()
    assert '### Detection' in md
    assert '### Pretraining' not in md and '### Segmentation' not in md
    assert '### Resolution' not in md
    assert (tmp_path / 'learning_curves.png').exists()
    assert not (tmp_path / 'resolution_transfer.png').exists()


def test_write_report_empty(tmp_path):
    proving_report.write_report(tmp_path, {}, META)
    assert json.loads((tmp_path / 'results.json').read_text()) == dict(meta=META, results={})
    assert 'Command: `python tools/proving_ground.py' in (tmp_path / 'results.md').read_text()
    assert not list(tmp_path.glob('*.png'))


def test_tables_without_a_learning_curve():
    results = _results()
    results['pretrain/gfnet_h_ti']['loss_curve'] = []
    assert '| GFNet-H-Ti | 6.93 | 2 | 81.23 |' in proving_report.tables(results, META)


def test_resolution_stage_alone_reports_with_its_training_runs(tmp_path):
    """``--stages resolution`` alone: the finished runs are kept and the report labels
    each row from the segmentation run it evaluated."""
    kept = {k: v for k, v in _results().items() if k.startswith(('seg/', 'resolution/'))}
    for mode in ('bicubic', 'bilinear'):  # the quick plan's other resize modes
        for stage in ('seg', 'resolution'):
            run = dict(kept[f'{stage}/gfnet_h_ti-pretrained-spatial'])
            if stage == 'seg':
                run['filter_resize'] = mode
            kept[f'{stage}/gfnet_h_ti-pretrained-{mode}'] = run
    (tmp_path / 'runs').mkdir()
    for name, result in kept.items():
        (tmp_path / 'runs' / (name.replace('/', '-') + '.json')).write_text(json.dumps(result))
    ground = proving_ground.ProvingGround(tmp_path, tmp_path / 'data', proving_ground.QUICK, True)
    results = ground.run(['resolution'])
    assert set(results) == {'seg/' + n for n in ground_seg_names(ground)} | \
        {'resolution/' + n for n in ground_seg_names(ground)}
    md = proving_report.tables(results, META)
    assert '### Resolution transfer' in md and 'filters spatial' in md


def ground_seg_names(ground):
    return [proving_ground._seg_name(*run) for run in ground.seg_runs()]


# read_scalars ----------------------------------------------------------------------------

def _scalars(work, stamp, rows):
    folder = work / stamp / 'vis_data'
    folder.mkdir(parents=True)
    (folder / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in rows))


def test_read_scalars_merges_resumed_runs(tmp_path):
    work = tmp_path / 'seg' / 'run'
    _scalars(work, '20240101_000000', [
        dict(lr=1e-4, data_time=0.1, loss=3.0, **{'decode.loss_ce': 3.0}, time=1.0, iter=10,
             memory=0, step=10),
        dict(lr=2e-4, data_time=0.1, loss=2.5, time=1.0, iter=20, step=20),
        dict(aAcc=60.0, mIoU=10.0, mAcc=15.0, data_time=0.01, time=0.1, step=20),
        dict(lr=2e-4, loss=2.2, step=30),  # logged before the interruption, redone
    ])
    _scalars(work, '20240101_010000', [
        dict(lr=2e-4, loss=2.0, step=30),
        dict(lr=1e-4, loss=1.5, step=40),
        dict(aAcc=70.0, mIoU=20.5, mAcc=25.0, data_time=0.01, time=0.1, step=40),
    ])
    (work / 'iter_40.pth').write_bytes(b'')
    (work / '20240101_020000').mkdir()  # a run that stopped before logging anything
    out = proving_report.read_scalars(work)
    assert out['loss'] == [[10, 3.0], [20, 2.5], [30, 2.0], [40, 1.5]]
    assert out['metrics']['mIoU'] == 20.5 and out['metrics']['aAcc'] == 70.0
    assert 'step' not in out['metrics']
    json.dumps(out)


def test_read_scalars_detection_metrics(tmp_path):
    _scalars(tmp_path, '20240101_000000', [
        dict(loss=1.5, loss_cls=1.0, loss_bbox=0.5, step=10),
        {'coco/bbox_mAP': 0.12, 'coco/bbox_mAP_50': 0.4, 'coco/bbox_mAP_75': 0.1,
         'data_time': 0.1, 'time': 0.5, 'step': 12},
    ])
    out = proving_report.read_scalars(tmp_path)
    assert out['loss'] == [[10, 1.5]]
    assert out['metrics']['coco/bbox_mAP'] == 0.12 and out['metrics']['coco/bbox_mAP_50'] == 0.4


def test_read_scalars_without_metrics(tmp_path):
    with pytest.raises(RuntimeError, match='no validation in'):
        proving_report.read_scalars(tmp_path)
    _scalars(tmp_path, '20240101_000000', [dict(loss=1.5, step=10), dict(loss=1.2, step=20)])
    with pytest.raises(RuntimeError, match=str(tmp_path)):
        proving_report.read_scalars(tmp_path)


# pretrain_loss_curve ---------------------------------------------------------------------

def test_pretrain_loss_curve(tmp_path):
    log = tmp_path / 'log.txt'
    log.write_text(
        '2024-01-01 00:00:00 INFO model gfnet_h_ti: 6.9M parameters\n'
        '2024-01-01 00:00:10 INFO epoch 0 [20/40] loss 2.3026 lr 2.000e-03 100.0 images/s\n'
        '2024-01-01 00:00:20 INFO epoch 0 [40/40] loss 1.8000 lr 1.900e-03 101.5 images/s\n'
        '2024-01-01 00:00:30 INFO epoch 0: {"top1": 60.0, "top5": 95.0, "epoch": 0}\n'
        '2024-01-01 00:00:40 INFO epoch 1 [20/40] loss 1.2345 lr 1.000e-03 100.0 images/s\n'
        # a resumed run logs epoch 1 again: the later value wins
        '2024-01-01 01:00:00 INFO resumed from checkpoint.pth: continuing at epoch 1\n'
        '2024-01-01 01:00:10 INFO epoch 1 [20/40] loss 1.2000 lr 1.000e-03 99.0 images/s\n'
        '2024-01-01 01:00:20 INFO epoch 1 [40/40] loss 0.9876 lr 1.000e-05 99.0 images/s\n'
        '2024-01-01 01:00:30 INFO epoch 10 [7/40] loss 0.5000 lr 1.000e-05 99.0 images/s\n')
    assert proving_report.pretrain_loss_curve(log) == [
        [20, 2.3026], [40, 1.8], [60, 1.2], [80, 0.9876], [407, 0.5]]


def test_pretrain_loss_curve_empty(tmp_path):
    log = tmp_path / 'log.txt'
    log.write_text('no training lines\n')
    assert proving_report.pretrain_loss_curve(log) == []


def test_pretrain_loss_curve_matches_the_pretrain_log_format():
    """The regular expression reads the line tools/pretrain.py writes."""
    import re
    source = open(osp.join(ROOT, 'tools', 'pretrain.py')).read()
    line = r"f'epoch \{epoch\} \[\{step \+ 1\}/\{num_steps\}\] loss \{loss\.item\(\):\.4f\} '"
    assert re.search(line, source), 'the pretrain log line changed: update pretrain_loss_curve'
