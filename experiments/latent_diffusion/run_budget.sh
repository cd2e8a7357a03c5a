#!/bin/bash
# The budget run of this study: the whole pipeline under a wall-clock limit (the LDM stage is
# stopped by SIGTERM, which checkpoints, when time is up), then a quick guidance sweep.
#   flock /tmp/genjax-cpu.lock bash experiments/latent_diffusion/run_budget.sh W STOP_AT_HH:MM NUM
set -u
W=${1:-runs/ldm}
STOP=${2:-}
NUM=${3:-1000}
start=$(date -u +%s)
limit=1500  # 25 minutes of training at most.
if [ -n "$STOP" ]; then
  left=$(( $(date -u -d "$STOP" +%s) - start ))
  [ "$left" -lt "$limit" ] && limit=$left
fi
echo "START $(date -u) training limit ${limit}s"
/usr/bin/time -f "TIME train wall %e s user %U s sys %S s" \
  timeout -s TERM "$limit" .venv/bin/genjax train --config=configs/ldm_mnist.py --workdir="$W"
echo "TRAIN-END $(date -u) rc=$?"
if [ -d "$W/ldm/checkpoints" ]; then
  /usr/bin/time -f "TIME analyze wall %e s user %U s sys %S s" \
    .venv/bin/python experiments/latent_diffusion/analyze.py --workdir="$W" --num="$NUM" \
    --weights=0,1,2,4,8
fi
echo "END $(date -u)"
