"""The tools import the installed package as any user script would: no sys.path edits
at import time (and so no imports below code, flake8's E402). Sibling tools
(``import proving_report``) resolve because ``python tools/X.py`` puts tools/ first on
sys.path; tests that import a tool put tools/ there themselves."""
import ast
from pathlib import Path

import pytest

TOOLS = sorted((Path(__file__).resolve().parents[2] / 'tools').glob('*.py'))


def _module_level(tree):
    """Statements that run at import time (function and class bodies left out)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


@pytest.mark.parametrize('path', TOOLS, ids=lambda p: p.name)
def test_no_sys_path_edits_at_import(path):
    source = path.read_text()
    assert 'E402' not in source, f'{path.name}: imports below code (noqa: E402)'
    for node in _module_level(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == 'path' \
                and isinstance(node.value, ast.Name) and node.value.id == 'sys':
            raise AssertionError(f'{path.name}:{node.lineno} uses sys.path at import time')


@pytest.mark.parametrize('path', TOOLS, ids=lambda p: p.name)
def test_imports_come_first(path):
    """After the docstring only imports, until the first other statement."""
    body = ast.parse(path.read_text()).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    seen_code = False
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            assert not seen_code, f'{path.name}:{node.lineno}: import after code'
        else:
            seen_code = True
