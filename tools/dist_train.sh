#!/usr/bin/env bash
# Distributed training: bash tools/dist_train.sh CONFIG GPUS [train.py options]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT (see dist_run.sh). Without
# GPUs, GPUS CPU processes train with the gloo backend.
set -euo pipefail
exec bash "$(dirname "$0")/dist_run.sh" "$2" train.py "$1" "${@:3}"
