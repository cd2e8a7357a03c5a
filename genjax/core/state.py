"""TrainState: the one pytree a run carries from step to step and checkpoints."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct


class TrainState(struct.PyTreeNode):
  """Step, parameters, their EMA, optimizer state, and method extras.

  Methods own their networks by closure (a GAN has two, an LDM three), so the
  state holds no `apply_fn`; it holds the main optimizer `tx` statically.

  Attributes:
    step: int32 scalar, the number of optimizer updates applied.
    params: the trained parameters (for a GAN: {'generator', 'discriminator'}).
    opt_state: `tx`'s state.
    ema_params: exponential moving average of `params` (or of the subtrees
      `ema_keys` names), or None when off.
    extras: method-owned pytree (a second optimizer's state, tracked mean of w, ...).
    tx: the optax transformation (static).
    ema_decay: None (no EMA) or the decay in (0, 1) (static).
    ema_warmup: ramp the decay up as min(decay, (1 + n) / (10 + n)) (static).
    ema_keys: None (the EMA covers all of `params`) or the top-level keys of
      `params` it covers, e.g. ('generator',) for a GAN (static).
  """
  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any
  extras: Any
  tx: optax.GradientTransformation = struct.field(pytree_node=False)
  ema_decay: float | None = struct.field(pytree_node=False, default=None)
  ema_warmup: bool = struct.field(pytree_node=False, default=True)
  ema_keys: tuple[str, ...] | None = struct.field(pytree_node=False, default=None)

  @classmethod
  def create(cls, *, params, tx: optax.GradientTransformation, ema_decay: float | None = None,
             ema_warmup: bool = True, ema_keys: tuple[str, ...] | None = None,
             extras: Any = None) -> 'TrainState':
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
      raise ValueError(f'train.ema_decay must be in (0, 1) or None, got {ema_decay}.')
    ema_keys = None if ema_keys is None else tuple(ema_keys)
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
               ema_params=None if ema_decay is None else _subtree(params, ema_keys),
               extras={} if extras is None else extras, tx=tx, ema_decay=ema_decay,
               ema_warmup=ema_warmup, ema_keys=ema_keys)

  def apply_gradients(self, grads, **changes) -> 'TrainState':
    """One optimizer update of `params` (and their EMA); `changes` replace other fields."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state,
                        ema_params=self.next_ema(params), **changes)

  def next_ema(self, params):
    """The EMA after this step's update to `params` (None when off).

    For methods that update `params` themselves (a GAN's two optimizers): the
    decay is ramped by `self.step`, the number of updates before this one.
    """
    if self.ema_decay is None:
      return None
    decay = jnp.asarray(self.ema_decay, jnp.float32)
    if self.ema_warmup:  # Early averages would be dominated by the random init.
      n = self.step.astype(jnp.float32)
      decay = jnp.minimum(decay, (1.0 + n) / (10.0 + n))
    return optax.incremental_update(_subtree(params, self.ema_keys), self.ema_params, 1.0 - decay)

  @property
  def eval_params(self):
    """The parameters to evaluate and sample with: the EMA where kept, `params` elsewhere."""
    if self.ema_params is None:
      return self.params
    if self.ema_keys is None:
      return self.ema_params
    return {**self.params, **self.ema_params}


def _subtree(params, keys: tuple[str, ...] | None):
  """`params` itself (keys None), or the dict of its top-level entries `keys`."""
  return params if keys is None else {k: params[k] for k in keys}
