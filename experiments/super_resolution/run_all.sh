#!/usr/bin/env bash
# The study's runs, one after another (run it under the shared CPU lock on a shared machine):
#   flock /tmp/genjax-cpu.lock bash experiments/super_resolution/run_all.sh
# Trains the five configs into runs/sr/, then measures everything (sweep.py) and the
# speed against PyTorch (torch_speed.py). Wall and CPU seconds of each training: times.txt.
set -u
cd "$(dirname "$0")/../.."
G=.venv/bin/genjax
OUT=experiments/super_resolution
mkdir -p runs/sr
train() {  # name [overrides...]
  local name=$1; shift
  /usr/bin/time -f "$name wall_s=%e user_s=%U sys_s=%S" -a -o $OUT/times.txt \
    $G train --config=configs/$name.py --workdir=runs/sr/$name "$@" 2>&1 | grep -v '^[WI][0-9]'
}
train rrdb_psnr_mnist
train esrgan_mnist --config.sr.init_from=runs/sr/rrdb_psnr_mnist
train sr_diffusion_mnist
train rrdb_psnr_photos
train esrgan_photos --config.sr.init_from=runs/sr/rrdb_psnr_photos
.venv/bin/python $OUT/sweep.py --runs=runs/sr --out=$OUT 2>&1 | grep -v '^[WI][0-9]'
.venv/bin/python $OUT/torch_speed.py 2>&1 | grep -v '^[WI][0-9]' | tee $OUT/torch_speed.txt
