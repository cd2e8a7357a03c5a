"""The seed document's convolutional VAE (encoder q(z|x), decoder p(x|z)), optionally label-conditional.

Encoder: conv 32 and 64 at stride 2 (28 -> 14 -> 7), dense 256, then the mean
and log-variance of a diagonal Gaussian over z. Decoder, mirrored: dense
7*7*64, transposed convs 64 and 32 at stride 2, and a last 3x3 layer that
gives per-pixel logits (Bernoulli) or means (Gaussian). A conditional VAE
feeds the one-hot label to both (the article's "label -> features -> image").
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn.conv import Conv, ConvTranspose


class Encoder(nn.Module):
  """x [B, H, W, C] (and labels [B]) -> (mean [B, Z], logvar [B, Z])."""
  latent_dim: int = 32
  channels: Sequence[int] = (32, 64)
  hidden: int = 256
  num_classes: int = 0  # > 0: conditional on one-hot labels.

  @nn.compact
  def __call__(self, x, labels=None):
    for c in self.channels:
      x = nn.relu(Conv(c, (3, 3), strides=(2, 2))(x))
    h = x.reshape(x.shape[0], -1)
    if self.num_classes:
      h = jnp.concatenate([h, jax.nn.one_hot(labels, self.num_classes, dtype=h.dtype)], -1)
    h = nn.relu(nn.Dense(self.hidden)(h))
    return nn.Dense(self.latent_dim, name='mean')(h), nn.Dense(self.latent_dim, name='logvar')(h)


class Decoder(nn.Module):
  """z [B, Z] (and labels [B]) -> per-pixel parameters [B, H, W, C] (logits or means)."""
  image_shape: Sequence[int] = (28, 28, 1)
  channels: Sequence[int] = (64, 32)
  num_classes: int = 0

  @nn.compact
  def __call__(self, z, labels=None):
    h, w, c = self.image_shape
    down = 2 ** len(self.channels)
    if h % down or w % down:
      raise ValueError(f'Image side {h}x{w} must divide by {down} for {len(self.channels)} '
                       'stride-2 layers.')
    if self.num_classes:
      z = jnp.concatenate([z, jax.nn.one_hot(labels, self.num_classes, dtype=z.dtype)], -1)
    x = nn.relu(nn.Dense((h // down) * (w // down) * self.channels[0])(z))
    x = x.reshape(z.shape[0], h // down, w // down, self.channels[0])
    for ch in self.channels:
      x = nn.relu(ConvTranspose(ch, (3, 3), strides=(2, 2))(x))
    return ConvTranspose(c, (3, 3), name='out')(x)


class VAE(nn.Module):
  """Encoder + decoder; `__call__` encodes, samples z by reparameterisation and decodes.

  Attributes:
    image_shape: (H, W, C) of the data.
    latent_dim: Z.
    enc_channels, dec_channels, hidden: widths (the seed: (32, 64), (64, 32), 256).
    num_classes: 0 for an unconditional VAE, K for a conditional one.
  """
  image_shape: Sequence[int] = (28, 28, 1)
  latent_dim: int = 32
  enc_channels: Sequence[int] = (32, 64)
  dec_channels: Sequence[int] = (64, 32)
  hidden: int = 256
  num_classes: int = 0

  def setup(self):
    self.encoder = Encoder(self.latent_dim, self.enc_channels, self.hidden, self.num_classes)
    self.decoder = Decoder(self.image_shape, self.dec_channels, self.num_classes)

  def encode(self, x, labels=None):
    """(mean, logvar), each [B, Z], of q(z|x)."""
    return self.encoder(x, labels)

  def decode(self, z, labels=None):
    """Per-pixel parameters [B, H, W, C] of p(x|z)."""
    return self.decoder(z, labels)

  def __call__(self, x, rng, labels=None):
    """(decoder output [B, H, W, C], mean [B, Z], logvar [B, Z], z [B, Z])."""
    mean, logvar = self.encode(x, labels)
    # The noise drawn in float32 (the same draws in any precision), then in the compute dtype
    # (bf16 under mixed precision), so the decoder stays in it.
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape).astype(mean.dtype)
    return self.decode(z, labels), mean, logvar, z
