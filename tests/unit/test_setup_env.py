"""tools/setup_env.sh refuses, in one line and before building mmcv, a CUDA build that
cannot work (no nvcc, nvcc of another major version than torch's CUDA, no architecture
to build for) and leaves the CPU path as it was.

Every run uses a copy of the script in a temporary repository, so nothing here can touch
the shared .venv/. Most runs use a fake interpreter that prints what the script's torch
probe would print, and fake nvcc scripts; two use this interpreter's real torch.
"""
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / 'tools' / 'setup_env.sh'
CPU_FACTS = dict(torch='2.11.0+cu128', cuda='12.8', rocm='0', available='0', devices='0',
                 cuda_home='', arch_error='IndexError: list index out of range')


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def fake_nvcc(cuda_home: Path, release: str) -> Path:
    """An nvcc printing what the real one prints, for CUDA `release` ('12.8')."""
    return executable(cuda_home / 'bin' / 'nvcc', f"""#!/bin/sh
echo 'nvcc: NVIDIA (R) Cuda compiler driver'
echo 'Copyright (c) 2005-2025 NVIDIA Corporation'
echo 'Built on Fri_Feb_21_20:23:50_PST_2025'
echo 'Cuda compilation tools, release {release}, V{release}.93'
echo 'Build cuda_{release}.r{release}/compiler.35583870_0'
""")


@pytest.fixture
def repo(tmp_path):
    """A temporary repository holding a copy of the script (it works in its parent dir)."""
    root = tmp_path / 'repo'
    (root / 'tools').mkdir(parents=True)
    shutil.copy(SCRIPT, root / 'tools' / 'setup_env.sh')
    (root / 'setup.py').write_text('# stand-in\n')
    (root / 'requirements').mkdir()
    (root / 'requirements' / 'constraints.txt').write_text('mmcv==2.1.0\n')
    return root


@pytest.fixture
def state(tmp_path):
    """Directory for the fakes' state; its bin/ is first on PATH (no real nvcc on it)."""
    path = tmp_path / 'state'
    (path / 'bin').mkdir(parents=True)
    return path


def fake_python(state: Path, **facts) -> Path:
    """An interpreter answering the script's three python calls: the torch probe (the
    given facts), `import mmcv._ext` and the check for mmcv's CUDA ops (state files)."""
    (state / 'facts').write_text(''.join(f'{k}={v}\n' for k, v in facts.items()))
    return executable(state / 'python', f"""#!/bin/sh
case "$2" in
  *get_compiling_cuda_version*) test -f '{state}/mmcv_cuda'; exit $? ;;
  *'import mmcv._ext'*) test -f '{state}/mmcv'; exit $? ;;
  *'import torch'*) cat '{state}/facts' ;;
  *) echo "unexpected python call: $*" >&2; exit 9 ;;
esac
""")


def run(repo: Path, state: Path, *args, **env_vars):
    env = {'PATH': f'{state / "bin"}:/usr/bin:/bin', 'HOME': str(state), 'LC_ALL': 'C'}
    env.update(env_vars)
    result = subprocess.run(['bash', str(repo / 'tools' / 'setup_env.sh'), *args], env=env,
                            capture_output=True, text=True, timeout=120)
    assert not (repo / '.venv').exists() or (repo / '.venv' / 'fake').exists()
    return result


def check(repo, state, python, **env_vars):
    return run(repo, state, '--check-gpu-build', str(python), **env_vars)


def one_error_line(result) -> str:
    assert result.returncode == 1, result
    assert result.stdout == ''
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
    return lines[0]


# (a) CUDA build and no nvcc anywhere torch looks: what to install, and how to go CPU-only
@pytest.mark.parametrize('env, how, cpu_only', [
    ({}, 'torch sees 1 GPU(s)', 'CUDA_VISIBLE_DEVICES= with FORCE_CUDA unset'),
    ({'FORCE_CUDA': '1', 'TORCH_CUDA_ARCH_LIST': '9.0'}, 'FORCE_CUDA=1', 'unset FORCE_CUDA'),
])
def test_cuda_build_without_nvcc_is_refused(repo, state, env, how, cpu_only):
    gpu = env == {}
    python = fake_python(state, **{**CPU_FACTS, 'available': str(int(gpu)),
                                   'devices': str(int(gpu)), 'arch_error': ''})
    line = one_error_line(check(repo, state, python, **env))
    assert 'torch 2.11.0+cu128 is built for CUDA 12.8' in line
    assert f'({how})' in line and 'no nvcc was found (CUDA_HOME unset, no nvcc on PATH' in line
    assert 'install the CUDA 12.8 toolkit and set CUDA_HOME' in line and cpu_only in line


def test_cuda_home_without_nvcc_is_refused(repo, state, tmp_path):
    home = tmp_path / 'cuda-12.8'
    home.mkdir()
    python = fake_python(state, **{**CPU_FACTS, 'cuda_home': home, 'arch_error': ''})
    line = one_error_line(check(repo, state, python, FORCE_CUDA='1', CUDA_HOME=str(home),
                                TORCH_CUDA_ARCH_LIST='8.0'))
    assert f'no nvcc at {home}/bin/nvcc (CUDA_HOME={home})' in line
    assert 'install the CUDA 12.8 toolkit' in line


# (b) nvcc of another major version: refused, naming both versions
def test_major_mismatch_is_refused(repo, state, tmp_path):
    nvcc = fake_nvcc(tmp_path / 'cuda-11.8', '11.8')
    python = fake_python(state, **{**CPU_FACTS, 'cuda_home': tmp_path / 'cuda-11.8',
                                   'available': '1', 'devices': '1', 'arch_error': ''})
    line = one_error_line(check(repo, state, python, CUDA_HOME=str(tmp_path / 'cuda-11.8')))
    assert f'nvcc at {nvcc} is CUDA 11.8 but torch 2.11.0+cu128 is built for CUDA 12.8' in line
    assert 'install the CUDA 12.8 toolkit' in line


# (c) matching version: passes; a minor mismatch passes with torch's warning
@pytest.mark.parametrize('release, warned', [('12.8', False), ('12.4', True)])
def test_matching_major_passes(repo, state, tmp_path, release, warned):
    fake_nvcc(state, release)  # nvcc on PATH: torch's CUDA_HOME is then its parent
    python = fake_python(state, **{**CPU_FACTS, 'cuda_home': state, 'arch_error': ''})
    result = check(repo, state, python, FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='8.0;9.0')
    assert result.returncode == 0, result
    assert ('minor-version mismatch' in result.stderr) == warned
    assert f'ok: mmcv ops will build with CUDA (nvcc {release} at {state}/bin/nvcc' in result.stderr
    assert 'TORCH_CUDA_ARCH_LIST=8.0;9.0' in result.stderr


def test_unreadable_nvcc_version_is_not_checked_like_torch(repo, state, tmp_path):
    executable(state / 'bin' / 'nvcc', '#!/bin/sh\necho "some other compiler"\n')
    python = fake_python(state, **{**CPU_FACTS, 'cuda_home': state, 'available': '1',
                                   'devices': '1', 'arch_error': ''})
    result = check(repo, state, python)
    assert result.returncode == 0 and 'CUDA version not checked' in result.stderr, result


# FORCE_CUDA=1 on a build node with no GPU: torch needs TORCH_CUDA_ARCH_LIST
def test_forced_build_without_gpu_needs_an_arch_list(repo, state):
    fake_nvcc(state, '12.8')
    python = fake_python(state, **{**CPU_FACTS, 'cuda_home': state})
    line = one_error_line(check(repo, state, python, FORCE_CUDA='1'))
    assert 'set TORCH_CUDA_ARCH_LIST, e.g. 8.0 (A100) or 9.0 (H100)' in line


def test_forced_build_with_cpu_torch_is_refused(repo, state):
    python = fake_python(state, **{**CPU_FACTS, 'torch': '2.11.0+cpu', 'cuda': '',
                                   'arch_error': ''})
    line = one_error_line(check(repo, state, python, FORCE_CUDA='1'))
    assert 'torch 2.11.0+cpu is a CPU-only build' in line


# (d) no CUDA involved (no GPU seen, FORCE_CUDA not "1", as mmcv's setup.py reads it)
@pytest.mark.parametrize('force', [None, '0', 'true'])
def test_cpu_build_passes(repo, state, force):
    python = fake_python(state, **CPU_FACTS)
    env = {} if force is None else {'FORCE_CUDA': force}
    result = check(repo, state, python, **env)
    assert result.returncode == 0, result
    assert 'ok: mmcv ops build for CPU only' in result.stderr


def test_unknown_argument_is_refused(repo, state):
    result = run(repo, state, '--bogus')
    assert result.returncode == 2 and 'usage:' in result.stderr


# The whole script, with a fake .venv: the check runs before pip builds mmcv; the CPU
# path makes the same pip calls as before.
def fake_venv(repo: Path, state: Path, **facts):
    python = fake_python(state, **facts)
    venv_bin = repo / '.venv' / 'bin'
    venv_bin.mkdir(parents=True)
    (repo / '.venv' / 'fake').touch()
    os.symlink(python, venv_bin / 'python')
    executable(venv_bin / 'pip', f"""#!/bin/sh
echo "MMCV_WITH_OPS=$MMCV_WITH_OPS TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST $*" >> '{state}/pip.log'
case "$*" in *mmcv==2.1.0*)
  touch '{state}/mmcv'; if [ -n "$FAKE_WHEEL_HAS_CUDA" ]; then touch '{state}/mmcv_cuda'; fi ;;
esac
exit 0
""")


def pip_calls(state: Path):
    log = state / 'pip.log'
    return log.read_text().splitlines() if log.exists() else []


def test_cpu_path_of_the_whole_script_is_unchanged(repo, state):
    fake_venv(repo, state, **CPU_FACTS)
    result = run(repo, state)
    assert result.returncode == 0, result
    assert result.stderr == ('building mmcv 2.1.0 with its ops (first time ~25 min; '
                             'cached afterwards)\n')
    c = '-c requirements/constraints.txt'
    assert pip_calls(state) == [
        f'MMCV_WITH_OPS= TORCH_CUDA_ARCH_LIST= install -q {c} pip setuptools wheel ninja',
        f'MMCV_WITH_OPS= TORCH_CUDA_ARCH_LIST= install -q {c} torch torchvision',
        f'MMCV_WITH_OPS=1 TORCH_CUDA_ARCH_LIST= install -q --no-build-isolation {c} mmcv==2.1.0',
        f'MMCV_WITH_OPS= TORCH_CUDA_ARCH_LIST= install -q {c} -e .[tests,deploy]']
    assert (repo / '.venv' / '.installed').exists()


def test_whole_script_stops_before_building_mmcv(repo, state):
    fake_venv(repo, state, **{**CPU_FACTS, 'available': '1', 'devices': '1', 'arch_error': ''})
    line = one_error_line(run(repo, state))
    assert 'no nvcc was found' in line
    assert not any('mmcv' in call for call in pip_calls(state))
    assert not (repo / '.venv' / '.installed').exists()


@pytest.mark.parametrize('wheel_has_cuda', [True, False])
def test_whole_script_gpu_build(repo, state, wheel_has_cuda):
    fake_nvcc(state, '12.8')
    fake_venv(repo, state, **{**CPU_FACTS, 'cuda_home': state, 'available': '1',
                              'devices': '1', 'arch_error': ''})
    env = {'TORCH_CUDA_ARCH_LIST': '9.0',
           **({'FAKE_WHEEL_HAS_CUDA': '1'} if wheel_has_cuda else {})}
    result = run(repo, state, **env)
    calls = pip_calls(state)
    assert 'MMCV_WITH_OPS=1 TORCH_CUDA_ARCH_LIST=9.0 install -q --no-build-isolation' in calls[2]
    assert result.returncode == (0 if wheel_has_cuda else 1), result
    if not wheel_has_cuda:  # e.g. pip reused a CPU-only wheel from its cache
        assert 'error: mmcv was installed without CUDA ops' in result.stderr
        assert len(calls) == 3


# The probe with this interpreter's real torch (a CUDA build of torch on a machine
# without a GPU: the CPU path), and a forced CUDA build against a fake nvcc of another
# major version. The two runs go side by side: each imports torch.
def test_real_torch_probe(repo, state, tmp_path):
    script = str(repo / 'tools' / 'setup_env.sh')
    base = {'PATH': f'{state / "bin"}:/usr/bin:/bin', 'HOME': str(state), 'LC_ALL': 'C',
            'CUDA_VISIBLE_DEVICES': ''}
    cuda = torch.version.cuda
    other = f'{int(cuda.split(".")[0]) - 1}.{cuda.split(".")[1]}' if cuda else '12.8'
    fake_nvcc(tmp_path / 'other', other)
    forced = {**base, 'FORCE_CUDA': '1', 'TORCH_CUDA_ARCH_LIST': '9.0',
              'CUDA_HOME': str(tmp_path / 'other')}
    procs = [subprocess.Popen(['bash', script, '--check-gpu-build', sys.executable], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for env in (base, forced)]
    (cpu_out, cpu_err), (forced_out, forced_err) = (p.communicate(timeout=120) for p in procs)
    assert not (repo / '.venv').exists()

    assert procs[0].returncode == 0, cpu_err
    assert f'ok: mmcv ops build for CPU only (torch {torch.__version__} sees no GPU' in cpu_err

    assert procs[1].returncode == 1 and forced_out == '', forced_err
    lines = forced_err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), forced_err
    if cuda is None:
        assert 'is a CPU-only build' in lines[0]
    else:
        assert (f'nvcc at {tmp_path}/other/bin/nvcc is CUDA {other} but torch '
                f'{torch.__version__} is built for CUDA {cuda}') in lines[0]


def test_arch_list_torch_rejects_is_refused(repo, state):
    fake_nvcc(state, '12.8')
    python = fake_python(state, **{**CPU_FACTS, 'cuda_home': state, 'arch_error':
                                   'ValueError: Unknown CUDA arch (7.1) or GPU not supported'})
    line = one_error_line(check(repo, state, python, FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='7.1'))
    assert "TORCH_CUDA_ARCH_LIST='7.1' (ValueError: Unknown CUDA arch (7.1)" in line
