#!/usr/bin/env bash
# Create (or complete) the project's virtual environment at .venv/, idempotently.
#
# Order matters: mmcv 2.1.0 has no wheel for torch 2.11, so it is built from
# source with its C++ ops, which needs torch importable at build time
# (--no-build-isolation) and setuptools<70. The first build takes ~25 minutes on
# 2 cores; pip caches the wheel, so later environments install it in seconds.
#
# GPU machines (docs/install_gpu.md): mmcv 2.1.0 compiles its ops as CUDA
# extensions when torch sees a GPU or FORCE_CUDA=1. Before that build this
# script checks that torch's CUDA_HOME holds an nvcc whose major version matches
# torch.version.cuda (torch's own rule) and stops with one line if not.
# TORCH_CUDA_ARCH_LIST, FORCE_CUDA and CUDA_VISIBLE_DEVICES pass through to the
# build unchanged.
#
#   bash tools/setup_env.sh                            # make the environment
#   bash tools/setup_env.sh --check-gpu-build [PYTHON] # only the check, with PYTHON
#                                                      # (default .venv/bin/python)
set -euo pipefail

# Prints key=value lines about the torch that will build mmcv (read by gpu_build_check).
GPU_PROBE='
import logging
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
one_line = lambda e: ("%s: %s" % (type(e).__name__, e)).replace("\n", " ")
try:
    import torch
    from torch.utils import cpp_extension as ce
    print("torch=" + torch.__version__)
    print("cuda=" + (torch.version.cuda or ""))
    print("rocm=%d" % bool(getattr(torch.version, "hip", None) and getattr(ce, "ROCM_HOME", None)))
    available = torch.cuda.is_available()
    print("available=%d" % available)
    print("devices=%d" % (torch.cuda.device_count() if available else 0))
    print("cuda_home=" + (ce.CUDA_HOME or ""))
    arch_error = ""
    if torch.version.cuda and hasattr(ce, "_get_cuda_arch_flags"):
        try:
            ce._get_cuda_arch_flags()  # what the build does with TORCH_CUDA_ARCH_LIST
        except Exception as e:
            arch_error = one_line(e)
    print("arch_error=" + arch_error)
except Exception as e:
    print("probe_error=" + one_line(e))
'

# gpu_build_check PYTHON [verbose]: decides, as mmcv 2.1.0's setup.py does, whether
# the ops build with CUDA, and if so checks the toolkit the way torch's
# cpp_extension will (CUDA_HOME / CUDA_PATH, else nvcc on PATH, else
# /usr/local/cuda; nvcc --version "release X.Y"; a major mismatch is refused, a
# minor one only warned about). Returns 1 after one "error: ..." line on stderr.
# Sets GPU_BUILD=1 when the ops will build with CUDA.
GPU_BUILD=0
gpu_build_check() {
  local py=$1 verbose=${2:-} out line
  local torch_v='' cuda_v='' rocm=0 available=0 devices=0 cuda_home='' arch_error='' probe_error=''
  GPU_BUILD=0
  if ! out=$("$py" -c "$GPU_PROBE" 2>/dev/null); then
    echo "error: cannot run $py to read torch's CUDA build (is torch installed there?)" >&2
    return 1
  fi
  while IFS= read -r line; do
    case ${line%%=*} in
      torch) torch_v=${line#*=} ;;
      cuda) cuda_v=${line#*=} ;;
      rocm) rocm=${line#*=} ;;
      available) available=${line#*=} ;;
      devices) devices=${line#*=} ;;
      cuda_home) cuda_home=${line#*=} ;;
      arch_error) arch_error=${line#*=} ;;
      probe_error) probe_error=${line#*=} ;;
    esac
  done <<< "$out"
  if [ -n "$probe_error" ] || [ -z "$torch_v" ]; then
    echo "error: cannot read torch's CUDA build with $py: ${probe_error:-no torch version}" >&2
    return 1
  fi
  gpu_check_say() { if [ -n "$verbose" ]; then echo "gpu build check: $*" >&2; fi; }

  # mmcv 2.1.0 setup.py: DIOPI first, then ROCm / torch.cuda.is_available() / FORCE_CUDA == "1".
  local why
  if [ "${MMCV_WITH_DIOPI:-0}" = 1 ]; then
    gpu_check_say "ok: MMCV_WITH_DIOPI=1, mmcv builds CPU+DIPU ops; no CUDA toolkit check"
    return 0
  elif [ "$rocm" = 1 ]; then
    gpu_check_say "ok: torch $torch_v is a ROCm build; mmcv builds HIP ops, which this check does not cover"
    return 0
  elif [ "$available" = 1 ]; then
    why="torch sees $devices GPU(s)"
  elif [ "${FORCE_CUDA:-0}" = 1 ]; then
    why="FORCE_CUDA=1"
  else
    gpu_check_say "ok: mmcv ops build for CPU only (torch $torch_v sees no GPU, FORCE_CUDA is not 1)"
    return 0
  fi
  GPU_BUILD=1

  local cpu_only
  if [ "$available" = 1 ]; then
    cpu_only="or build CPU-only ops by hiding the GPUs: CUDA_VISIBLE_DEVICES= with FORCE_CUDA unset (FORCE_CUDA=0 alone does not)"
  else
    cpu_only="or unset FORCE_CUDA to build CPU-only ops"
  fi
  if [ -z "$cuda_v" ]; then
    echo "error: FORCE_CUDA=1 but torch $torch_v is a CPU-only build (torch.version.cuda is None): install a CUDA build of torch, $cpu_only" >&2
    return 1
  fi

  local found_by
  if [ -n "${CUDA_HOME:-}" ]; then found_by="CUDA_HOME=$CUDA_HOME"
  elif [ -n "${CUDA_PATH:-}" ]; then found_by="CUDA_PATH=$CUDA_PATH"
  elif command -v nvcc >/dev/null 2>&1; then found_by="nvcc on PATH: $(command -v nvcc)"
  elif [ -n "$cuda_home" ]; then found_by="default $cuda_home"
  else found_by="CUDA_HOME unset, no nvcc on PATH, no /usr/local/cuda"
  fi
  local install="install the CUDA $cuda_v toolkit and set CUDA_HOME to it"
  if [ -z "$cuda_home" ]; then
    echo "error: torch $torch_v is built for CUDA $cuda_v and mmcv will build CUDA ops ($why) but no nvcc was found ($found_by): $install, $cpu_only" >&2
    return 1
  fi
  local nvcc=$cuda_home/bin/nvcc nvcc_out
  if [ ! -x "$nvcc" ]; then
    echo "error: torch $torch_v is built for CUDA $cuda_v and mmcv will build CUDA ops ($why) but there is no nvcc at $nvcc ($found_by): $install, $cpu_only" >&2
    return 1
  fi
  if ! nvcc_out=$("$nvcc" --version 2>&1); then
    nvcc_out=$(printf '%s' "$nvcc_out" | tr '\n' ' ')
    echo "error: $nvcc --version failed ($nvcc_out): $install, $cpu_only" >&2
    return 1
  fi
  local arch="TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-}"
  [ -n "${TORCH_CUDA_ARCH_LIST:-}" ] || arch="TORCH_CUDA_ARCH_LIST unset: built for the visible GPUs only"
  local nv_v=unknown
  if [[ $nvcc_out =~ release\ ([0-9]+)\.([0-9]+) ]]; then
    local nv_major=${BASH_REMATCH[1]} nv_minor=${BASH_REMATCH[2]}
    nv_v=$nv_major.$nv_minor
    local t_major=${cuda_v%%.*} t_minor=0
    [[ $cuda_v == *.* ]] && t_minor=${cuda_v#*.} && t_minor=${t_minor%%.*}
    if [ "$((10#$nv_major))" -ne "$((10#$t_major))" ]; then
      echo "error: nvcc at $nvcc is CUDA $nv_v but torch $torch_v is built for CUDA $cuda_v (torch refuses a major-version mismatch; $found_by): $install, $cpu_only" >&2
      return 1
    elif [ "$((10#$nv_minor))" -ne "$((10#$t_minor))" ]; then
      echo "warning: nvcc at $nvcc is CUDA $nv_v, torch $torch_v is built for CUDA $cuda_v: a minor-version mismatch, which torch accepts with a warning" >&2
    fi
  else
    # torch skips its version check when it cannot read one; so does this script
    echo "warning: no 'release X.Y' in the output of $nvcc --version; CUDA version not checked" >&2
  fi

  if [ -n "$arch_error" ]; then
    if [ "$devices" = 0 ] && [[ ${TORCH_CUDA_ARCH_LIST:-native} == native ]]; then
      echo "error: $why but no GPU is visible, so torch cannot pick the architecture to build for: set TORCH_CUDA_ARCH_LIST, e.g. 8.0 (A100) or 9.0 (H100)" >&2
    else
      echo "error: torch $torch_v cannot work out the architectures to build for from TORCH_CUDA_ARCH_LIST='${TORCH_CUDA_ARCH_LIST:-}' ($arch_error): use values such as 8.0 (A100) or 9.0 (H100), separated by ';' or spaces" >&2
    fi
    return 1
  fi
  echo "gpu build check: ok: mmcv ops will build with CUDA (nvcc $nv_v at $nvcc, torch $torch_v for CUDA $cuda_v; $why; $arch)" >&2
  return 0
}

# mmcv_has_cuda_ops PYTHON: false when the installed mmcv._ext was compiled without
# CUDA (e.g. pip reused a CPU-only mmcv wheel from its cache).
mmcv_has_cuda_ops() {
  "$1" -c '
import sys
try:
    import mmcv._ext as e
except Exception:
    sys.exit(0)  # reported by the import check below
sys.exit(e.get_compiling_cuda_version() == "not available")'
}

case ${1:-} in
  '') ;;
  --check-gpu-build)
    check_py=${2:-.venv/bin/python}
    # a relative PYTHON path is taken from the caller's directory (.venv/bin/python: the repository's)
    if [ $# -ge 2 ] && [[ $check_py == */* && $check_py != /* ]]; then check_py=$PWD/$check_py; fi
    cd "$(dirname "$0")/.."
    if [[ $check_py == */* ]] && [ ! -x "$check_py" ]; then
      echo "error: no python at $check_py: run make env first, or pass a python with torch: $0 --check-gpu-build PYTHON" >&2
      exit 1
    fi
    if gpu_build_check "$check_py" verbose; then exit 0; else exit 1; fi ;;
  *)
    echo "usage: $0 [--check-gpu-build [PYTHON]]" >&2
    exit 2 ;;
esac

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
PIP="$VENV/bin/pip"
CONSTRAINTS=requirements/constraints.txt
STAMP="$VENV/.installed"
fingerprint=$(cat setup.py "$CONSTRAINTS" tools/setup_env.sh | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$fingerprint" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$PIP" install -q -c "$CONSTRAINTS" pip setuptools wheel ninja
"$PIP" install -q -c "$CONSTRAINTS" torch torchvision
if ! "$VENV/bin/python" -c 'import mmcv._ext' 2>/dev/null; then
  # stops with one line when the CUDA toolkit does not fit torch (GPU machines only)
  gpu_build_check "$VENV/bin/python" || exit 1
  echo "building mmcv 2.1.0 with its ops (first time ~25 min; cached afterwards)" >&2
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "$PIP" install -q --no-build-isolation \
    -c "$CONSTRAINTS" mmcv==2.1.0
  if [ "$GPU_BUILD" = 1 ] && ! mmcv_has_cuda_ops "$VENV/bin/python"; then
    echo "error: mmcv was installed without CUDA ops, likely a CPU-only wheel from pip's cache: run $PIP uninstall -y mmcv && $PIP cache remove mmcv, then retry" >&2
    exit 1
  fi
fi
"$VENV/bin/python" -c 'import mmcv._ext' || {
  echo "mmcv was installed without its ops (mmcv._ext missing); remove .venv and retry" >&2
  exit 1
}
"$PIP" install -q -c "$CONSTRAINTS" -e '.[tests,deploy]'
echo "$fingerprint" > "$STAMP"
