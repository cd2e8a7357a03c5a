"""GAN losses, the R1 penalty and the training monitors, as pure functions of logits.

Losses (discriminator logits in, scalar out; minimised):
- non-saturating (Goodfellow et al. 2014, the seed's binary cross-entropy):
  L_D = E softplus(-D(x)) + E softplus(D(G(z))),  L_G = E softplus(-D(G(z))).
  softplus(-l) = -log sigmoid(l), so these are the seed's BCE on logits,
  without the saturation of log(sigmoid) in float32.
- hinge (Lim & Ye 2017; Miyato et al. 2018):
  L_D = E relu(1 - D(x)) + E relu(1 + D(G(z))),  L_G = -E D(G(z)).

R1 (Mescheder et al. 2018): E_x ||grad_x D(x)||^2 on real images; the
discriminator minimises gamma / 2 times it.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


def ns_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Non-saturating discriminator loss from logits [B] and [B']: scalar."""
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def ns_g_loss(fake_logits: jax.Array) -> jax.Array:
  """Non-saturating generator loss -E log sigmoid(D(G(z))) from logits [B]: scalar."""
  return jnp.mean(jax.nn.softplus(-fake_logits))


def hinge_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Hinge discriminator loss from logits [B] and [B']: scalar."""
  return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def hinge_g_loss(fake_logits: jax.Array) -> jax.Array:
  """Hinge generator loss -E D(G(z)) from logits [B]: scalar."""
  return -jnp.mean(fake_logits)


class GanLoss(NamedTuple):
  """A GAN objective.

  Attributes:
    d_loss: (real logits [B], fake logits [B']) -> scalar.
    g_loss: fake logits [B] -> scalar.
    display: logits [B] -> what is logged as D(x), D(G(z)): probabilities
      (sigmoid) for the non-saturating loss, raw logits for hinge.
  """
  d_loss: Callable[[jax.Array, jax.Array], jax.Array]
  g_loss: Callable[[jax.Array], jax.Array]
  display: Callable[[jax.Array], jax.Array]


LOSSES = {
    'non_saturating': GanLoss(ns_d_loss, ns_g_loss, jax.nn.sigmoid),
    'hinge': GanLoss(hinge_d_loss, hinge_g_loss, lambda logits: logits),
}


def r1_penalty(d_fn: Callable[[jax.Array], jax.Array], real: jax.Array) -> jax.Array:
  """R1: mean over the batch of ||grad_x D(x)||^2 at real images.

  The gradient of sum_b D(x_b) with respect to x gives every sample's own
  gradient when D treats samples independently (true up to minibatch
  statistics, as in StyleGAN2's implementation).

  Args:
    d_fn: images [B, H, W, C] -> logits [B].
    real: [B, H, W, C].

  Returns:
    Scalar.
  """
  grads = jax.grad(lambda x: jnp.sum(d_fn(x)))(real)
  return jnp.mean(jnp.sum(jnp.square(grads).reshape(grads.shape[0], -1), axis=-1))


def path_lengths(synthesize: Callable[[jax.Array], jax.Array], ws: jax.Array,
                 y: jax.Array) -> jax.Array:
  """StyleGAN2's path lengths ||J_w^T y||_2 (Karras et al. 2020, sec. 3.2), one per sample.

  J_w is the Jacobian of the images with respect to the per-layer styles; the gradient of
  sum(images * y) with respect to ws gives J_w^T y for every sample at once (the synthesis
  network treats samples independently). As in StyleGAN2's code, the squared norm is summed
  over the W coordinates and averaged over the layers before the square root.

  Args:
    synthesize: ws [n, L, W] -> images [n, H, W, C].
    ws: [n, L, W].
    y: [n, H, W, C], normal noise scaled by 1 / sqrt(H W).

  Returns:
    [n].
  """
  images, vjp = jax.vjp(synthesize, ws)
  if images.shape != y.shape:
    raise ValueError(f'path_lengths: y has shape {y.shape}, the images {images.shape}.')
  (grads,) = vjp(y)
  return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=-1), axis=-1))


def path_length_penalty(lengths: jax.Array, pl_mean: jax.Array,
                        decay: float) -> tuple[jax.Array, jax.Array]:
  """StyleGAN2's path-length penalty E[(||J_w^T y|| - a)^2] with a the running mean of lengths.

  Args:
    lengths: [n] from `path_lengths`.
    pl_mean: scalar a before this step (0 at the start, as in StyleGAN2).
    decay: a moves this fraction of the way to mean(lengths) (0.01 in StyleGAN2).

  Returns:
    (penalty, the updated a); a is updated first and carries no gradient.
  """
  new_mean = pl_mean + decay * (jnp.mean(jax.lax.stop_gradient(lengths)) - pl_mean)
  return jnp.mean(jnp.square(lengths - new_mean)), new_mean


def mode_seeking_penalty(images: jax.Array, z: jax.Array, eps: float = 1e-5) -> jax.Array:
  """MSGAN's mode-seeking term (Mao et al. 2019, eq. 3), to be minimised by G.

  Pairs sample i with sample i + B/2 and returns 1 / (ratio + eps), where
  ratio = mean |G(z_i) - G(z_j)| / mean |z_i - z_j|: small when different
  latents give similar images, i.e. when the generator collapses.

  Args:
    images: [B, ...] fakes G(z), B even.
    z: [B, Z] their latents.
    eps: keeps the penalty finite for identical images.

  Returns:
    Scalar.
  """
  half = images.shape[0] // 2
  if half == 0 or images.shape[0] % 2:
    raise ValueError('mode_seeking_penalty pairs the two halves of an even batch; got a batch '
                     f'of {images.shape[0]}.')
  d_images = jnp.mean(jnp.abs(images[:half] - images[half:]))
  d_z = jnp.mean(jnp.abs(z[:half] - z[half:]))
  return 1.0 / (d_images / d_z + eps)


def label_histogram_entropy(probs: jax.Array) -> jax.Array:
  """Entropy (nats) of the histogram of predicted labels: mode-collapse alarm.

  log K when the batch's argmax labels are spread evenly over the K classes,
  0 when all samples get one label. A batch of B uniform draws has an
  expected value a little below log K (about log K - (K - 1) / (2B)).

  Args:
    probs: [B, K] class probabilities.

  Returns:
    Scalar in [0, log K].
  """
  k = probs.shape[-1]
  freq = jnp.mean(jax.nn.one_hot(jnp.argmax(probs, -1), k), axis=0)  # [K]
  return -jnp.sum(jnp.where(freq > 0, freq * jnp.log(jnp.where(freq > 0, freq, 1.0)), 0.0))
