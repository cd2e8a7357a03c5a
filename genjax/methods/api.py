"""The contract between the training loop and a model family ("method").

A family's module defines a frozen spec (its config group, decoded once by
`genjax.config.decode`) and module-level pure functions of (spec, ...):
`init`, `loss_fn`, `train_step`, `sample`, `evaluate`, `write_images`. Its
`make(config, image_shape)` decodes the spec and binds the functions into a
`Method`. The loop jits and shards `init` and `train_step`, and calls
`evaluate`, `sample` and `write_images` on a host-local copy of the state; it
never knows which family runs.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
import optax

from genjax.core.optim import make_optimizer
from genjax.core.state import TrainState

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
    num_classes: K for a label-conditional generative method (its `sample`
      takes labels in [0, K)); 0 for one that takes none.
  """
  init: Callable[[jax.Array, Batch], TrainState]
  train_step: Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict]]
  evaluate: Callable[[TrainState, 'EvalContext'], dict]
  sample: Callable[..., jax.Array] | None = None
  write_images: Callable[[TrainState, 'EvalContext'], list[str]] | None = None
  num_classes: int = 0


@dataclasses.dataclass(frozen=True)
class StateSpec:
  """How a method's TrainState starts: its optimizer and EMA (config.optim, config.train).

  Attributes:
    tx: the optimizer (for a GAN, its pair of optimizers).
    ema_decay: None (no EMA) or the decay in (0, 1).
    ema_warmup: ramp the decay up early in training.
  """
  tx: optax.GradientTransformation
  ema_decay: float | None = None
  ema_warmup: bool = True

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, tx=None) -> 'StateSpec':
    """`config.optim`'s optimizer over `config.train.num_steps` (or `tx`) and the EMA settings."""
    tx = make_optimizer(config.optim, config.train.num_steps) if tx is None else tx
    return cls(tx=tx, ema_decay=config.train.ema_decay, ema_warmup=config.train.ema_warmup)

  def create(self, params, *, extras=None, ema_keys: tuple[str, ...] | None = None) -> TrainState:
    """A step-0 TrainState of `params` (EMA of all of them, or of the subtrees `ema_keys`)."""
    return TrainState.create(params=params, tx=self.tx, ema_decay=self.ema_decay,
                             ema_warmup=self.ema_warmup, ema_keys=ema_keys, extras=extras)


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
