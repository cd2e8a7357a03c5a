"""Fault injection for `genjax train`: run, kill -9 (at a moment or in a save), compare states.

Shared by tests/test_faults.py (a few kills) and experiments/fault_injection/run.py (many).
Every subprocess runs in its own session, so a kill reaches its children too, and has a
timeout.
"""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

import subprocesses

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# family -> (config, overrides): the smallest smoke runs with what each family must carry.
FAMILIES = {
    'classifier': ('configs/classifier_mnist.py:smoke',
                   ('--config.classifier.dropout=0.3', '--config.classifier.augment_shift=2')),
    # Two optimizers, BatchNorm statistics in extras, an EMA of the generator.
    'gan': ('configs/dcgan_mnist.py:smoke', ('--config.train.ema_decay=0.9',)),
    # w_avg, the path-length mean, lazy R1, an EMA.
    'stylegan': ('configs/stylegan_mnist.py:smoke', ()),
    'diffusion': ('configs/ddpm_mnist.py:smoke', ()),  # An EMA (ddpm_mnist: 0.999).
}


def train_command(family: str, workdir: str, num_steps: int, *extra: str) -> list[str]:
  """`genjax train` of a family's smoke config: a checkpoint every step, eval only at the end."""
  config, overrides = FAMILIES[family]
  return [sys.executable, '-m', 'genjax.main', 'train', f'--config={config}',
          f'--workdir={workdir}', f'--config.train.num_steps={num_steps}',
          '--config.train.checkpoint_every_steps=1', '--config.train.keep_checkpoints=2',
          f'--config.train.eval_every_steps={num_steps}',
          f'--config.train.images_every_steps={num_steps}', *overrides, *extra]


def environment(devices: int | None = None) -> dict:
  """CPU, `devices` virtual devices, XLA's cheap code generation (faults test semantics)."""
  return subprocesses.env(devices)


def start(cmd: list[str], env: dict | None = None) -> subprocess.Popen:
  return subprocess.Popen(cmd, cwd=REPO, env=env or environment(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float) -> str:
  """Waits for `proc` (killing its session on timeout); returns its output."""
  try:
    return proc.communicate(timeout=timeout)[0]
  except subprocess.TimeoutExpired:
    kill(proc)
    out = proc.communicate()[0]
    raise AssertionError(f'timed out after {timeout}s:\n{out[-3000:]}') from None


def kill(proc: subprocess.Popen, signum: int = signal.SIGKILL) -> None:
  try:
    os.killpg(proc.pid, signum)
  except ProcessLookupError:
    pass


def run(cmd: list[str], timeout: float, env: dict | None = None) -> str:
  proc = start(cmd, env)
  out = finish(proc, timeout)
  assert proc.returncode == 0, out[-3000:]
  return out


def saving(workdir: str, min_step: int = 0) -> list[str]:
  """orbax's temporary step directories (of steps >= min_step): a save is under way."""
  paths = glob.glob(os.path.join(workdir, 'checkpoints', '*.orbax-checkpoint-tmp*'))
  return [p for p in paths if int(os.path.basename(p).split('.')[0]) >= min_step]


def _identity(path: str) -> tuple | None:
  """(path, inode): tells a directory from one re-created under its name; None if gone. (Not
  the ctime: the start-up clean-up deleting a stale directory's files changes it.)"""
  try:
    return path, os.stat(path).st_ino
  except FileNotFoundError:
    return None


def kill_during_save(cmd: list[str], workdir: str, timeout: float, min_step: int = 0,
                     env: dict | None = None) -> tuple[float, str]:
  """Starts `cmd` and kill -9s it as soon as a save of a step >= min_step is seen under way.

  Returns:
    (seconds from start to the kill, output). Fails if no save was caught before the run ended.
  """
  # A save killed earlier leaves its temporary directory until the next run's start-up
  # clean-up removes it: only a directory made after this start is a save under way.
  stale = {_identity(p) for p in saving(workdir, min_step)}
  proc, t0 = start(cmd, env), time.monotonic()
  while proc.poll() is None and time.monotonic() - t0 < timeout:
    if {_identity(p) for p in saving(workdir, min_step)} - stale - {None}:
      kill(proc)
      return time.monotonic() - t0, finish(proc, 60)
    time.sleep(0.002)
  out = finish(proc, 60) if proc.poll() is not None else (kill(proc), finish(proc, 60))[1]
  raise AssertionError(f'no save in progress was caught (exit {proc.returncode}):\n{out[-2000:]}')


def kill_after(cmd: list[str], delay_s: float, timeout: float,
               env: dict | None = None) -> tuple[bool, str]:
  """Starts `cmd` and kill -9s it `delay_s` seconds after its first training step.

  Returns:
    (whether it was killed before it finished, output).
  """
  proc, lines = start(cmd, env), []
  t0 = time.monotonic()
  for line in proc.stdout:
    lines.append(line)
    if line.startswith('step '):
      break
    assert time.monotonic() - t0 < timeout, ''.join(lines)[-2000:]
  deadline = time.monotonic() + delay_s
  while proc.poll() is None and time.monotonic() < deadline:
    time.sleep(0.005)
  killed = proc.poll() is None
  kill(proc)
  return killed, ''.join(lines) + finish(proc, 60)


def checkpoint_tree(workdir: str, step: int) -> dict:
  """Everything checkpoint `step` holds (params, opt_state, ema, extras, step) as numpy."""
  path = os.path.join(workdir, 'checkpoints', str(step), 'default')
  checkpointer = ocp.StandardCheckpointer()
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        checkpointer.metadata(path).item_metadata.tree)
  return jax.tree.map(np.asarray, checkpointer.restore(path, target))


def differences(a: dict, b: dict, rtol: float = 0.0, atol: float = 0.0) -> list[str]:
  """The leaves of two checkpoint trees that differ (exactly, or beyond the tolerances)."""
  flat_a = dict(jax.tree_util.tree_flatten_with_path(a)[0])
  flat_b = dict(jax.tree_util.tree_flatten_with_path(b)[0])
  if flat_a.keys() != flat_b.keys():
    return [f'different leaves: {sorted(map(str, flat_a.keys() ^ flat_b.keys()))[:5]}']
  out = []
  for path, x in flat_a.items():
    y = flat_b[path]
    same = (np.array_equal(x, y) if rtol == atol == 0.0
            else np.allclose(x, y, rtol=rtol, atol=atol))
    if x.shape != y.shape or not same:
      out.append(f'{jax.tree_util.keystr(path)}: max |diff| '
                 f'{np.max(np.abs(x.astype(np.float64) - y)) if x.shape == y.shape else "shape"}')
  return out
