"""Checkpoints with orbax: save every N steps and on demand, keep K, restore sharded.

Faults it survives (tests/test_faults.py, experiments/fault_injection/):
- a kill in the middle of a save: orbax writes into a temporary directory and renames it
  when complete, so a half-written step is never listed; the temporary is removed when the
  next run opens the directory;
- a corrupted or truncated checkpoint: every save records its files' sizes and sha256
  (`genjax_files.json`); a restore that finds them changed, or that orbax cannot read, moves
  the step aside to `checkpoints_corrupt/` and falls back to the previous valid one, with a
  warning naming the bad step and the steps that will be trained again;
- a full disk or a file-size limit during a save: `CheckpointError`, naming the step, the
  cause and the older checkpoints, which are left intact.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
import warnings

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from genjax.core import file_manifest

MANIFEST = file_manifest.NAME  # {relative path: [size, sha256]} of one step's files.


class CheckpointError(OSError):
  """A checkpoint could not be written, or no checkpoint of the run can be read."""


class CorruptCheckpointError(Exception):
  """One step's files are damaged (changed since saved, truncated, or unreadable)."""


def _handler() -> ocp.PyTreeCheckpointHandler:
  """orbax's array handler, saving each replicated array from one replica.

  orbax's default on CPU/TPU splits a replicated array among its replicas to write in
  parallel, slicing it with one eagerly compiled op per (array, replica): with 8 virtual CPU
  devices a small model's save took 11 s of compilations. One writer per array is what GPUs
  get by default too. The files are those StandardCheckpointHandler writes.
  """
  scalars = ocp.type_handlers.ScalarHandler()
  registry = ocp.type_handlers.create_type_handler_registry(
      (jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False)),
      (np.ndarray, ocp.type_handlers.NumpyHandler()),
      (np.number, scalars), (int, scalars), (float, scalars))
  return ocp.PyTreeCheckpointHandler(type_handler_registry=registry)


class Checkpointer:
  """Saves and restores the TrainState under `<workdir>/checkpoints/<step>`.

  Args:
    workdir: the run's directory.
    keep: how many of the latest checkpoints to keep.
  """

  def __init__(self, workdir: str, keep: int):
    self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
    self.corrupt_directory = os.path.join(os.path.abspath(workdir), 'checkpoints_corrupt')
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True,
            cleanup_tmp_directories=True),  # What a kill in the middle of a save left behind.
        item_handlers=_handler(),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def path(self, step: int | None) -> str:
    """Where checkpoint `step` lives, or a note that none exists yet."""
    if step is None:
      return f'none yet (directory {self.directory})'
    return os.path.join(self.directory, str(step))

  def save(self, state) -> None:
    """Saves `state` at its step (blocking, so a following exit loses nothing).

    Raises:
      CheckpointError: the disk is full, a file-size limit was hit, or another OS error; the
        partial step is removed and the older checkpoints are left as they were.
    """
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return
    try:
      with _file_size_limit_as_error():
        self._manager.save(step, args=ocp.args.PyTreeSave(state), force=True)
        self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except  # tensorstore wraps OS errors variously.
      self._discard_partial(step)
      older = [s for s in self.all_steps() if s != step]
      kept = (f'the older checkpoints (steps {", ".join(map(str, older))}) are intact; rerunning '
              'the same command resumes from the latest' if older else 'no older checkpoint exists')
      raise CheckpointError(
          f'Could not save checkpoint step {step} in {self.directory}: {_cause(e)}. The disk '
          f'may be full or a file-size limit (ulimit -f) reached; free space or raise the limit '
          f'({kept}).') from e
    if jax.process_index() == 0:
      file_manifest.write(self.path(step), _files(self.path(step)))

  def restore(self, abstract_state, step: int | None = None):
    """Restores into `abstract_state`'s structure, dtypes and shardings.

    Args:
      abstract_state: pytree of jax.ShapeDtypeStruct with `.sharding` set.
      step: the step to restore; the latest when None.

    Raises:
      ValueError: the checkpoint holds arrays of other shapes (another config).
      CorruptCheckpointError: the step's files are damaged.
    """
    step = self.latest_step() if step is None else step
    try:
      saved = self._manager.item_metadata(step)
    except Exception as e:  # pylint: disable=broad-except
      raise CorruptCheckpointError(f'its metadata cannot be read ({_cause(e)})') from e
    _check_shapes(saved, abstract_state)
    damaged = _verify_manifest(self.path(step))
    if damaged:
      raise CorruptCheckpointError(damaged)
    try:
      return self._manager.restore(step, args=ocp.args.PyTreeRestore(
          abstract_state, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_state)))
    except Exception as e:  # pylint: disable=broad-except
      if _same_structure(saved, abstract_state):  # Then the files, not the config, are at fault.
        raise CorruptCheckpointError(f'orbax cannot read it ({_cause(e)})') from e
      raise

  def restore_latest_valid(self, abstract_state, *, set_aside: bool = True):
    """The newest checkpoint that reads back intact, after moving damaged newer ones aside.

    A damaged step is reported with a warning naming it, why, and the steps that will be
    trained again; it is moved to `checkpoints_corrupt/<step>` (kept for inspection, and so
    that the step is saved afresh when the run reaches it again).

    Args:
      abstract_state: pytree of jax.ShapeDtypeStruct with `.sharding` set.
      set_aside: move damaged steps aside (training); False leaves the workdir as it is
        (evaluation, sampling).

    Returns:
      (state, step), or (None, None) when the run has no checkpoint.

    Raises:
      CheckpointError: checkpoints exist but none can be read (never a silent restart from 0).
      ValueError: a checkpoint of another config (see `restore`).
    """
    steps = self.all_steps()
    bad = []
    for step in reversed(steps):
      try:
        state = self.restore(abstract_state, step)
      except CorruptCheckpointError as e:
        bad.append((step, str(e)))
        continue
      if bad:
        self._set_aside(bad, fallback=step, move=set_aside)
      return state, step
    if not steps:
      return None, None
    raise CheckpointError(
        f'No checkpoint in {self.directory} can be read: '
        + '; '.join(f'step {s}: {why}' for s, why in bad)
        + '. Restore them from a backup, or delete the directory to train from step 0.')

  def _set_aside(self, bad: list[tuple[int, str]], fallback: int, move: bool) -> None:
    newest, steps = bad[0][0], ', '.join(str(s) for s, _ in bad)
    warnings.warn(
        f'Checkpoint step {newest} in {self.directory} is damaged ({bad[0][1]}); resuming from '
        f'step {fallback} instead: steps {fallback + 1}-{newest} are lost and will be trained '
        'again. ' + (f'Damaged step(s) {steps} moved to {self.corrupt_directory}/.' if move else
                     f'Damaged step(s) {steps} left in place.'), RuntimeWarning, stacklevel=3)
    if not move:
      return
    if jax.process_count() > 1:  # Every process has read before the files move.
      multihost_utils.sync_global_devices('genjax_checkpoint_fallback_read')
    if jax.process_index() == 0:
      os.makedirs(self.corrupt_directory, exist_ok=True)
      for step, _ in bad:
        target = os.path.join(self.corrupt_directory, str(step))
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(self.path(step), target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices('genjax_checkpoint_fallback_moved')
    self._manager.reload()

  def _discard_partial(self, step: int) -> None:
    """Removes what a failed save of `step` left (its final or temporary directory)."""
    try:
      self._manager.reload()  # Forget the step the failed save may have recorded.
    except Exception:  # pylint: disable=broad-except  # Best effort: the error is raised anyway.
      pass
    if jax.process_index() != 0 or not os.path.isdir(self.directory):
      return
    for name in os.listdir(self.directory):
      if name == str(step) or name.startswith(f'{step}.orbax-checkpoint-tmp'):
        shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

  def close(self) -> None:
    # orbax 0.12.8's close() does not wait for the start-up clean-up of temporary
    # directories (cleanup_tmp_directories): its thread then dies at interpreter exit with a
    # traceback on stderr ("cannot schedule new futures after shutdown"). Wait for it first.
    await_cleanup = getattr(self._manager, '_maybe_await_cleanup_tmp_directory', None)
    if await_cleanup is not None:
      await_cleanup()
    self._manager.close()


@contextlib.contextmanager
def _file_size_limit_as_error():
  """Past RLIMIT_FSIZE the kernel sends SIGXFSZ, whose default kills the process without a
  word; ignored, the write fails with EFBIG instead, which `save` reports."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  try:
    yield
  finally:
    signal.signal(signal.SIGXFSZ, previous)


def _cause(error: BaseException) -> str:
  """The innermost message of an error chain, on one line and short."""
  while error.__cause__ is not None:
    error = error.__cause__
  text = ' '.join(str(error).split()) or type(error).__name__
  # tensorstore's form of an OS error: '...: File too large [os_error_code=\'27\']'.
  os_error = re.search(r": ([^:\[]+) \[os_error_code='?(\d+)", text)
  if os_error:
    return f'{os_error.group(1).strip()} (errno {os_error.group(2)})'
  if isinstance(error, OSError) and error.strerror:
    return f'{error.strerror} (errno {error.errno})'
  return f'{type(error).__name__}: {text[:300]}'


def _files(directory: str) -> dict[str, str]:
  """Relative path -> absolute path of every file under `directory` but the manifest."""
  out = {}
  for root, _, names in os.walk(directory):
    for name in names:
      full = os.path.join(root, name)
      rel = os.path.relpath(full, directory)
      if rel != MANIFEST:
        out[rel] = full
  return out


def _verify_manifest(directory: str) -> str | None:
  """None if the step's files match its manifest (or it has none), else what differs.

  A step without a manifest was killed between orbax's commit and the manifest's write:
  orbax's commit is atomic, so it is trusted, and orbax's own reading checks it.
  """
  try:
    manifest = file_manifest.read(directory)
  except (OSError, ValueError) as e:
    return f'its file list {os.path.join(directory, MANIFEST)} cannot be read ({e})'
  difference = manifest and file_manifest.first_difference(directory, manifest)
  return f'{difference[0]}: {difference[1]}' if difference else None


def _leaf_shapes(tree) -> dict[tuple[str, ...], tuple[int, ...]]:
  return {_plain_path(path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
          if hasattr(leaf, 'shape')}


def _same_structure(saved, abstract_state) -> bool:
  return set(_leaf_shapes(saved)) == set(_leaf_shapes(abstract_state))


def _check_shapes(saved, abstract_state) -> None:
  """Raises ValueError naming the first array whose saved shape differs from abstract_state's.

  Checked from the checkpoint's metadata before orbax reads any array: a read that fails
  part-way leaves orbax's reading coroutines to be closed at garbage collection, with noisy
  warnings. Other mismatches (missing or extra arrays) are left to orbax's restore.
  """
  saved_shapes = _leaf_shapes(saved)
  for key, shape in _leaf_shapes(abstract_state).items():
    if key in saved_shapes and saved_shapes[key] != shape:
      raise ValueError(f'{"/".join(key)} has shape {saved_shapes[key]} in the checkpoint but '
                       f'{shape} in this config')


def _plain_path(path) -> tuple[str, ...]:
  """A pytree path as plain names, whether its keys are dict keys, attributes or indices."""
  return tuple(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k)))) for k in path)
