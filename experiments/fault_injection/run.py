"""Many-trial fault injection: random kill -9s per family, then bit-identical or not.

For each family (tests/faults.py FAMILIES: classifier, DCGAN with EMA + BatchNorm, StyleGAN,
DDPM) it runs one uninterrupted `genjax train` of --steps steps, then the same command in a
second workdir, killed with SIGKILL --kills times and restarted after each kill, then run to
its end. Half of the kills land in the middle of a checkpoint save (the moment a save's
temporary directory appears), half at a uniformly random moment of the training (0 to
--window_s seconds after the first step's log line). After every kill it records which
checkpoint the restart resumed from (data lost if older than the newest committed one), and
at the end whether every array of the final checkpoint (params, optimizer states, EMA,
extras) is bit-identical to the uninterrupted run's.

Usage (heavy: run under the CPU lock):
  flock /tmp/genjax-cpu.lock python experiments/fault_injection/run.py \
      --families=classifier,gan,stylegan,diffusion --kills=20 --out=/tmp/faults.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'tests'))
import faults  # noqa: E402  # tests/faults.py: the suite's fault-injection helpers.


def committed_steps(workdir: str) -> list[int]:
  directory = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(directory):
    return []
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def resumed_step(output: str) -> int:
  match = re.search(r'Resumed from .* at step (\d+)\.', output)
  return int(match.group(1)) if match else 0


def one_family(family: str, steps: int, kills: int, window_s: float, rng, root: str,
               save=lambda record: None) -> dict:
  """Runs the reference and the killed chain of one family; returns its record.

  `save(record)` is called after every kill, so a run cut short keeps what it measured.
  """
  env = faults.environment(devices=8)
  ref = os.path.join(root, f'{family}_ref')
  t0 = time.monotonic()
  faults.run(faults.train_command(family, ref, steps), timeout=900, env=env)
  reference_s = time.monotonic() - t0
  workdir = os.path.join(root, f'{family}_killed')
  command = faults.train_command(family, workdir, steps)
  record = {'family': family, 'steps': steps, 'reference_s': round(reference_s, 1),
            'kills': 0, 'kills_in_save': 0, 'kills_at_random': 0, 'finished_before_kill': 0,
            'lost_checkpoints': 0, 'longest_restart_s': 0.0, 'events': []}
  while record['kills'] < kills:
    before = committed_steps(workdir)
    in_save = record['kills'] % 2 == 0
    t_start = time.monotonic()
    try:
      if in_save:
        _, out = faults.kill_during_save(command, workdir, timeout=900,
                                         min_step=(before[-1] + 1) if before else 0, env=env)
        killed = True
      else:
        killed, out = faults.kill_after(command, rng.uniform(0.0, window_s), timeout=900,
                                        env=env)
    except AssertionError as e:  # The run finished before a save could be caught.
      killed, out = False, str(e)
    start_s = time.monotonic() - t_start
    resumed = resumed_step(out)
    lost = bool(before) and resumed < before[-1]  # A committed checkpoint not used: lost.
    record['lost_checkpoints'] += int(lost)
    record['longest_restart_s'] = max(record['longest_restart_s'], round(start_s, 1))
    if not killed:
      record['finished_before_kill'] += 1
      if committed_steps(workdir) and committed_steps(workdir)[-1] == steps:
        # The chain reached its end: start a fresh chain in a new workdir to keep killing.
        record['events'].append({'kill': None, 'resumed_from': resumed, 'finished': True})
        if not compare(workdir, ref, steps, record):
          break
        workdir = os.path.join(root, f'{family}_killed_{record["kills"]}')
        command = faults.train_command(family, workdir, steps)
        continue
      record['error'] = out[-2000:]  # Ended without finishing: a crash, reported as is.
      break
    record['kills'] += 1
    record['kills_in_save' if in_save else 'kills_at_random'] += 1
    record['events'].append({'kill': record['kills'], 'in_save': in_save,
                             'committed_before': before[-1] if before else None,
                             'resumed_from': resumed, 'lost': lost,
                             'seconds_to_kill': round(start_s, 1)})
    save(record)
    print(f'{family}: kill {record["kills"]}/{kills} ({"in a save" if in_save else "random"}) '
          f'resumed from {resumed}, committed before {before[-1:]}', flush=True)
  out = faults.run(command, timeout=900, env=env)
  record['events'].append({'kill': None, 'resumed_from': resumed_step(out), 'finished': True})
  compare(workdir, ref, steps, record)
  return record


def compare(workdir: str, ref: str, steps: int, record: dict) -> bool:
  diff = faults.differences(faults.checkpoint_tree(workdir, steps),
                            faults.checkpoint_tree(ref, steps))
  record.setdefault('chains', 0)
  record.setdefault('chains_bit_identical', 0)
  record['chains'] += 1
  record['chains_bit_identical'] += int(not diff)
  if diff:
    record.setdefault('differences', []).append(diff[:5])
  return not diff


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--families', default=','.join(faults.FAMILIES))
  parser.add_argument('--kills', type=int, default=20)
  parser.add_argument('--steps', type=int, default=12)
  parser.add_argument('--window_s', type=float, default=8.0)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--out', default='faults.json')
  args = parser.parse_args()
  rng = np.random.default_rng(args.seed)
  results = []
  with tempfile.TemporaryDirectory(prefix='genjax_faults_') as root:
    for family in args.families.split(','):
      t0 = time.monotonic()
      def save(record, done=tuple(results)):
        with open(args.out, 'w') as f:
          json.dump([*done, {**record, 'partial': True}], f, indent=1)

      record = one_family(family, args.steps, args.kills, args.window_s, rng, root, save)
      record['wall_s'] = round(time.monotonic() - t0, 1)
      results.append(record)
      print(json.dumps({k: v for k, v in record.items() if k != 'events'}), flush=True)
      with open(args.out, 'w') as f:
        json.dump(results, f, indent=1)


if __name__ == '__main__':
  main()
