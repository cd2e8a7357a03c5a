"""What StyleGAN adds to a GAN's step: w and its per-layer styles, mixing, truncation, w_avg.

The synthesis network reads one w per layer (`ws` [n, num_ws, W]): style
mixing feeds the layers from a crossover on with the w of a second latent,
truncation pulls every w towards the tracked average `w_avg` [K, W] (one row
per class for conditional models, else K = 1).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from genjax.methods.gan.networks import Gan
from genjax.models import stylegan


def map_ws(gan: Gan, params, z: jax.Array, labels: jax.Array | None):
  """The mapping network: z [n, Z] (labels [n]) -> (w [n, W], ws [n, num_ws, W], w at every layer)."""
  w = gan.generator.apply({'params': params}, z, labels, method=stylegan.StyleGenerator.map)
  return w, jnp.repeat(w[:, None], gan.num_ws, axis=1)


def synthesize(gan: Gan, params, ws: jax.Array, noise: list[jax.Array]) -> jax.Array:
  """The synthesis network: ws [n, num_ws, W] and noise (per layer [n, r, r, 1]) -> [n, H, W, C]."""
  return gan.generator.apply({'params': params}, ws, noise,
                             method=stylegan.StyleGenerator.synthesize)


def mixed_styles(gan: Gan, params, latents: dict, labels: jax.Array | None):
  """(w [n, W] of latents['z'], ws [n, num_ws, W]); with 'z2' in `latents`, mixed at 'crossover'."""
  w, ws = map_ws(gan, params, latents['z'], labels)
  if 'z2' in latents:
    ws = stylegan.mix_styles(ws, map_ws(gan, params, latents['z2'], labels)[1],
                             latents['crossover'])
  return w, ws


def draw_crossover(gan: Gan, key: jax.Array) -> jax.Array:
  """One sample's crossover layer [] int32: uniform in [1, num_ws) with probability
  `stylegan.style_mixing_prob`, else num_ws (no mixing). Draws from fold_in(key, 1)."""
  num_ws = gan.num_ws
  u_mix, u_cross = jax.random.uniform(jax.random.fold_in(key, 1), (2,))
  cross = 1 + jnp.floor(u_cross * (num_ws - 1)).astype(jnp.int32)  # Uniform in [1, num_ws).
  return jnp.where(u_mix < gan.style.style_mixing_prob, cross, num_ws)


def truncate_ws(gan: Gan, ws: jax.Array, w_avg: jax.Array, labels: jax.Array | None,
                psi: float) -> jax.Array:
  """The truncation trick on ws [n, num_ws, W] towards w_avg [K, W] (each sample's class row)."""
  if gan.conditional:
    return stylegan.truncate(ws, w_avg[labels][..., None, :], psi)
  return stylegan.truncate(ws, w_avg[0], psi)


def truncation_centers(gan: Gan, w_avg: jax.Array, labels, like: jax.Array) -> jax.Array:
  """The w_avg row of each sample [n, W]: its class's, or the one row broadcast to `like` [n, W]."""
  return w_avg[labels] if gan.conditional else jnp.broadcast_to(w_avg[0], like.shape)


def track_w_avg(gan: Gan, w_avg: jax.Array, w: jax.Array, labels: jax.Array | None) -> jax.Array:
  """w_avg [K, W] after one step's w [B, W] (decay `stylegan.w_avg_beta`)."""
  return stylegan.update_w_avg(w_avg, w, labels, gan.style.w_avg_beta)
