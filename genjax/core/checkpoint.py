"""Checkpoints with orbax: save every N steps and on demand, keep K, restore sharded."""
from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores the TrainState under `<workdir>/checkpoints/<step>`.

  Args:
    workdir: the run's directory.
    keep: how many of the latest checkpoints to keep.
  """

  def __init__(self, workdir: str, keep: int):
    self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_handlers=ocp.StandardCheckpointHandler(),  # Also lets item_metadata() read shapes.
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def path(self, step: int | None) -> str:
    """Where checkpoint `step` lives, or a note that none exists yet."""
    if step is None:
      return f'none yet (directory {self.directory})'
    return os.path.join(self.directory, str(step))

  def save(self, state) -> None:
    """Saves `state` at its step (blocking, so a following exit loses nothing)."""
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    self._manager.wait_until_finished()

  def restore(self, abstract_state, step: int | None = None):
    """Restores into `abstract_state`'s structure, dtypes and shardings.

    Args:
      abstract_state: pytree of jax.ShapeDtypeStruct with `.sharding` set.
      step: the step to restore; the latest when None.
    """
    step = self.latest_step() if step is None else step
    self._check_shapes(abstract_state, step)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

  def _check_shapes(self, abstract_state, step: int) -> None:
    """Raises ValueError naming the first array whose saved shape differs from abstract_state's.

    Checked from the checkpoint's metadata before orbax reads any array: a read that fails
    part-way leaves orbax's reading coroutines to be closed at garbage collection, with noisy
    warnings. Other mismatches (missing or extra arrays) are left to orbax's restore.
    """
    try:
      saved = self._manager.item_metadata(step)
    except Exception:  # pylint: disable=broad-except  # Unreadable metadata: restore() reports.
      return
    saved_shapes = {_plain_path(path): tuple(meta.shape)
                    for path, meta in jax.tree_util.tree_flatten_with_path(saved)[0]
                    if hasattr(meta, 'shape')}
    for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_state)[0]:
      key = _plain_path(path)
      if key in saved_shapes and saved_shapes[key] != tuple(leaf.shape):
        raise ValueError(f'{"/".join(key)} has shape {saved_shapes[key]} in the checkpoint but '
                         f'{tuple(leaf.shape)} in this config')

  def close(self) -> None:
    self._manager.close()


def _plain_path(path) -> tuple[str, ...]:
  """A pytree path as plain names, whether its keys are dict keys, attributes or indices."""
  return tuple(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k)))) for k in path)
