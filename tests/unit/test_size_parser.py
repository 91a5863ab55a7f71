"""gfnet_dense.cli.parse_size: the one reading of image sizes that every tool taking
sizes shares (benchmark.py --sizes, export_onnx.py --verify / --benchmark / --profile,
flops_table.py --sizes): ``HxW`` or ``N`` for NxN, whole numbers of at least 2."""
import argparse
import ast
import os.path as osp
import sys

import pytest

from gfnet_dense.cli import MIN_SIZE, format_size, parse_size
from helpers import ROOT, load_tool


@pytest.mark.parametrize('text,size', [
    ('512x1024', (512, 1024)), ('1024x512', (1024, 512)), ('512', (512, 512)),
    ('2', (2, 2)), ('2x2', (2, 2)), ('64X96', (64, 96)), ('2048x1024', (2048, 1024)),
    ('3x100000', (3, 100000)),
])
def test_accepted_forms(text, size):
    assert parse_size(text) == size
    assert all(type(v) is int for v in parse_size(text))
    assert parse_size(format_size(size)) == size


@pytest.mark.parametrize('text', [
    '', 'x', '512x', 'x512', '512xx512', '512x512x3', '512*512', '512,512', '512 512',
    '512-512', ' 512', '512 ', '512\n', '\t512', '512 x 512', '+512', '-512', '512x-2',
    '5e2', '512.0', '512.5x2', '0x512', '0512', '512x0512', '0b11', '0x1F', '१२३',
    '５１２', 'inf', 'nan', 'abc', 'NxN', 'HxW',
])
def test_refused_forms_name_the_value_and_the_form(text):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse_size(text)
    message = str(info.value)
    assert repr(text) in message and 'HxW' in message and 'NxN' in message, message


@pytest.mark.parametrize('text', ['1', '1x512', '512x1'])
def test_sides_below_the_minimum_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match=f'at least {MIN_SIZE}') as info:
        parse_size(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize('value', [None, 512, (512, 512), b'512'])
def test_non_strings_are_refused(value):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(value)


def test_argparse_prints_the_message_and_exits_2(capsys):
    parser = argparse.ArgumentParser(prog='tool')
    parser.add_argument('--sizes', nargs='+', type=parse_size)
    assert parser.parse_args(['--sizes', '512', '64x96']).sizes == [(512, 512), (64, 96)]
    with pytest.raises(SystemExit) as info:
        parser.parse_args(['--sizes', '512', '64x'])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --sizes: invalid size '64x': give HxW" in err


# the tools ---------------------------------------------------------------------------

def _tool_module(name):
    sys.path.insert(0, osp.join(ROOT, 'tools'))  # tools import their sibling tools
    try:
        return load_tool(name)
    finally:
        sys.path.remove(osp.join(ROOT, 'tools'))


def test_no_tool_has_a_size_parser_of_its_own():
    for path in sorted(osp.join(ROOT, 'tools', f) for f in ('benchmark.py', 'export_onnx.py',
                                                           'flops_table.py')):
        with open(path) as f:
            tree = ast.parse(f.read())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert 'parse_size' not in names, path
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    and n.module == 'gfnet_dense.cli' for a in n.names}
        assert 'parse_size' in imported, path


def test_benchmark_reads_sizes_with_the_shared_parser(capsys):
    benchmark = _tool_module('benchmark')
    # rows and targets name sizes as HxW: N is written out
    assert benchmark.parse_args(['--sizes', '512', '64x96']).sizes == ['512x512', '64x96']
    assert benchmark.parse_args(['--sizes', '64X96']).sizes == ['64x96']
    for bad in ('512x', '1x64', '64x96x3', '-64'):
        with pytest.raises(SystemExit) as info:
            benchmark.parse_args(['--sizes', bad])
        assert info.value.code == 2
        assert f"invalid size '{bad}'" in capsys.readouterr().err


def test_flops_table_reads_sizes_with_the_shared_parser(capsys):
    flops_table = _tool_module('flops_table')
    assert flops_table.parse_args([]).sizes == [(224, 224), (512, 512)]
    assert flops_table.parse_args(['--sizes', '224', '96x128']).sizes == [(224, 224), (96, 128)]
    with pytest.raises(SystemExit) as info:
        flops_table.parse_args(['--sizes', '224.5'])
    assert info.value.code == 2 and "invalid size '224.5'" in capsys.readouterr().err


@pytest.mark.parametrize('flag', ['--verify', '--benchmark', '--profile'])
def test_export_onnx_reads_sizes_with_the_shared_parser(flag, capsys, tmp_path):
    """Refused while parsing the command line, before anything is built or exported."""
    export_onnx = _tool_module('export_onnx')
    out = str(tmp_path / 'x.onnx')
    with pytest.raises(SystemExit) as info:
        export_onnx.main(['affnet_et', '--out', out, flag, '48x'])
    assert info.value.code == 2 and "invalid size '48x'" in capsys.readouterr().err
    # N is NxN: refused here only because the file would be exported for 512x512
    with pytest.raises(SystemExit) as info:
        export_onnx.main(['affnet_et', '--out', out, flag, '48'])
    assert info.value.code == 2
    assert f'{flag} 48x48: without --dynamic' in capsys.readouterr().err
    assert not osp.exists(out)
