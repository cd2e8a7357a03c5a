"""StyleGAN2's residual discriminator (Karras et al. 2020), optionally a projection discriminator.

From-RGB 1x1 conv, per resolution two 3x3 convs with a 2x2 average-pool
down-sampling and a 1x1 skip, minibatch standard deviation, a 3x3 conv and
two dense layers; with labels, the projection term of Miyato & Koyama (2018).
Equalized learning rate throughout (`genjax.models.stylegan_layers`).
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.models.stylegan_layers import EqualConv, EqualDense, downsample2x, lrelu


def minibatch_stddev(x: jax.Array, group_size: int = 4) -> jax.Array:
  """Appends the minibatch standard-deviation feature map (Karras et al. 2018, sec. 3).

  Args:
    x: [B, H, W, C]; groups of gcd(B, group_size) samples share statistics.
    group_size: the largest group.

  Returns:
    [B, H, W, C + 1].
  """
  b, h, w, c = x.shape
  g = math.gcd(b, group_size)
  y = x.reshape(g, b // g, h, w, c)
  std = jnp.sqrt(jnp.var(y, axis=0) + 1e-8)  # [B/G, H, W, C]
  feat = jnp.mean(std, axis=(1, 2, 3))  # [B/G]
  feat = jnp.tile(feat, g)[:, None, None, None]  # Sample i belongs to group i % (B/G).
  return jnp.concatenate([x, jnp.broadcast_to(feat, (b, h, w, 1))], axis=-1)


class StyleDiscriminator(nn.Module):
  """StyleGAN2's residual discriminator: images [B, H, W, C] (and labels [B]) -> logits [B].

  Labels [B, m] mark packs of m samples (PacGAN, images [B, H, W, m C]).

  Attributes:
    channels: feature maps at HxW, H/2 x W/2, ..., 4x4 (one per resolution).
    num_classes: 0, or K for a projection discriminator.
    mbstd_group: minibatch-stddev group size.
  """
  channels: Sequence[int] = (32, 64, 128, 256)
  num_classes: int = 0
  mbstd_group: int = 4

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    side = 4 * 2 ** (len(self.channels) - 1)
    if x.shape[1:3] != (side, side):
      raise ValueError(f'StyleGAN discriminator with {len(self.channels)} resolutions reads '
                       f'{side}x{side} images, got {x.shape[1]}x{x.shape[2]}; set '
                       'gan.disc_channels.')
    x = lrelu(EqualConv(self.channels[0], 1, name='from_rgb')(x))
    for i in range(len(self.channels) - 1):
      r = side // 2 ** i
      skip = EqualConv(self.channels[i + 1], 1, use_bias=False, name=f'b{r}_skip')(downsample2x(x))
      h = lrelu(EqualConv(self.channels[i], 3, name=f'b{r}_conv0')(x))
      h = lrelu(EqualConv(self.channels[i + 1], 3, name=f'b{r}_conv1')(downsample2x(h)))
      x = (skip + h) * math.sqrt(0.5)  # Keeps unit variance (StyleGAN2 residual gain).
    x = minibatch_stddev(x, self.mbstd_group)
    x = lrelu(EqualConv(self.channels[-1], 3, name='b4_conv')(x))
    phi = lrelu(EqualDense(self.channels[-1], name='b4_dense')(x.reshape(x.shape[0], -1)))
    out = EqualDense(1, name='out')(phi)[:, 0]
    if self.num_classes:
      if labels is None:
        raise ValueError('A conditional discriminator needs labels.')
      one_hot = jax.nn.one_hot(labels, self.num_classes)
      if one_hot.ndim == 3:  # Packs of m samples (PacGAN): the sum of the members' terms.
        one_hot = jnp.sum(one_hot, axis=1)
      emb = EqualDense(phi.shape[-1], use_bias=False, name='label_proj')(one_hot)
      out = out + jnp.sum(emb * phi, axis=-1) / math.sqrt(phi.shape[-1])
    return out
