"""The generator's update of one GAN step, through D's current or updated parameters.

G's loss is the GAN loss of D's logits on its fakes (seen through DiffAugment),
plus `gan.mode_seeking` times MSGAN's mode-seeking penalty; StyleGAN adds the
lazy path-length penalty's gradient when due. G's own optimizer is
`state.tx.generator`.

Two orders (see `genjax.methods.gan.method.train_step`):
- D first (the default, PyTorch's DCGAN example): `fakes_with_vjp` makes the
  fakes once, keeping G's VJP; after D's update, `update_through_updated_d`
  differentiates G's loss with respect to the fakes and pulls it back.
- G first (`gan.g_first`, StyleGAN2): `update_through_current_d`, then D's
  update on `fresh_fakes` of the updated G.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from genjax.core.state import TrainState
from genjax.methods.gan import losses as gan_losses
from genjax.methods.gan import penalties
from genjax.methods.gan.d_update import DUpdate
from genjax.methods.gan.inputs import Step, augment, batch_stats, discriminate, draw_inputs, generate
from genjax.methods.gan.networks import Gan


class GUpdate(NamedTuple):
  """What G's update returns.

  Attributes:
    params, opt_state: G's parameters and optimizer state after the update.
    loss: G's loss [] (with the mode-seeking term).
    grads: the gradient applied (the path-length penalty's included).
    stats: G's BatchNorm statistics after its pass ({} without BatchNorm).
    w: StyleGAN's w [B, W] of the step's latents, or None.
    pl_penalty, pl_mean: the path-length penalty (measured or carried) and its
      running mean, or None without path-length regularization.
  """
  params: dict
  opt_state: optax.OptState
  loss: jax.Array
  grads: dict
  stats: dict
  w: jax.Array | None
  pl_penalty: jax.Array | None
  pl_mean: jax.Array | None


def fakes(gan: Gan, g_params, g_stats, step: Step):
  """G's training-mode pass on the step's latents: (fakes [B, H, W, C], (new stats, w or None))."""
  images, new_stats, w = generate(gan, g_params, g_stats, step.latents, step.labels, train=True)
  return images, (new_stats, w)


def g_loss(gan: Gan, d_params, d_stats, fake: jax.Array, step: Step) -> jax.Array:
  """G's loss [] on `fake` [B, H, W, C] (made from step.latents) through D (d_params, d_stats)."""
  logits, _ = discriminate(gan, d_params, d_stats, augment(gan, fake, step.keys.augment, 2),
                           step.labels, step.keys.g)
  loss = gan.loss.g_loss(logits)
  if gan.spec.mode_seeking:
    loss = loss + gan.spec.mode_seeking * gan_losses.mode_seeking_penalty(fake, step.latents['z'])
  return loss


def apply_gradients(gan: Gan, state: TrainState, step: Step, loss: jax.Array, grads, stats,
                    w) -> GUpdate:
  """G's optimizer step on `grads` (plus the lazy path-length penalty's when configured)."""
  g_params = state.params['generator']
  pl_penalty = pl_mean = None
  if gan.is_style and gan.style.pl_weight:
    pl_penalty, pl_mean, pl_grads = penalties.lazy_path_length(
        gan, g_params, step, state.step, state.extras['pl_penalty'], state.extras['pl_mean'])
    grads = jax.tree.map(jnp.add, grads, pl_grads)
  updates, opt_state = state.tx.generator.update(grads, state.opt_state['generator'], g_params)
  return GUpdate(optax.apply_updates(g_params, updates), opt_state, loss, grads, stats, w,
                 pl_penalty, pl_mean)


def update_through_current_d(gan: Gan, state: TrainState, step: Step) -> GUpdate:
  """G's update through `state`'s discriminator (StyleGAN2's order: before D's update)."""
  stats = batch_stats(state)

  def loss_fn(p):
    fake, aux = fakes(gan, p, stats['generator'], step)
    return g_loss(gan, state.params['discriminator'], stats['discriminator'], fake, step), aux

  (loss, (g_stats, w)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params['generator'])
  return apply_gradients(gan, state, step, loss, grads, g_stats, w)


def fresh_fakes(gan: Gan, g: GUpdate, step: Step) -> jax.Array:
  """Fakes [B, H, W, C] of the updated G on new latents (keys fold_in(step latents, 1)), constant."""
  b = step.real.shape[0]
  latents = draw_inputs(gan, jax.random.split(jax.random.fold_in(step.keys.latents, 1), b),
                        mixing=gan.is_style)
  return jax.lax.stop_gradient(generate(gan, g.params, g.stats, latents, step.labels,
                                        train=True)[0])


def fakes_with_vjp(gan: Gan, state: TrainState, step: Step):
  """The step's fakes from `state`'s generator with its VJP: (fakes, vjp, (new stats, w))."""
  g_stats = batch_stats(state)['generator']
  return jax.vjp(lambda p: fakes(gan, p, g_stats, step), state.params['generator'], has_aux=True)


def update_through_updated_d(gan: Gan, state: TrainState, step: Step, d: DUpdate,
                             fake: jax.Array, g_vjp, aux) -> GUpdate:
  """G's update through D's updated parameters `d`, on the fakes `fakes_with_vjp` made.

  Args:
    gan: the GAN.
    state: the step's state (G's parameters and optimizer state before the update).
    step: the step's data.
    d: D's update.
    fake, g_vjp, aux: what `fakes_with_vjp` returned.
  """
  loss, d_fake_grad = jax.value_and_grad(lambda x: g_loss(gan, d.params, d.stats, x, step))(fake)
  (grads,) = g_vjp(d_fake_grad)
  g_stats, w = aux
  return apply_gradients(gan, state, step, loss, grads, g_stats, w)
