"""genjax alone: train steps under glibc's default malloc against the same steps with
`genjax.core.malloc.keep_freed_memory()` (what `genjax` commands apply), in fresh processes.

Usage: python experiments/malloc/malloc_ab.py [--models=unet_ddpm,dcgan] [--rounds=3]

A thread keeps the malloc arena it first allocated from, so the two settings cannot share a
process: each round runs one child process per setting (order flipped every round); a child
builds and compiles the model's real train step (experiments/torch_speed/run.py's
`build_genjax`, batch 128), runs two warm-up steps and times steps for --target_s seconds.
Prints per model the median img/s of each side, the median over rounds of the speedup
(kept / default) with its range, and the minor page faults per step.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# run.py's train steps (`build_genjax`) live in the PyTorch comparison's folder.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'torch_speed'))


def child(name: str, keep: bool, batch: int, target_s: float) -> None:
  """Times `name`'s train step in this process; prints one JSON line."""
  if keep:  # Before XLA starts its threads.
    from genjax.core import malloc
    assert malloc.keep_freed_memory(), 'malloc_ab.py needs glibc (mallopt).'
  import run as bench
  run = bench.build_genjax(name, batch)[0]
  run(2)
  n, start = 0, time.perf_counter()
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  while time.perf_counter() - start < target_s:
    run(1)
    n += 1
  seconds = time.perf_counter() - start
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
  print(json.dumps({'img_s': n * batch / seconds, 'faults_per_step': faults / n}))


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--models', default='classifier,vae,dcgan,unet_ddpm')
  p.add_argument('--batch', type=int, default=128)
  p.add_argument('--rounds', type=int, default=3)
  p.add_argument('--target_s', type=float, default=8.0)
  p.add_argument('--child', default='', help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    name, keep = args.child.split(':')
    return child(name, keep == 'kept', args.batch, args.target_s)
  print('| model | glibc default img/s | freed memory kept img/s | speedup (min-max) | '
        'page faults per step (default / kept) |')
  print('|---|---|---|---|---|')
  for name in args.models.split(','):
    out = {'default': [], 'kept': []}
    for r in range(args.rounds):
      sides = ['default', 'kept'] if r % 2 == 0 else ['kept', 'default']
      for side in sides:
        res = subprocess.run([sys.executable, os.path.abspath(__file__), f'--child={name}:{side}',
                              f'--batch={args.batch}', f'--target_s={args.target_s}'],
                             capture_output=True, text=True, check=True)
        out[side].append(json.loads(res.stdout.strip().splitlines()[-1]))
    speedups = [k['img_s'] / d['img_s'] for d, k in zip(out['default'], out['kept'])]
    med = {side: statistics.median(x['img_s'] for x in rows) for side, rows in out.items()}
    faults = {side: statistics.median(x['faults_per_step'] for x in rows)
              for side, rows in out.items()}
    print(f'| {name} train | {med["default"]:.0f} | {med["kept"]:.0f} | '
          f'**{statistics.median(speedups):.2f}** ({min(speedups):.2f}-{max(speedups):.2f}) | '
          f'{faults["default"]:,.0f} / {faults["kept"]:,.0f} |', flush=True)


if __name__ == '__main__':
  main()
