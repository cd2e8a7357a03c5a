"""Losses of every config's smoke run and of 200 steps of four configs, for before/after checks.

A structural change (issue 20: one shape for every family) must not change what
is measured. This script trains, in one subprocess per run (each with its
config's XLA:CPU convolution library, as `genjax train` sets it):
  - every `configs/*.py:smoke` to its end (2 steps, evaluation, pictures);
    online data sets run on TFDS's mock data, as the test suite does;
  - the first 200 steps of classifier_mnist, vae_mnist, dcgan_mnist, ddpm_mnist
    (their own schedules: `stop_at_step=200`, no evaluation),
and writes every logged loss to --out as JSON. `--compare=A.json` prints the
differences against an earlier output.

  .venv/bin/python experiments/refactor_parity/run.py --out=/tmp/after.json \
      --compare=experiments/refactor_parity/before.json
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LONG = ('classifier_mnist', 'vae_mnist', 'dcgan_mnist', 'ddpm_mnist')

_CHILD = r'''
import json, os, sys
sys.path.insert(0, {repo!r})
from genjax.config import load_config
from genjax.core import xla_cpu
config = load_config({spec!r})
xla_cpu.use_convolution_library(config.train.get('xla_cpu_convolutions', 'ynnpack'))
from genjax.data import sources
from genjax.data.bundled import BUNDLED
from genjax.train import loop
import contextlib
import tensorflow_datasets as tfds
ctx = contextlib.nullcontext()
if config.data.name not in BUNDLED:
  sources._check_online = lambda: None
  config.data.download = True
  ctx = tfds.testing.mock_data(num_examples=64)
with ctx:
  loop.train(config, {workdir!r}, stop_at_step={stop})
'''


def _losses(workdir: str) -> dict:
  rows = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  # Speed figures (and those derived from them) vary run to run: only the losses must match.
  timing = ('step', 'steps_per_s', 'examples_per_s', 'time', 'achieved_flops_per_s', 'mfu')
  out = {str(r['step']): {k: v for k, v in r.items() if k not in timing}
         for r in rows if 'loss' in r}
  evals = os.path.join(workdir, 'eval.json')
  if os.path.exists(evals):
    result = json.load(open(evals))
    out['eval'] = {k: v for k, v in result.items() if isinstance(v, (int, float))
                   and k not in ('step', 'seed', 'num_devices', 'num_processes')}
  return out


def run_one(spec: str, stop: int | None, root: str) -> dict:
  workdir = os.path.join(root, os.path.basename(spec).replace(':', '_'))
  env = dict(os.environ, TFDS_DATA_DIR=os.environ.get(
      'TFDS_DATA_DIR', os.path.join(tempfile.gettempdir(), 'genjax_tfds_parity')))
  code = _CHILD.format(repo=REPO, spec=spec, workdir=workdir, stop=stop)
  proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=1800)
  if proc.returncode:
    return {'error': proc.stderr[-2000:]}
  return _losses(workdir)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out', required=True)
  parser.add_argument('--compare', default=None)
  parser.add_argument('--only', default=None, help='comma list of config names (no .py)')
  args = parser.parse_args()
  names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, 'configs', '*.py'))
                 if os.path.basename(p) not in ('__init__.py', 'base.py'))
  if args.only:
    names = [n for n in names if n in args.only.split(',')]
  root = tempfile.mkdtemp(prefix='genjax_parity_')
  results = {}
  for name in names:
    spec = os.path.join(REPO, 'configs', f'{name}.py:smoke')
    results[f'{name}:smoke'] = run_one(spec, None, root)
    print(name, 'smoke', json.dumps(results[f'{name}:smoke'])[:300], flush=True)
  for name in LONG:
    if name in names:
      results[f'{name}:200'] = run_one(os.path.join(REPO, 'configs', f'{name}.py'), 200, root)
      print(name, '200', json.dumps(results[f'{name}:200'])[:300], flush=True)
  with open(args.out, 'w') as f:
    json.dump(results, f, indent=1, sort_keys=True)
  if args.compare:
    before = json.load(open(args.compare))
    for run, rows in sorted(results.items()):
      old = before.get(run)
      if old is None:
        print(f'{run}: new'); continue
      for step, metrics in sorted(rows.items()):
        for key, value in sorted(metrics.items()) if isinstance(metrics, dict) else []:
          was = (old.get(step) or {}).get(key)
          if was != value:
            print(f'{run} step {step} {key}: before {was} after {value}')


if __name__ == '__main__':
  main()
