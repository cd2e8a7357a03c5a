"""ESRGAN's losses: the relativistic average GAN (Jolicoeur-Martineau 2018), L1, perceptual.

With C the discriminator's logit, the relativistic average discriminator is
D_Ra(x_r, x_f) = sigmoid(C(x_r) - E_f[C(x_f)]) (ESRGAN, eq. 1-3):

  L_D = -E_r[log D_Ra(x_r, x_f)] - E_f[log(1 - D_Ra(x_f, x_r))]
  L_G = -E_r[log(1 - D_Ra(x_r, x_f))] - E_f[log D_Ra(x_f, x_r)]

Both are halved here, as BasicSR's ESRGANModel (the weights 5e-3 etc. were tuned
with that scaling): each is the mean of its two binary cross-entropies.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def relativistic_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """The discriminator's relativistic average loss [] from logits C(real) [B], C(fake) [B]."""
  real_rel = real_logits - jnp.mean(fake_logits)
  fake_rel = fake_logits - jnp.mean(real_logits)
  return 0.5 * (jnp.mean(optax.sigmoid_binary_cross_entropy(real_rel, jnp.ones_like(real_rel)))
                + jnp.mean(optax.sigmoid_binary_cross_entropy(fake_rel, jnp.zeros_like(fake_rel))))


def relativistic_g_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """The generator's relativistic average loss []: the same with the labels swapped."""
  real_rel = real_logits - jnp.mean(fake_logits)
  fake_rel = fake_logits - jnp.mean(real_logits)
  return 0.5 * (jnp.mean(optax.sigmoid_binary_cross_entropy(real_rel, jnp.zeros_like(real_rel)))
                + jnp.mean(optax.sigmoid_binary_cross_entropy(fake_rel, jnp.ones_like(fake_rel))))


def l1(a: jax.Array, b: jax.Array) -> jax.Array:
  """Mean absolute difference [] of two equally shaped arrays."""
  return jnp.mean(jnp.abs(a - b))


def l2(a: jax.Array, b: jax.Array) -> jax.Array:
  """Mean squared difference [] of two equally shaped arrays (PSNR's MSE)."""
  return jnp.mean(jnp.square(a - b))


PIXEL_LOSSES = {'l1': l1, 'l2': l2}
