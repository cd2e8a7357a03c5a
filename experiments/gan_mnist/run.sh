#!/usr/bin/env bash
# Trains and evaluates every GAN config of the study on mnist5k, one after another, at low
# priority (the CPU is shared). Usage: experiments/gan_mnist/run.sh [name ...]
# Names: gan dcgan dcgan_hinge cdcgan stylegan cstylegan (default: all). Workdirs: runs/gan_mnist/<name>.
# Rerunning a name resumes it from its last checkpoint (the loop's own resume).
set -euo pipefail
cd "$(dirname "$0")/../.."
GENJAX=${GENJAX:-.venv/bin/genjax}
OUT=${OUT:-runs/gan_mnist}

declare -A CMD=(
  [gan]="--config=configs/gan_mnist.py"
  [dcgan]="--config=configs/dcgan_mnist.py"
  [dcgan_hinge]="--config=configs/dcgan_mnist.py --config.gan.loss=hinge"
  [cdcgan]="--config=configs/cdcgan_mnist.py"
  [stylegan]="--config=configs/stylegan_mnist.py"
  [cstylegan]="--config=configs/cstylegan_mnist.py"
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(gan dcgan dcgan_hinge cdcgan stylegan cstylegan)
for name in "${names[@]}"; do
  mkdir -p "$OUT/$name"
  start=$(date +%s)
  # shellcheck disable=SC2086
  nice -n 10 "$GENJAX" train ${CMD[$name]} --workdir="$OUT/$name" 2>&1 | tee -a "$OUT/$name/train.log"
  echo "{\"name\": \"$name\", \"wall_s\": $(( $(date +%s) - start )), \"loadavg_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$OUT/$name/wall.jsonl"
done
.venv/bin/python experiments/gan_mnist/analyze.py "$OUT"
