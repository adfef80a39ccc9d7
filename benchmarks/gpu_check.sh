#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) as the device tool runs it: under 8 minutes, one
# table on stdout, the JSON beside it in $OUT when the device tool gives one.
#   run: bash benchmarks/gpu_check.sh            (on the lent machine, from the repo root)
# Packages the machine lacks (open_clip, faiss, diffusers) can be carried as a folder of
# pure-Python installs: CONVIR_GPU_SITE=.gpu_site (see docs/performance.md).
set -u
cd "$(dirname "$0")/.."
if [ -n "${CONVIR_GPU_SITE:-}" ]; then
  export PYTHONPATH="${CONVIR_GPU_SITE}${PYTHONPATH:+:$PYTHONPATH}"
fi
PY="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
extra=()
if [ -n "${OUT:-}" ]; then extra=(--json-out "$OUT/gpu_check.json"); fi
exec timeout 450 "$PY" benchmarks/gpu_check.py --device cuda --budget-s 360 "${extra[@]}" "$@"
