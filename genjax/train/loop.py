"""The one training loop: every method trains here, sharded, resumable, and fail-loud."""
from __future__ import annotations

import contextlib
import os
import signal
import time

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from genjax.train import run as run_lib
from genjax.core import flops as flops_lib
from genjax.core import optim, sharding, writers
from genjax.core.state import TrainState


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; the run stopped without saving it."""


class Interrupted(Exception):
  """SIGTERM/SIGINT arrived; a checkpoint was saved first. Attributes: signum, step."""

  def __init__(self, signum: int, step: int, checkpoint: str):
    super().__init__(f'Stopped by signal {signum} at step {step}; checkpoint saved at '
                     f'{checkpoint}. Rerun the same command to resume.')
    self.signum, self.step = signum, step


class _StopRequest:
  """Records SIGTERM/SIGINT; the loop saves a checkpoint and stops after the current step."""

  def __init__(self):
    self.signum = None

  def __call__(self, signum, frame):
    del frame
    self.signum = signum

  @contextlib.contextmanager
  def installed(self):
    previous = {s: signal.signal(s, self) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
      yield self
    finally:
      for s, handler in previous.items():
        signal.signal(s, handler)

  def requested(self, sync: bool) -> bool:
    if jax.process_count() == 1:
      return self.signum is not None
    if not sync:
      return False
    # Every process must agree, or one would wait forever in the next collective. So the
    # answer is the gathered flags' alone: a signal that lands during the gather (where a
    # waiting process spends its time) counts at the next log step, on every process.
    flags = multihost_utils.process_allgather(np.int32(self.signum or 0))
    agreed = int(flags.max()) or None
    if agreed is not None:
      self.signum = self.signum or agreed
    return agreed is not None


def _every(step: int, period: int) -> bool:
  return step % period == 0


def make_train_step(run: run_lib.Run):
  """The jitted step: (state, batch) -> (state, metrics), state donated, sharded in and out.

  The step's rng is fold_in(train_key, state.step), computed inside jit, so a
  resumed run draws the same randomness as an uninterrupted one. With
  `train.grad_accum_steps` = k > 1 the step accumulates the gradients of k
  micro-batches and makes one update (`genjax.core.optim.accumulate_gradients`).

  Returns:
    (step_fn, batch_shardings).

  Raises:
    ValueError: gradient accumulation asked of a method where it is not one large-batch step.
  """
  batch_shardings = {k: sharding.batch_sharding(run.mesh) for k in run.example}
  k = run.config.train.grad_accum_steps
  optim.check_accumulable(run.abstract_state, k)
  if k > 1:
    sharding.check_batch_size(run.config.data.batch_size // k, run.mesh,
                              f'data.batch_size / train.grad_accum_steps = '
                              f'{run.config.data.batch_size} / {k}')
    if run.config.data.batch_size % k:
      raise ValueError(f'data.batch_size={run.config.data.batch_size} does not divide into '
                       f'train.grad_accum_steps={k} micro-batches.')
  train_step = optim.accumulate_gradients(run.method.train_step, k)

  def step(state: TrainState, batch: dict):
    return train_step(state, batch, jax.random.fold_in(run.train_key, state.step))

  step_fn = jax.jit(step, in_shardings=(run.state_shardings, batch_shardings),
                    out_shardings=(run.state_shardings, sharding.replicated(run.mesh)),
                    donate_argnums=0)
  return step_fn, batch_shardings


def train(config: ml_collections.ConfigDict, workdir: str, *,
          stop_at_step: int | None = None) -> TrainState:
  """Trains `config` in `workdir`, resuming from the latest checkpoint there.

  Args:
    config: the experiment config (validated here).
    workdir: where checkpoints, metrics.jsonl, eval.json, TensorBoard events
      and images go; rerunning with the same workdir resumes.
    stop_at_step: stop (and checkpoint) after this step, as an interruption
      would, without raising; for tests and for splitting long runs.

  Returns:
    The final state (sharded).

  Raises:
    NonFiniteLossError: a NaN/inf loss; names the step and the last good checkpoint.
    Interrupted: SIGTERM/SIGINT, after saving a checkpoint.
  """
  run = run_lib.setup(config, workdir)
  try:
    return _train(run, config, stop_at_step)
  finally:  # Also on errors: orbax's thread must stop before the process exits.
    run.checkpointer.close()


def _train(run: run_lib.Run, config: ml_collections.ConfigDict,
           stop_at_step: int | None) -> TrainState:
  state = run_lib.restore_or_init(run)  # First: a misfit checkpoint must not cost config.json.
  writers.write_json(os.path.join(run.workdir, 'config.json'), config.to_dict())
  start = int(jax.device_get(state.step))
  num_steps, t = config.train.num_steps, config.train
  last_saved = run.checkpointer.latest_step()
  if start:
    writers.print0(f'Resumed from {run.checkpointer.path(start)} at step {start}.')
  step_fn, batch_shardings = make_train_step(run)
  metric_writer = writers.MetricWriter(run.workdir, resume_step=start)
  progress = writers.Progress(start, num_steps)
  pending = []  # (step, device metrics) since the last log line.
  stop = _StopRequest()
  batches = run.pipeline.iterate(start)

  def fetch_checked() -> list[dict]:
    """Host copies of the pending metrics; raises on the first non-finite loss."""
    host = jax.device_get([m for _, m in pending])
    for (step, _), m in zip(pending, host):
      if not np.isfinite(m['loss']):
        raise NonFiniteLossError(
            f'Loss is {m["loss"]} at step {step}; the run stopped without saving it. Last good '
            f'checkpoint: {run.checkpointer.path(last_saved)}. Lower optim.lr or set '
            'optim.grad_clip_norm, then rerun the same command to resume from it.')
    return host

  @contextlib.contextmanager
  def paused():  # Evaluation and checkpoints do not count against steps/s.
    t0 = time.perf_counter()
    yield
    progress.exclude(time.perf_counter() - t0)

  stats = None  # XLA's FLOPs and memory of the compiled step (train.log_flops).
  with stop.installed():
    for step in range(start + 1, num_steps + 1):
      batch = sharding.global_batch(next(batches), batch_shardings)
      if step == start + 1 and t.log_flops:
        stats = flops_lib.step_stats(step_fn.lower(state, batch).compile(),
                                     num_devices=run.mesh.size, dtype_name=t.compute_dtype,
                                     loop_trips=t.grad_accum_steps)
        writers.print0(f'Train step: {stats.describe()}')
      state, metrics = step_fn(state, batch)
      pending.append((step, metrics))
      if step == start + 1:  # The first step includes compilation: report it apart.
        jax.block_until_ready(metrics)
        writers.print0(f'First step (compile + run) took {progress.restart(step):.1f}s.')
      last = step == num_steps
      log = last or _every(step, t.log_every_steps)
      interrupted = stop.requested(sync=log) or (stop_at_step is not None and step >= stop_at_step)
      if log or interrupted:
        host = fetch_checked()
        means = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
        rate = progress(step, means)
        throughput = {'steps_per_s': rate, 'examples_per_s': rate * config.data.batch_size}
        if stats is not None and rate:
          throughput.update(stats.metrics(rate))
        metric_writer.write(step, {**means, **throughput})
        pending = []
      with paused():
        if last or interrupted or _every(step, t.checkpoint_every_steps):
          fetch_checked()
          run.checkpointer.save(state)
          last_saved = step
        if interrupted:
          break
        if last or _every(step, t.eval_every_steps):
          metrics = run_lib.evaluate(run, state)
          metric_writer.write(step, {f'eval/{k}': v for k, v in metrics.items()
                                     if isinstance(v, (int, float))})
        if last or _every(step, t.images_every_steps):
          run_lib.write_images(run, state)
  metric_writer.close()  # train() closes the checkpointer, waiting for its last save.
  if stop.signum is not None:
    raise Interrupted(stop.signum, int(jax.device_get(state.step)),
                      run.checkpointer.path(last_saved))
  if stop_at_step is not None and int(jax.device_get(state.step)) < num_steps:
    writers.print0(f'Stopped at step {int(jax.device_get(state.step))} (stop_at_step); '
                   f'checkpoint saved at {run.checkpointer.path(last_saved)}.')
  return state


def compiled_step_stats(config: ml_collections.ConfigDict,
                        image_shape: tuple[int, int, int]) -> tuple[flops_lib.StepStats, dict]:
  """Compiles `config`'s train step for its mesh from shapes alone (no data, no arrays).

  For memory and FLOP studies (experiments/fsdp_memory): the step is the one
  `train` runs, with the state sharded by `genjax.core.sharding.state_shardings`.

  Args:
    config: the experiment config (its mesh, method, batch size, compute dtype).
    image_shape: (H, W, C) of the data.

  Returns:
    (XLA's StepStats of the compiled step, {'state_bytes_per_device': bytes of
    the largest device's shards of params + optimizer state + EMA + extras,
    'state_bytes': their unsharded total, 'batch_bytes_per_device': ...}).
  """
  from genjax.methods import make_method  # Only here: the loop otherwise gets the Run's.

  mesh = sharding.make_mesh(config.mesh)
  method = make_method(config, image_shape)
  b = config.data.batch_size
  batch = {'image': jax.ShapeDtypeStruct((b, *image_shape), np.float32),
           'label': jax.ShapeDtypeStruct((b,), np.int32)}
  one = jax.tree.map(lambda s: jax.ShapeDtypeStruct((1, *s.shape[1:]), s.dtype), batch)
  abstract = jax.eval_shape(method.init, jax.random.key(0), one)
  shardings = sharding.state_shardings(abstract, mesh)
  train_step = optim.accumulate_gradients(method.train_step, config.train.grad_accum_steps)
  key = jax.random.key(0)
  step = jax.jit(lambda s, x: train_step(s, x, jax.random.fold_in(key, s.step)),
                 in_shardings=(shardings, sharding.batch_sharding(mesh)),
                 out_shardings=(shardings, sharding.replicated(mesh)), donate_argnums=0)
  compiled = step.lower(abstract, batch).compile()
  stats = flops_lib.step_stats(compiled, num_devices=mesh.size,
                               dtype_name=config.train.compute_dtype,
                               loop_trips=config.train.grad_accum_steps)
  leaves = zip(jax.tree.leaves(abstract), jax.tree.leaves(shardings))
  per_device = total = 0
  for leaf, s in leaves:
    nbytes = leaf.dtype.itemsize
    total += nbytes * int(np.prod(leaf.shape))
    per_device += nbytes * int(np.prod(s.shard_shape(leaf.shape)))
  batch_bytes = sum(s.dtype.itemsize * int(np.prod(s.shape)) for s in batch.values())
  return stats, {'state_bytes_per_device': per_device, 'state_bytes': total,
                 'batch_bytes_per_device': batch_bytes // mesh.size}
