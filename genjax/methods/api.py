"""The contract between the training loop and a model family ("method").

A method is a bundle of pure functions bound to a config by closure. The loop
jits and shards `init` and `train_step`, and calls `evaluate`, `sample` and
`write_images` on a host-local copy of the state; it never knows which
family runs.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from genjax.train.state import TrainState

Batch = dict[str, Any]  # {'image': [B, H, W, C] float in [-1, 1], 'label': [B] int32, ...}


@dataclasses.dataclass(frozen=True)
class Method:
  """What training means for one model family.

  Attributes:
    init: (rng, batch) -> TrainState. `batch` has the training shapes with
      batch size 1; called under jit with sharded outputs.
    train_step: (state, batch, rng) -> (state, metrics). Pure; jitted once
      with the state donated. `rng` is fold_in(seed key, step). `metrics` is a
      flat dict of scalars and must contain 'loss'.
    evaluate: (state, ctx) -> {name: number}, the periodic evaluation.
    sample: (state, keys [n], labels [n] or None) -> images [n, H, W, C] in
      [-1, 1], or None for methods that do not generate. Sample i depends on
      keys[i] (and labels[i]) alone; call it through `draw_samples`, which
      gives sample i the key fold_in(rng, i) (EDM's per-sample seeds), so
      samples do not depend on the batch size or the device count.
    write_images: (state, ctx) -> paths of the pictures written to
      `ctx.images_dir`, or None.
  """
  init: Callable[[jax.Array, Batch], TrainState]
  train_step: Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict]]
  evaluate: Callable[[TrainState, 'EvalContext'], dict]
  sample: Callable[..., jax.Array] | None = None
  write_images: Callable[[TrainState, 'EvalContext'], list[str]] | None = None


@dataclasses.dataclass
class EvalContext:
  """What evaluation and pictures may use besides the state.

  Attributes:
    config: the run's config.
    workdir: the run's directory.
    step: the training step being evaluated.
    rng: a key for evaluation randomness (fixed per run, so evaluations compare).
    load_split: (split, max_examples) -> {'image': [N, H, W, C], 'label': [N]} numpy.
  """
  config: ml_collections.ConfigDict
  workdir: str
  step: int
  rng: jax.Array
  load_split: Callable[[str, int | None], dict[str, np.ndarray]]

  @property
  def images_dir(self) -> str:
    path = os.path.join(self.workdir, 'images')
    os.makedirs(path, exist_ok=True)
    return path


def batched_apply(fn: Callable[[Any], Any], inputs: Any, batch_size: int) -> Any:
  """Applies a jitted `fn` over the leading axis of `inputs` in fixed-size chunks.

  The last chunk is padded to `batch_size` so `fn` compiles once.

  Args:
    fn: pytree [b, ...] -> pytree [b, ...].
    inputs: pytree of arrays [N, ...].
    batch_size: b.

  Returns:
    `fn`'s outputs concatenated to [N, ...], as numpy.
  """
  n = len(jax.tree.leaves(inputs)[0])
  outs = []
  for start in range(0, n, batch_size):
    size = min(batch_size, n - start)
    # Repeat the last row to fill the final chunk; indexing works for numpy, jax and key arrays.
    rows = np.minimum(np.arange(start, start + batch_size), n - 1)
    outs.append(jax.tree.map(lambda y: np.asarray(y)[:size], fn(jax.tree.map(lambda x: x[rows], inputs))))
  return jax.tree.map(lambda *ys: np.concatenate(ys), *outs)

