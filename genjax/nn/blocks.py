"""Building blocks of diffusion U-Nets (Ho et al. 2020; Dhariwal & Nichol 2021).

NHWC throughout. Upsampling repeats pixels instead of calling
`jax.image.resize`: the same nearest-neighbour result, and on CPU a
gradient several times cheaper.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn.conv import Conv


def sinusoidal_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0, *,
                         flip_sin_to_cos: bool = True, freq_shift: float = 0.0) -> jax.Array:
  """Transformer-style embedding of (continuous) noise labels, in float32.

  Frequencies max_period^(-i / (D/2 - freq_shift)), i < D/2. genjax's default
  (cos first, shift 0) is the ADM/EDM form; diffusers' DDPM checkpoints use
  sin first and shift 1 (`flip_sin_to_cos=False, freq_shift=1`).

  Args:
    t: [B] noise labels (a timestep in [0, T) or EDM's c_noise).
    dim: even embedding size D.
    max_period: the longest wavelength.
    flip_sin_to_cos: cos of the D/2 frequencies first (True) or sin first.
    freq_shift: diffusers' `downscale_freq_shift`.

  Returns:
    [B, D]: cos then sin of the D/2 frequencies (or sin then cos).
  """
  if dim % 2:
    raise ValueError(f'sinusoidal_embedding needs an even dim, got {dim}.')
  half = dim // 2
  exponent = -math.log(max_period) * jnp.arange(half, dtype=jnp.float32)
  freqs = jnp.exp(exponent / (half - freq_shift))
  args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None]
  parts = [jnp.cos(args), jnp.sin(args)]
  return jnp.concatenate(parts if flip_sin_to_cos else parts[::-1], axis=-1)


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
  """[B, H, W, C] -> [B, fH, fW, C], each pixel repeated f x f times."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
  return x.reshape(b, h * factor, w * factor, c)


def _norm(channels: int) -> nn.GroupNorm:
  # 32 groups as in DDPM, fewer for narrow layers (groups must divide the channels).
  return nn.GroupNorm(num_groups=math.gcd(32, channels))


class ResBlock(nn.Module):
  """GroupNorm-SiLU-conv twice, the embedding added in between, with a residual path.

  Attributes:
    features: output channels.
    dropout: rate before the second conv.
  """
  features: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, emb: jax.Array, *, train: bool) -> jax.Array:
    """x [B, H, W, C], emb [B, E] -> [B, H, W, features]."""
    h = Conv(self.features, (3, 3))(nn.silu(_norm(x.shape[-1])(x)))
    h = h + nn.Dense(self.features)(nn.silu(emb))[:, None, None, :]
    h = nn.silu(_norm(self.features)(h))
    h = nn.Dropout(self.dropout)(h, deterministic=not train)
    h = Conv(self.features, (3, 3), kernel_init=nn.initializers.zeros)(h)
    if x.shape[-1] != self.features:
      x = Conv(self.features, (1, 1), name='skip')(x)
    return x + h


class SelfAttention(nn.Module):
  """Single-head (or multi-head) self-attention over the pixels, residual.

  Attributes:
    num_heads: heads; the channels must divide by it.
  """
  num_heads: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H, W, C]."""
    b, h, w, c = x.shape
    q, k, v = jnp.split(nn.Dense(3 * c, name='qkv')(_norm(c)(x)).reshape(b, h * w, 3 * c), 3, -1)
    heads = lambda a: a.reshape(b, h * w, self.num_heads, c // self.num_heads)
    out = jax.nn.dot_product_attention(heads(q), heads(k), heads(v))
    out = nn.Dense(c, name='proj', kernel_init=nn.initializers.zeros)(out.reshape(b, h, w, c))
    return x + out


class Downsample(nn.Module):
  """3x3 conv with stride 2: [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), C]."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return Conv(x.shape[-1], (3, 3), strides=(2, 2))(x)


class Upsample(nn.Module):
  """Nearest x2 then 3x3 conv: [B, H, W, C] -> [B, 2H, 2W, C]."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return Conv(x.shape[-1], (3, 3))(upsample_nearest(x, 2))
