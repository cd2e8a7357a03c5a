"""The discriminator's update of one GAN step: its loss on real images and (constant) fakes,
plus lazy R1 when due, through D's own optimizer (`state.tx.discriminator`)."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from genjax.core.state import TrainState
from genjax.methods.gan import penalties
from genjax.methods.gan.inputs import Step, augment, batch_stats, discriminate
from genjax.methods.gan.networks import Gan


class DUpdate(NamedTuple):
  """What D's update returns.

  Attributes:
    params, opt_state: D's parameters and optimizer state after the update.
    loss: D's loss [] (without R1).
    grads: the gradient applied (R1's included).
    real_logits, fake_logits: D's logits on real images and fakes (before the update).
    stats: D's BatchNorm statistics after both passes ({} without BatchNorm).
    r1: the R1 value (measured this step or carried), or None with gan.r1_gamma = 0.
  """
  params: dict
  opt_state: optax.OptState
  loss: jax.Array
  grads: dict
  real_logits: jax.Array
  fake_logits: jax.Array
  stats: dict
  r1: jax.Array | None


def d_loss(gan: Gan, d_params, d_stats, step: Step, fake: jax.Array):
  """D's loss on the step's real images and `fake` [B, H, W, C], each seen through DiffAugment.

  Returns:
    (loss [], (real logits, fake logits, BatchNorm statistics after both passes)).
  """
  keys = step.keys
  real_logits, s = discriminate(gan, d_params, d_stats, augment(gan, step.real, keys.augment, 0),
                                step.labels, keys.d_real)
  fake_logits, s = discriminate(gan, d_params, s, augment(gan, fake, keys.augment, 1), step.labels,
                                keys.d_fake)
  return gan.loss.d_loss(real_logits, fake_logits), (real_logits, fake_logits, s)


def update(gan: Gan, state: TrainState, step: Step, fake: jax.Array) -> DUpdate:
  """One update of `state`'s discriminator against `fake` [B, H, W, C] (held constant).

  Every `gan.r1_every`-th step (by `state.step`) adds lazy R1's gradient when gan.r1_gamma > 0.
  """
  d_params = state.params['discriminator']
  d_stats = batch_stats(state)['discriminator']
  (loss, (real_logits, fake_logits, stats)), grads = jax.value_and_grad(
      lambda p: d_loss(gan, p, d_stats, step, fake), has_aux=True)(d_params)
  r1 = None
  if gan.spec.r1_gamma:
    r1, r1_grads = penalties.lazy_r1(gan, d_params, d_stats, step, state.step, state.extras['r1'])
    grads = jax.tree.map(jnp.add, grads, r1_grads)
  updates, opt_state = state.tx.discriminator.update(grads, state.opt_state['discriminator'],
                                                     d_params)
  return DUpdate(optax.apply_updates(d_params, updates), opt_state, loss, grads, real_logits,
                 fake_logits, stats, r1)
