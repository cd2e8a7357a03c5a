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
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

  def close(self) -> None:
    self._manager.close()
