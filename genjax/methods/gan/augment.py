"""Differentiable augmentation for GAN discriminators (DiffAugment, Zhao et al. 2020).

A discriminator trained on a few thousand images learns them by heart within
a few epochs and its gradients stop telling the generator anything useful:
the generator collapses onto the few fakes that still fool it. DiffAugment
applies the *same* random, differentiable transformations to every image the
discriminator sees, real or fake, in both players' losses (and R1), so D
cannot overfit the training set while G still receives gradients through
the transformation. Operations (the paper's policy names):

- `translation`: shift by up to 1/8 of the side in each axis, filling with
  the background value -1 (digits sit on -1 in [-1, 1]);
- `cutout`: set a square of half the side, at a random centre, to 0;
- `color`: random brightness (+U[-0.5, 0.5]), saturation (x U[0, 2]; a no-op on
  grayscale) and contrast (x U[0.5, 1.5]) as in the paper.

Each is a pure function of (images, key), so one step's augmentation is a
function of the step's key alone.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax


def translation(images: jax.Array, key: jax.Array, ratio: float = 0.125,
                fill: float = -1.0) -> jax.Array:
  """Random integer shift per sample: [B, H, W, C] -> [B, H, W, C], vacated pixels = fill."""
  b, h, w, _ = images.shape
  ph, pw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  shifts = jax.random.randint(key, (b, 2), jnp.array([-ph, -pw]), jnp.array([ph, pw]) + 1)
  padded = jnp.pad(images, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=fill)

  def one(img, s):  # Output pixel (y, x) reads input (y - dy, x - dx): a shift by (dy, dx).
    return lax.dynamic_slice(img, (ph - s[0], pw - s[1], 0), (h, w, img.shape[-1]))

  return jax.vmap(one)(padded, shifts)


def cutout(images: jax.Array, key: jax.Array, ratio: float = 0.5) -> jax.Array:
  """Zeroes one square of side ratio * H per sample, its centre uniform over the image."""
  b, h, w, _ = images.shape
  ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  ky, kx = jax.random.split(key)
  cy = jax.random.randint(ky, (b, 1, 1), 0, h + (1 - ch % 2))
  cx = jax.random.randint(kx, (b, 1, 1), 0, w + (1 - cw % 2))
  y, x = jnp.arange(h)[None, :, None], jnp.arange(w)[None, None, :]
  dy, dx = y - cy, x - cx  # The square covers [c - side // 2, c - side // 2 + side).
  inside = (dy >= -(ch // 2)) & (dy < ch - ch // 2) & (dx >= -(cw // 2)) & (dx < cw - cw // 2)
  return jnp.where(inside[..., None], 0.0, images)


def color(images: jax.Array, key: jax.Array) -> jax.Array:
  """Random brightness, saturation and contrast per sample (DiffAugment's `color`)."""
  b = images.shape[0]
  kb, ks, kc = jax.random.split(key, 3)
  u = lambda k, lo, hi: jax.random.uniform(k, (b, 1, 1, 1), minval=lo, maxval=hi)
  x = images + u(kb, -0.5, 0.5)
  mean_c = jnp.mean(x, axis=-1, keepdims=True)
  x = (x - mean_c) * u(ks, 0.0, 2.0) + mean_c
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * u(kc, 0.5, 1.5) + mean


OPS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    'translation': translation, 'cutout': cutout, 'color': color}


def parse_policy(policy: str) -> tuple[str, ...]:
  """'translation,cutout' -> ('translation', 'cutout'); '' -> (); unknown names raise."""
  names = tuple(p.strip() for p in policy.split(',') if p.strip())
  unknown = [n for n in names if n not in OPS]
  if unknown:
    raise ValueError(f'gan.diff_augment={policy!r}: unknown {unknown}; accepted: comma-separated '
                     f'names from {sorted(OPS)}, or "" for none.')
  return names


def diff_augment(images: jax.Array, key: jax.Array, policy: tuple[str, ...]) -> jax.Array:
  """Applies the policy's operations in order: [B, H, W, C] -> [B, H, W, C]; () is the identity."""
  for i, name in enumerate(policy):
    images = OPS[name](images, jax.random.fold_in(key, i))
  return images
