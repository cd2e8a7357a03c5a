"""Run outputs: metrics.jsonl, TensorBoard events, eval.json, and console progress.

Only process 0 writes; every process may call these.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import sys
import time

import jax
import numpy as np
from tensorboardX import SummaryWriter


def _is_writer() -> bool:
  return jax.process_index() == 0


def _number(v):
  v = np.asarray(v)
  return int(v) if np.issubdtype(v.dtype, np.integer) else float(v)


def print0(*args) -> None:
  """print() on process 0 only, flushed."""
  if _is_writer():
    print(*args, flush=True)


class MetricWriter:
  """Appends `{"step": k, name: value, ...}` lines to metrics.jsonl and TensorBoard.

  Args:
    workdir: the run's directory.
    resume_step: rows logged after this step (by a run that died before its
      next checkpoint) are dropped, so the file tells one consistent history.
  """

  def __init__(self, workdir: str, resume_step: int = 0):
    self._enabled = _is_writer()
    if self._enabled:
      os.makedirs(workdir, exist_ok=True)
      path = os.path.join(workdir, 'metrics.jsonl')
      if os.path.exists(path):
        with open(path) as f:
          rows = [line for line in f if line.strip() and json.loads(line)['step'] <= resume_step]
        with open(path, 'w') as f:
          f.writelines(rows)
      self._jsonl = open(path, 'a')
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def write(self, step: int, scalars: dict) -> None:
    if not self._enabled:
      return
    row = {'step': int(step), **{k: _number(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(row) + '\n')
    self._jsonl.flush()
    for k, v in row.items():
      if k != 'step':
        self._tb.add_scalar(k, v, global_step=step)
    self._tb.flush()

  def close(self) -> None:
    if self._enabled:
      self._jsonl.close()
      self._tb.close()


def write_json(path: str, payload: dict) -> None:
  """Writes a JSON file atomically (process 0 only)."""
  if not _is_writer():
    return
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(payload, f, indent=2, sort_keys=True)
    f.write('\n')
  os.replace(tmp, path)


def append_jsonl(path: str, row: dict) -> None:
  """Appends one JSON line (process 0 only)."""
  if _is_writer():
    with open(path, 'a') as f:
      f.write(json.dumps(row, sort_keys=True) + '\n')


def now() -> str:
  return datetime.datetime.now().isoformat(timespec='seconds')


class Progress:
  """Console line per log step: step, metrics, steps/s and ETA."""

  def __init__(self, start_step: int, num_steps: int):
    self._num_steps = num_steps
    self._last_step, self._last_time = start_step, time.perf_counter()

  def exclude(self, seconds: float) -> None:
    """Leaves `seconds` (evaluation, checkpointing) out of the next rate."""
    self._last_time += seconds

  def restart(self, step: int) -> float:
    """Starts timing afresh at `step`; returns the seconds since the last mark."""
    t = time.perf_counter()
    elapsed = t - self._last_time
    self._last_step, self._last_time = step, t
    return elapsed

  def __call__(self, step: int, scalars: dict) -> float:
    """Prints the line for `step`; returns the steps/s since the previous call."""
    t = time.perf_counter()
    rate = (step - self._last_step) / max(t - self._last_time, 1e-9)
    self._last_step, self._last_time = step, t
    eta = (self._num_steps - step) / rate if rate > 0 else math.inf
    shown = ' '.join(f'{k} {_number(v):.4g}' for k, v in scalars.items())
    if _is_writer():
      speed = f'{rate:.2f} steps/s' if rate > 0 else '- steps/s'
      print(f'step {step}/{self._num_steps} | {shown} | {speed} | ETA {_duration(eta)}',
            file=sys.stdout, flush=True)
    return rate


def _duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return '?'
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f'{h}h{m:02d}m' if h else f'{m}m{s:02d}s'
