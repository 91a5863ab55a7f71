#!/usr/bin/env bash
# Shared launcher of dist_train.sh / dist_test.sh: dist_run.sh NPROC SCRIPT [args]
# runs tools/SCRIPT in NPROC processes per node with torchrun. Multi-node: NNODES,
# NODE_RANK, MASTER_ADDR, PORT. Without GPUs the processes use the gloo backend.
set -euo pipefail
NPROC=$1
SCRIPT=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-$([ -x "$HERE/../.venv/bin/python" ] && echo "$HERE/../.venv/bin/python" || echo python)}

PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$HERE/$SCRIPT" "${@:3}" --launcher pytorch
