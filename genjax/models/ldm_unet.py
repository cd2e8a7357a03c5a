"""The latent U-Net of LDM (Rombach et al. 2022): residual blocks and SpatialTransformer blocks
that cross-attend from the latent's pixels to a text encoder's per-token embeddings.

The residual blocks, up/downsampling and the noise embedding are the pixel U-Net's
(genjax.nn.blocks); the text enters twice: every SpatialTransformer attends to the tokens
(padding masked out), and the pooled text embedding is added to the noise embedding (as
Imagen and SDXL do), which carries the global content (the digit) early in training.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.models.text import attention
from genjax.nn.blocks import Downsample, ResBlock, Upsample, sinusoidal_embedding
from genjax.nn.conv import Conv


def _group_norm(channels: int) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=math.gcd(32, channels))


class CrossAttention(nn.Module):
  """Queries from x [B, N, C], keys and values from a context [B, T, D] (self-attention when
  the context is None); context_mask [B, T] False on padding. Returns [B, N, C]."""
  num_heads: int = 4

  @nn.compact
  def __call__(self, x: jax.Array, context: jax.Array | None = None,
               context_mask: jax.Array | None = None) -> jax.Array:
    c = x.shape[-1]
    context = x if context is None else context
    q = nn.Dense(c, use_bias=False, name='q')(x)
    k = nn.Dense(c, use_bias=False, name='k')(context)
    v = nn.Dense(c, use_bias=False, name='v')(context)
    return nn.Dense(c, name='out')(attention(q, k, v, context_mask, self.num_heads))


class SpatialTransformer(nn.Module):
  """LDM's SpatialTransformer: norm, project in, [self-attention, cross-attention, GEGLU
  feed-forward] x depth, project out (zero-initialised), residual. [B, H, W, C] -> same."""
  num_heads: int = 4
  depth: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, context: jax.Array, context_mask: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    y = nn.Dense(c, name='proj_in')(_group_norm(c)(x)).reshape(b, h * w, c)
    for i in range(self.depth):
      y = y + CrossAttention(self.num_heads, name=f'self_attn{i}')(nn.LayerNorm()(y))
      y = y + CrossAttention(self.num_heads, name=f'cross_attn{i}')(nn.LayerNorm()(y), context,
                                                                   context_mask)
      value, gate = jnp.split(nn.Dense(8 * c, name=f'ff_in{i}')(nn.LayerNorm()(y)), 2, axis=-1)
      y = y + nn.Dense(c, name=f'ff_out{i}')(value * nn.gelu(gate))  # GEGLU (Shazeer 2020).
    y = nn.Dense(c, kernel_init=nn.initializers.zeros, name='proj_out')(y)
    return x + y.reshape(b, h, w, c)


class LatentUNet(nn.Module):
  """(z [B, h, w, C], noise label [B], context [B, T, D], mask [B, T], pooled [B, D]) -> [B, h, w, C].

  Attributes:
    out_channels: the latent's channels.
    channels: width per level; each level but the last halves the side (7 -> 4).
    num_res_blocks: residual blocks per level on the way down (one more on the way up).
    transformer_resolutions: sides at which a SpatialTransformer follows each block (the
      middle block always has one).
    num_heads: attention heads.
    transformer_depth: transformer blocks per SpatialTransformer.
    dropout: in residual blocks.
    use_pooled: add the pooled text embedding to the noise embedding.
  """
  out_channels: int = 4
  channels: Sequence[int] = (64, 128)
  num_res_blocks: int = 1
  transformer_resolutions: Sequence[int] = (7, 4)
  num_heads: int = 4
  transformer_depth: int = 1
  dropout: float = 0.0
  use_pooled: bool = True

  @nn.compact
  def __call__(self, z: jax.Array, noise_label: jax.Array, context: jax.Array,
               context_mask: jax.Array, pooled: jax.Array | None = None, *,
               train: bool = False) -> jax.Array:
    ch = self.channels[0]
    emb = nn.Dense(4 * ch)(sinusoidal_embedding(noise_label, ch))
    emb = nn.Dense(4 * ch)(nn.silu(emb))
    if self.use_pooled:
      emb = emb + nn.Dense(4 * ch, name='pooled_proj')(pooled)
    # The (float32) noise embedding in the activations' dtype: under bf16 compute, adding it
    # would promote every later layer back to float32.
    if jnp.finfo(z.dtype).bits < 32:
      emb = emb.astype(z.dtype)

    def block(h, features):
      h = ResBlock(features, self.dropout)(h, emb, train=train)
      if h.shape[1] in self.transformer_resolutions:
        h = SpatialTransformer(self.num_heads, self.transformer_depth)(h, context, context_mask)
      return h

    h = Conv(ch, (3, 3), name='stem')(z)
    skips = [h]
    for level, width in enumerate(self.channels):
      for _ in range(self.num_res_blocks):
        h = block(h, width)
        skips.append(h)
      if level < len(self.channels) - 1:
        h = Downsample()(h)
        skips.append(h)
    h = ResBlock(h.shape[-1], self.dropout)(h, emb, train=train)
    h = SpatialTransformer(self.num_heads, self.transformer_depth)(h, context, context_mask)
    h = ResBlock(h.shape[-1], self.dropout)(h, emb, train=train)
    for level, width in reversed(list(enumerate(self.channels))):
      for _ in range(self.num_res_blocks + 1):
        h = block(jnp.concatenate([h, skips.pop()], axis=-1), width)
      if level > 0:
        h = Upsample()(h)
        h = h[:, :skips[-1].shape[1], :skips[-1].shape[2]]  # Odd sides: 4 -> 8, cropped to 7.
    h = nn.silu(_group_norm(h.shape[-1])(h))
    return Conv(self.out_channels, (3, 3), kernel_init=nn.initializers.zeros, name='head')(h)
