"""LDM's KL-regularised autoencoder (Rombach et al. 2022, appendix G), for small images.

The encoder halves the side `len(channels) - 1` times (28 -> 14 -> 7) and outputs the mean
and log-variance of a diagonal Gaussian posterior over a [H/f, W/f, latent_channels] latent;
the decoder maps a latent back to the image. The KL term against N(0, I) is weighted very
lightly (LDM's 1e-6), so the latent keeps detail, and its scale is fixed afterwards by
measuring its standard deviation (`latent_scale`), as LDM does.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn.conv import Conv


def _norm(channels: int) -> nn.GroupNorm:
  # Groups must divide the channels: at most 8 for these narrow layers.
  return nn.GroupNorm(num_groups=min(8, channels))


class _ResBlock(nn.Module):
  """GroupNorm-SiLU-conv twice with a residual path (no noise embedding, unlike the U-Net's)."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H, W, features]."""
    h = Conv(self.features, (3, 3))(nn.silu(_norm(x.shape[-1])(x)))
    h = Conv(self.features, (3, 3))(nn.silu(_norm(self.features)(h)))
    if x.shape[-1] != self.features:
      x = Conv(self.features, (1, 1), name='skip')(x)
    return x + h


class Encoder(nn.Module):
  """x [B, H, W, C] -> (mean, logvar), each [B, H/f, W/f, latent_channels], f = 2^(levels-1)."""
  channels: Sequence[int] = (32, 64)
  latent_channels: int = 4

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = Conv(self.channels[0], (3, 3), name='stem')(x)
    for level, width in enumerate(self.channels):
      if level:
        h = Conv(width, (3, 3), strides=(2, 2), name=f'down{level}')(h)
      h = _ResBlock(width)(h)
    h = nn.silu(_norm(h.shape[-1])(h))
    moments = Conv(2 * self.latent_channels, (3, 3), name='moments')(h)
    mean, logvar = jnp.split(moments, 2, axis=-1)
    return mean, jnp.clip(logvar, -30.0, 20.0)  # LDM's clamp: exp() stays finite.


class Decoder(nn.Module):
  """z [B, h, w, latent_channels] -> x [B, h * f, w * f, out_channels] (unbounded)."""
  channels: Sequence[int] = (32, 64)
  out_channels: int = 1

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = Conv(self.channels[-1], (3, 3), name='stem')(z)
    for level, width in reversed(list(enumerate(self.channels))):
      h = _ResBlock(width)(h)
      if level:
        b, hh, ww, c = h.shape  # Nearest x2, then a conv (no checkerboard of strided transposes).
        h = jnp.broadcast_to(h[:, :, None, :, None], (b, hh, 2, ww, 2, c)).reshape(
            b, 2 * hh, 2 * ww, c)
        h = Conv(self.channels[level - 1], (3, 3), name=f'up{level}')(h)
    h = nn.silu(_norm(h.shape[-1])(h))
    return Conv(self.out_channels, (3, 3), name='head')(h)


class Autoencoder(nn.Module):
  """The KL autoencoder: `encode`, `decode`, and `__call__` (reconstruct through a sample).

  Attributes:
    channels: widths per level; the latent side is H / 2^(len(channels) - 1).
    latent_channels: the latent's channels (LDM's f4/f8 models use 3 or 4).
    out_channels: the image's channels.
  """
  channels: Sequence[int] = (32, 64)
  latent_channels: int = 4
  out_channels: int = 1

  def setup(self):
    self.encoder = Encoder(tuple(self.channels), self.latent_channels)
    self.decoder = Decoder(tuple(self.channels), self.out_channels)

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x [B, H, W, C] in [-1, 1] -> posterior (mean, logvar) [B, h, w, latent_channels]."""
    return self.encoder(x)

  def decode(self, z: jax.Array) -> jax.Array:
    """z [B, h, w, latent_channels] (unscaled) -> x_hat [B, H, W, C]."""
    return self.decoder(z)

  def __call__(self, x: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """x [B, H, W, C] -> (x_hat [B, H, W, C], mean, logvar), z drawn from the posterior."""
    mean, logvar = self.encode(x)
    # The noise drawn in float32 (a bf16 draw would be other numbers, not a rounding of these)
    # and cast to the activations' dtype: under bf16 compute, a float32 noise would promote
    # the decoder to float32.
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape).astype(mean.dtype)
    return self.decode(z), mean, logvar


def kl_to_standard_normal(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mean, exp(logvar)) || N(0, I)) per example [B], summed over the latent [B, h, w, c]."""
  return 0.5 * jnp.sum(mean**2 + jnp.exp(logvar) - 1.0 - logvar, axis=(1, 2, 3))
