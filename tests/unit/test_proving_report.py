"""tools/proving_report.py and the plan of tools/proving_ground.py on synthetic runs shaped
like those the proving ground writes (no training)."""
import dataclasses
import json
import os.path as osp
import shutil
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools'))

import proving_ground  # noqa: E402
import proving_report  # noqa: E402
from gfnet_dense.checkpoints import file_sha256  # noqa: E402

CANVASES = ('64x64', '128x128')
SCALES = ('0.5x', '1.0x')
META = dict(command='python tools/proving_ground.py --out /tmp/pg', threads=2, wall_s=1.0)


def _seg(model, mode, aug, seed, base):
    """A segmentation run whose mIoU is ``base + seed`` everywhere (slide: + 0.5)."""
    miou = base + seed
    return dict(model=model, filter_resize=mode, random_resize=aug, seed=seed,
                curve=[[25, 2.0], [50, 1.0]], iters=50, params_m=12.5, gflops_64=0.25,
                canvas={k: dict(whole=dict(mIoU=miou), slide=dict(mIoU=miou + 0.5))
                        for k in CANVASES},
                scale={k: dict(mIoU=miou - 1) for k in SCALES}, seconds=1.0)


def _results(seeds=(0, 1, 2)):
    rows = {'background everywhere': dict(mIoU=7.0), 'location prior': dict(mIoU=7.5),
            'nearest training scene': dict(mIoU=8.0), 'intensity lookup': dict(mIoU=6.0),
            'intensity threshold': dict(mIoU=5.0)}
    results = {'baselines': dict(
        canvas={k: rows for k in CANVASES}, scale={k: rows for k in SCALES},
        det={'box prior': dict(bbox_mAP_50=0.3, bbox_mAP=0.1)},
        cls={'nearest class centroid': dict(top1=67.6), 'logistic regression': dict(top1=83.6)})}
    for seed in seeds:
        for model, top1 in (('gfnet_h_ti', 89.0), ('resnet18', 90.5)):
            results[f'pretrain/{model}-s{seed}'] = dict(
                model=model, seed=seed, top1=top1 + seed, params_m=12.5, gflops_32=0.04,
                history=[dict(epoch=1), dict(epoch=2)])
        results[f'seg/gfnet_h_ti-bicubic-s{seed}'] = _seg('gfnet_h_ti', 'bicubic', False, seed, 30)
        results[f'seg/resnet18-s{seed}'] = _seg('resnet18', None, False, seed, 20)
        results[f'seg/resnet18-aug-s{seed}'] = _seg('resnet18', None, True, seed, 31)
        results[f'det/gfnet_h_ti-s{seed}'] = dict(model='gfnet_h_ti', filter_resize='bicubic',
                                                  seed=seed, curve=[[25, 1.0]], iters=50,
                                                  params_m=12.0, gflops_128=0.8,
                                                  bbox_mAP_50=20.0 + seed,
                                                  bbox_mAP=10.0 + seed)
    return results


def _rows(md: str, heading: str) -> list:
    """The data rows (after header and separator) of the table under ``### heading...``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('### ' + heading))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        rows.append([c.strip() for c in line.strip('|').split('|')])
    return rows[2:]


def test_spread_and_calls():
    s = proving_report.spread([1.0, 3.0, 2.0])
    assert s == dict(mean=2.0, min=1.0, max=3.0, n=3)
    assert proving_report.cell(s) == '2.00 (1.00-3.00)'
    assert proving_report.cell(proving_report.spread([4.0])) == '4.00'
    hi, lo = proving_report.spread([5.0, 6.0]), proving_report.spread([3.0, 4.9])
    assert proving_report.compare(hi, lo) == '>' and proving_report.compare(lo, hi) == '<'
    assert proving_report.compare(hi, proving_report.spread([4.0, 5.0])) == '~'  # touching
    assert proving_report.compare(hi, proving_report.spread([1.0])) == '?'
    assert proving_report.config_name('seg/gfnet_h_ti-bicubic-aug-s12') == \
        'seg/gfnet_h_ti-bicubic-aug'


def test_tables_carry_baselines_spread_and_margins():
    md = proving_report.tables(_results(), META)
    pre = _rows(md, 'Pretraining')
    assert pre[:2] == [['nearest class centroid', '-', '-', '-', '-', '67.60', '-'],
                       ['logistic regression', '-', '-', '-', '-', '83.60', '-']]
    # seeds 0, 1, 2 -> 89, 90, 91: margin of the mean 6.40, of the worst seed 5.40
    assert pre[2] == ['GFNet-H-Ti', '12.5', '0.04', '2', '3', '90.00 (89.00-91.00)',
                      '+6.40 (+5.40)']

    whole = _rows(md, 'Canvas study: mIoU on canvases of other sizes, garments at their '
                      'training size (trained on 64x64 crops), whole')
    assert [r[0] for r in whole] == ['background everywhere', 'location prior',
                                     'nearest training scene', 'intensity lookup',
                                     'intensity threshold', 'GFNet-H-Ti (bicubic)', 'ResNet-18']
    # seeds 0, 1, 2 -> 30, 31, 32: mean 31, margin over the best baseline (8.0) 23, the
    # worst seed's 22
    assert whole[5] == ['GFNet-H-Ti (bicubic)', '12.5', '0.25', '50', '3', '31.00 (30.00-32.00)',
                        '31.00 (30.00-32.00)', '+23.00 (+22.00)']
    slide = _rows(md, 'Canvas study: mIoU on canvases of other sizes, garments at their '
                      'training size (trained on 64x64 crops), sliding')
    assert slide[5][5] == '31.50 (30.50-32.50)'
    scale = _rows(md, 'Scale study')
    assert [r[0] for r in scale][5:] == ['GFNet-H-Ti (bicubic)', 'ResNet-18',
                                         'ResNet-18 + random resize']
    det = _rows(md, 'Detection')
    assert det[0][:6] == ['box prior', '-', '-', '-', '-', '0.30']
    assert det[1] == ['GFNet-H-Ti (bicubic)', '12.0', '0.8', '50', '3', '21.00 (20.00-22.00)',
                      '11.00 (10.00-12.00)', '+20.70 (+19.70)']
    calls = '\n'.join(line for line in md.splitlines() if 'vs ResNet-18' in line)
    # GFNet 30-32 against ResNet-18 20-22: apart; against ResNet-18 + resize (scale 30-32
    # vs 30-32): overlapping, no difference called
    assert '| canvas (whole) | GFNet-H-Ti (bicubic) vs ResNet-18 | 64x64 >, 128x128 > |' in calls
    assert '| scale (scale) | GFNet-H-Ti (bicubic) vs ResNet-18 + random resize | 0.5x ~, ' \
           '1.0x ~ |' in calls


def test_one_seed_calls_nothing():
    md = proving_report.tables(_results(seeds=(0,)), META)
    assert '64x64 ?, 128x128 ?' in md and ' > ' not in md.split('### Calls')[1]
    # one seed: no worst-seed margin beside the mean's
    assert _rows(md, 'Detection')[1][-1] == '+19.70'


def test_each_pair_of_modes_is_called_once():
    results = _results()
    for seed in (0, 1, 2):
        results[f'seg/gfnet_h_ti-spatial-s{seed}'] = _seg('gfnet_h_ti', 'spatial', False, seed, 40)
    calls = proving_report.findings(proving_report.summarise(results))
    modes = [line for line in calls if line.startswith('| canvas (whole) | GFNet-H-Ti (')
             and ' vs GFNet-H-Ti' in line]
    assert modes == ['| canvas (whole) | GFNet-H-Ti (bicubic) vs GFNet-H-Ti (spatial) | '
                     '64x64 <, 128x128 < |'], modes


def test_write_report_plots(tmp_path):
    from PIL import Image
    summary = proving_report.write_report(tmp_path, _results(), META)
    assert json.loads((tmp_path / 'results.json').read_text())['meta'] == META
    canvas = summary['summary']['canvas']['seg/gfnet_h_ti-bicubic']
    # the margins the tables print, whole-image and sliding-window, are in the JSON too
    assert canvas['margin']['64x64'] == 23.0 and canvas['margin_worst_seed']['64x64'] == 22.0
    assert canvas['margin_slide']['64x64'] == 23.5
    assert canvas['margin_slide_worst_seed']['64x64'] == 22.5
    for png, panels in (('canvas_study.png', 2), ('scale_study.png', 1),
                        ('learning_curves.png', 2)):
        with Image.open(tmp_path / png) as image:
            assert image.width >= 600 * panels and image.height >= 400, png


def test_baselines_alone_report(tmp_path):
    results = {'baselines': _results()['baselines']}
    proving_report.write_report(tmp_path, results, META)
    md = (tmp_path / 'results.md').read_text()
    assert '| box prior |' in md and '| nearest training scene |' in md
    assert not list(tmp_path.glob('*.png'))


def _ground(tmp_path, budget):
    return proving_ground.ProvingGround(tmp_path, budget, log=lambda *_: None)


def _plan(*runs, block=lambda name: name):
    """A stand-in for ``ProvingGround.plan``: ``runs`` are ``(name, action)``, in the
    block ``block(name)`` (default: each in a block of its own)."""
    return lambda stages: [proving_ground.Planned(name, block(name), action)
                           for name, action in runs]


def test_plan_full_budget_names_and_order(tmp_path):
    names = [p.name for p in _ground(tmp_path, proving_ground.FULL).plan(proving_ground.STAGES)]
    # one block per seed and model: its classifier, then every run from it; seed 0 first
    assert names[:18] == [
        'baselines', 'pretrain/gfnet_h_ti-s0', 'seg/gfnet_h_ti-bicubic-s0',
        'seg/gfnet_h_ti-bilinear-s0', 'seg/gfnet_h_ti-spatial-s0', 'seg/gfnet_h_ti-best-aug-s0',
        'det/gfnet_h_ti-s0', 'pretrain/resnet18-s0', 'seg/resnet18-s0', 'seg/resnet18-aug-s0',
        'det/resnet18-s0', 'pretrain/convnext_nano-s0', 'seg/convnext_nano-s0',
        'seg/convnext_nano-aug-s0', 'pretrain/pvt_v2_b1-s0', 'seg/pvt_v2_b1-s0',
        'seg/pvt_v2_b1-aug-s0', 'pretrain/gfnet_h_ti-s1']
    dense_s0 = [n for n in names if n.endswith('-s0') and not n.startswith('pretrain')]
    assert len(dense_s0) == 12 and len(names) == 1 + 3 * (4 + 12)
    # one classifier per model and seed, before the first run that starts from it
    assert [n for n in names if n.endswith('-s2')][:6] == [
        'pretrain/gfnet_h_ti-s2', 'seg/gfnet_h_ti-bicubic-s2', 'seg/gfnet_h_ti-bilinear-s2',
        'seg/gfnet_h_ti-spatial-s2', 'seg/gfnet_h_ti-best-aug-s2', 'det/gfnet_h_ti-s2']
    only_pretrain = [p.name for p in _ground(tmp_path, proving_ground.FULL).plan(['pretrain'])]
    assert len(only_pretrain) == 12 and only_pretrain[:5] == [
        'pretrain/gfnet_h_ti-s0', 'pretrain/resnet18-s0', 'pretrain/convnext_nano-s0',
        'pretrain/pvt_v2_b1-s0', 'pretrain/gfnet_h_ti-s1']
    some = proving_ground.only_models(proving_ground.FULL, ['gfnet_h_ti', 'resnet18'])
    names = [p.name for p in _ground(tmp_path, some).plan(proving_ground.STAGES)]
    assert [n for n in names if n.endswith('-s0')] == [
        'pretrain/gfnet_h_ti-s0', 'seg/gfnet_h_ti-bicubic-s0', 'seg/gfnet_h_ti-bilinear-s0',
        'seg/gfnet_h_ti-spatial-s0', 'seg/gfnet_h_ti-best-aug-s0', 'det/gfnet_h_ti-s0',
        'pretrain/resnet18-s0', 'seg/resnet18-s0', 'seg/resnet18-aug-s0', 'det/resnet18-s0']
    quick = [p.name for p in _ground(tmp_path, proving_ground.QUICK).plan(proving_ground.STAGES)]
    assert quick == ['baselines', 'pretrain/gfnet_h_ti-s0', 'seg/gfnet_h_ti-bicubic-s0',
                     'det/gfnet_h_ti-s0']


def _classifier(tmp_path, model, seed, weights=b'weights', **changes):
    """A finished pretraining run of ``model`` and ``seed`` under the full budget's recipe;
    its checkpoint's sha256."""
    ckpt = tmp_path / 'pretrain' / f'{model}-s{seed}' / 'classifier.pth'
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(weights)
    sha = file_sha256(ckpt)
    record = dict(dict(model=model, seed=seed, checkpoint=str(ckpt), sha256=sha, top1=90.0,
                       params_m=1.0, gflops_32=0.1, history=[dict(epoch=1)],
                       recipe=dataclasses.asdict(proving_ground.FULL.pretrain)), **changes)
    (tmp_path / 'runs').mkdir(exist_ok=True)
    (tmp_path / 'runs' / f'pretrain-{model}-s{seed}.json').write_text(json.dumps(
        {k: v for k, v in record.items() if v is not None}))
    return sha


def _seg_from(tmp_path, model, mode, seed, miou, sha):
    run = dict(_seg(model, mode, False, seed, miou),
               classifier=dict(run=f'pretrain/{model}-s{seed}', sha256=sha))
    name = f'seg-{model}-{mode}-s{seed}' if mode else f'seg-{model}-s{seed}'
    (tmp_path / 'runs' / f'{name}.json').write_text(json.dumps(run))


def test_run_keeps_finished_runs_and_best_mode(tmp_path):
    ground = _ground(tmp_path, proving_ground.FULL)
    sha = _classifier(tmp_path, 'gfnet_h_ti', 0)
    for mode, miou in (('bicubic', 30), ('bilinear', 35), ('spatial', 20)):
        _seg_from(tmp_path, 'gfnet_h_ti', mode, 0, miou, sha)
    assert ground.best_mode() == 'bilinear'
    calls = []
    ground.plan = _plan(('seg/gfnet_h_ti-bicubic-s0', lambda: calls.append(1)),
                        ('baselines', lambda: dict(cls={})))
    results = ground.run(['seg', 'baselines'])
    assert calls == [] and results['baselines'] == dict(cls={}, seconds=results[
        'baselines']['seconds'])
    assert 'seconds' in json.loads((tmp_path / 'runs' / 'baselines.json').read_text())
    assert set(ground.finished()) == {
        'seg/gfnet_h_ti-bicubic-s0', 'seg/gfnet_h_ti-bilinear-s0', 'seg/gfnet_h_ti-spatial-s0',
        'pretrain/gfnet_h_ti-s0', 'baselines'}


def test_runs_from_another_classifier_are_rerun_not_mixed(tmp_path):
    ground = _ground(tmp_path, proving_ground.FULL)
    old = _classifier(tmp_path, 'gfnet_h_ti', 1, b'seed 0 weights')
    _seg_from(tmp_path, 'gfnet_h_ti', 'bicubic', 1, 30, old)
    _seg_from(tmp_path, 'gfnet_h_ti', 'bilinear', 1, 30, old)
    # seed 1's classifier trained again: both runs no longer belong to the tables
    new = _classifier(tmp_path, 'gfnet_h_ti', 1, b'seed 1 weights')
    logged = []
    ground.log = logged.append
    assert set(ground.finished()) == {'pretrain/gfnet_h_ti-s1'}
    assert f'was trained from classifier {old[:12]}, pretrain/gfnet_h_ti-s1 is now ' \
        f'{new[:12]}' in logged[0]
    rerun = dict(_seg('gfnet_h_ti', 'bicubic', False, 1, 40),
                 classifier=dict(run='pretrain/gfnet_h_ti-s1', sha256=new))
    ground.plan = _plan(('seg/gfnet_h_ti-bicubic-s1', lambda: dict(rerun)))
    results = ground.run(['seg'])
    assert results['seg/gfnet_h_ti-bicubic-s1']['canvas']['64x64']['whole']['mIoU'] == 41
    assert len(list((tmp_path / 'runs' / 'stale').glob('seg-gfnet_h_ti-bicubic-s1-*.json'))) == 1
    assert 'moved to' in logged[-2] and 'running it again' in logged[-2]
    # the tables need the runs' records only, not the checkpoints (a copied folder)
    (tmp_path / 'pretrain' / 'gfnet_h_ti-s1' / 'classifier.pth').write_bytes(b'other')
    assert 'seg/gfnet_h_ti-bicubic-s1' in ground.finished()
    # but a classifier file changed behind its run's back is not trained from
    with pytest.raises(RuntimeError, match='is not the classifier pretrain/gfnet_h_ti-s1 wrote'):
        ground.classifier('gfnet_h_ti', 1)
    # records copied to another machine without the checkpoint: say so, not a bare OSError
    (tmp_path / 'pretrain' / 'gfnet_h_ti-s1' / 'classifier.pth').unlink()
    with pytest.raises(RuntimeError, match='classifier.pth is gone .* delete .*pretrain-gfnet'):
        ground.classifier('gfnet_h_ti', 1)
    # a copy in the records folder would come back at the next start: named too
    ground.records = tmp_path / 'records'
    ground.records.mkdir()
    shutil.copy2(tmp_path / 'runs' / 'pretrain-gfnet_h_ti-s1.json', ground.records)
    with pytest.raises(RuntimeError) as gone:
        ground.classifier('gfnet_h_ti', 1)
    assert str(gone.value).endswith(
        f"delete {tmp_path / 'runs' / 'pretrain-gfnet_h_ti-s1.json'} and "
        f"{ground.records / 'pretrain-gfnet_h_ti-s1.json'} to pretrain it again")


def test_a_classifier_of_another_recipe_is_set_aside_and_pretrained_again(tmp_path):
    ground = _ground(tmp_path, proving_ground.FULL)
    two = dataclasses.asdict(proving_ground.E.PretrainRecipe(epochs=2))
    sha = _classifier(tmp_path, 'resnet18', 0, recipe=two)
    _seg_from(tmp_path, 'resnet18', None, 0, 30, sha)
    _classifier(tmp_path, 'gfnet_h_ti', 0, sha256=None)  # by an older proving ground
    logged = []
    ground.log = logged.append
    assert set(ground.finished()) == set()
    assert logged[0] == ('pretrain/gfnet_h_ti-s0 left out of the tables: records no sha256 '
                         'of its classifier (an older proving ground)')
    assert logged[1].startswith("pretrain/resnet18-s0 left out of the tables: was pretrained "
                                "with {'epochs': 2")
    assert logged[2].startswith('seg/resnet18-s0 left out of the tables: its classifier '
                                'pretrain/resnet18-s0 was pretrained with')
    with pytest.raises(RuntimeError, match='pretrain/resnet18-s0 was pretrained with .* run '
                                           'the pretrain stage again'):
        ground.classifier('resnet18', 0)
    again = dict(model='resnet18', seed=0, recipe=dataclasses.asdict(ground.budget.pretrain),
                 sha256='b' * 64, work='resnet18-s0')
    ground.plan = _plan(('pretrain/resnet18-s0', lambda: dict(again)))
    assert ground.run(['pretrain'])['pretrain/resnet18-s0']['sha256'] == 'b' * 64
    # the old record and its folder (checkpoint, state) are kept aside, not lost
    aside = list((tmp_path / 'pretrain' / 'stale').glob('resnet18-s0-*'))
    assert len(aside) == 1 and (aside[0] / 'classifier.pth').read_bytes() == b'weights'
    assert len(list((tmp_path / 'runs' / 'stale').glob('pretrain-resnet18-s0-*.json'))) == 1


def test_a_missing_classifier_names_its_stage(tmp_path):
    with pytest.raises(RuntimeError, match='pretrain/resnet18-s1 has not run yet'):
        _ground(tmp_path, proving_ground.QUICK).classifier('resnet18', 1)


def test_plan_without_gfnet_has_no_gfnet_runs(tmp_path):
    peers = proving_ground.only_models(proving_ground.FULL, ['resnet18'])
    names = [p.name for p in _ground(tmp_path, peers).plan(proving_ground.STAGES)]
    assert not [n for n in names if 'gfnet' in n]
    assert [n for n in names if n.endswith('-s0')] == [
        'pretrain/resnet18-s0', 'seg/resnet18-s0', 'seg/resnet18-aug-s0', 'det/resnet18-s0']


def test_blocks_carry_a_run_to_another_machine(tmp_path):
    """--records: a block's records are copied out only once all of them ran; another
    results folder with those records runs none of them again."""
    records = tmp_path / 'records'
    ground = proving_ground.ProvingGround(tmp_path / 'a', proving_ground.FULL,
                                          log=lambda *_: None, records=records)
    blocks = {p.name: p.block for p in ground.plan(proving_ground.STAGES)}
    assert (blocks['seg/gfnet_h_ti-best-aug-s2'] == blocks['pretrain/gfnet_h_ti-s2']
            == 'gfnet_h_ti/2')
    assert blocks['det/resnet18-s0'] == blocks['pretrain/resnet18-s0'] == 'resnet18/0'
    assert blocks['baselines'] == 'baselines'
    sha = 'a' * 64
    made = dict(classifier=dict(run='pretrain/resnet18-s0', sha256=sha), model='resnet18', seed=0)
    actions = {'baselines': lambda: dict(cls={}),
               'pretrain/resnet18-s0': lambda: dict(
                   model='resnet18', seed=0, sha256=sha,
                   recipe=dataclasses.asdict(proving_ground.FULL.pretrain)),
               'seg/resnet18-s0': lambda: dict(made),
               'seg/resnet18-aug-s0': lambda: 1 / 0}  # killed inside the block
    ground.plan = _plan(*((n, lambda n=n: actions[n]()) for n in actions),
                        block=lambda n: 'resnet18/0' if '/' in n else n)
    with pytest.raises(ZeroDivisionError):
        ground.run(proving_ground.STAGES)
    assert sorted(p.name for p in records.glob('*.json')) == ['baselines.json']
    actions['seg/resnet18-aug-s0'] = lambda: dict(made)
    ground.run(proving_ground.STAGES)
    assert len(list(records.glob('*.json'))) == 4
    # a fresh machine: nothing runs again, and the results are the same records
    other = proving_ground.ProvingGround(tmp_path / 'b', proving_ground.FULL,
                                         log=lambda *_: None, records=records)
    other.plan = lambda stages: [p._replace(action=lambda: 1 / 0) for p in ground.plan(stages)]
    again = other.run(proving_ground.STAGES)
    assert again == ground.run(proving_ground.STAGES) and set(again) == set(actions)
