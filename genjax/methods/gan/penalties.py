"""The lazy regularizers of a GAN step: R1 on D (every `gan.r1_every` steps) and StyleGAN2's
path-length penalty on G (every `stylegan.pl_every` steps).

Lazy regularization (StyleGAN2, sec. B): the penalty is evaluated every k
steps only, weighted by k, and its gradient is added to that step's update.
On the other steps the gradient is zero and the last value is carried, for
the log. Both are `jax.lax.cond`s on the step counter, so the jitted step is
one program.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from genjax.methods.gan import losses as gan_losses
from genjax.methods.gan import stylegan_extras
from genjax.methods.gan.inputs import Step, augment, discriminate
from genjax.methods.gan.networks import Gan


def r1(gan: Gan, d_params, d_stats, step: Step) -> jax.Array:
  """R1 = E ||grad_x D(x)||^2 at the step's real images, seen as in D's loss (augmented)."""
  keys = step.keys
  return gan_losses.r1_penalty(
      lambda x: discriminate(gan, d_params, d_stats, augment(gan, x, keys.augment, 0), step.labels,
                             keys.d_real)[0], step.real)


def lazy_r1(gan: Gan, d_params, d_stats, step: Step, count: jax.Array, last: jax.Array):
  """(R1 value, its gradient wrt d_params weighted gamma / 2 * r1_every) on every r1_every-th
  step (`count` % r1_every == 0); (`last`, zeros) on the others."""
  spec = gan.spec

  def with_r1(p):  # Lazy R1: weight gamma / 2 times the interval (StyleGAN2, sec. B).
    value, grads = jax.value_and_grad(lambda q: r1(gan, q, d_stats, step))(p)
    return value, jax.tree.map(lambda g: g * (0.5 * spec.r1_gamma * spec.r1_every), grads)

  def without_r1(p):
    return last, jax.tree.map(jnp.zeros_like, p)

  return jax.lax.cond(count % spec.r1_every == 0, with_r1, without_r1, d_params)


def path_length(gan: Gan, g_params, latents: dict, labels: jax.Array | None, y: jax.Array,
                pl_mean: jax.Array):
  """StyleGAN2's path-length penalty of G at `latents` (mixed as in the step), probed by y
  [n, H, W, C]: (penalty, the updated running mean of lengths)."""
  _, ws = stylegan_extras.mixed_styles(gan, g_params, latents, labels)
  lengths = gan_losses.path_lengths(
      lambda v: stylegan_extras.synthesize(gan, g_params, v, latents['noise']), ws, y)
  return gan_losses.path_length_penalty(lengths, pl_mean, gan.style.pl_decay)


def lazy_path_length(gan: Gan, g_params, step: Step, count: jax.Array, last_penalty: jax.Array,
                     pl_mean: jax.Array):
  """The lazy path-length penalty on the first B / pl_batch_shrink of the step's latents.

  Returns:
    (penalty, running mean, gradient wrt g_params weighted pl_weight * pl_every) on every
    pl_every-th step (`count` % pl_every == 0); (last_penalty, pl_mean, zeros) on the others.
  """
  s, real = gan.style, step.real
  n = max(1, real.shape[0] // s.pl_batch_shrink)
  small = jax.tree.map(lambda a: a[:n], step.latents)
  small_labels = None if step.labels is None else step.labels[:n]
  h, w_px = real.shape[1:3]  # y ~ N(0, 1 / (H W)), StyleGAN2's scaling.
  y = jax.random.normal(jax.random.fold_in(step.keys.step, 102), (n,) + real.shape[1:])
  y = y / math.sqrt(h * w_px)

  def with_pl(p):
    (penalty, new_mean), grads = jax.value_and_grad(
        lambda q: path_length(gan, q, small, small_labels, y, pl_mean), has_aux=True)(p)
    return penalty, new_mean, jax.tree.map(lambda g: g * (s.pl_weight * s.pl_every), grads)

  def without_pl(p):
    return last_penalty, pl_mean, jax.tree.map(jnp.zeros_like, p)

  return jax.lax.cond(count % s.pl_every == 0, with_pl, without_pl, g_params)
