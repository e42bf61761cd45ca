#!/usr/bin/env bash
# The demo sweep: 3 learning rates × 2 widths × 3 seeds, each run wrapped by
# `labbook run` with a one-line note on what it tests.
set -euo pipefail
cd "$(dirname "$0")"
for lr in 0.03 0.3 1.0; do
  for hidden in 8 64; do
    for seed in 0 1 2; do
      why="Does width ${hidden} at lr ${lr} separate the spirals? (seed ${seed})"
      labbook run --project spirals --group "lr=${lr} hidden=${hidden}" --tag grid --why "$why" -- \
        python train.py --lr "$lr" --hidden "$hidden" --seed "$seed" --why "$why" >/dev/null
    done
  done
done
