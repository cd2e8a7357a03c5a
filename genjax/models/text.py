"""A small transformer text encoder: token ids -> per-token embeddings and a pooled one.

The latent U-Net attends to the per-token output [B, T, D] (cross-attention); CLIP-style
pre-training and the CLIP score use the pooled [B, D]. Padding (id 0) is masked out of
every attention and of the pooling, so a prompt encodes the same whatever its padded
length. Any other encoder with the signature `TokenEncoder` can stand in for it.
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

PAD_ID = 0
# Any text encoder the LDM accepts: token ids [B, T] -> (tokens [B, T, D], pooled [B, D]).
TokenEncoder = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


def attention(q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array | None,
              num_heads: int) -> jax.Array:
  """Multi-head scaled dot-product attention with a mask over the keys.

  Args:
    q: [B, N, D] queries; k, v: [B, S, D] keys and values (D divisible by num_heads).
    key_mask: [B, S] bool, False for keys to ignore (padding); None: all keys count.
    num_heads: heads.

  Returns:
    [B, N, D].
  """
  b, n, d = q.shape
  heads = lambda a: a.reshape(a.shape[0], a.shape[1], num_heads, d // num_heads)
  mask = None if key_mask is None else key_mask[:, None, None, :]  # [B, 1, 1, S]
  out = jax.nn.dot_product_attention(heads(q), heads(k), heads(v), mask=mask)
  return out.reshape(b, n, d)


class _Block(nn.Module):
  """Pre-LayerNorm transformer block: masked self-attention, then a GELU MLP."""
  num_heads: int

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    """x [B, T, D], mask [B, T] -> [B, T, D]."""
    d = x.shape[-1]
    h = nn.LayerNorm()(x)
    q, k, v = jnp.split(nn.Dense(3 * d, name='qkv')(h), 3, axis=-1)
    x = x + nn.Dense(d, name='proj')(attention(q, k, v, mask, self.num_heads))
    h = nn.Dense(4 * d, name='mlp_in')(nn.LayerNorm()(x))
    return x + nn.Dense(d, name='mlp_out')(nn.gelu(h))


class TextEncoder(nn.Module):
  """Token ids [B, T] -> (tokens [B, T, width], pooled [B, width]).

  Attributes:
    vocab_size: number of token ids (id 0 is padding).
    width: D.
    depth: transformer blocks.
    num_heads: attention heads (width must divide by it).
    max_tokens: the longest sequence (learned positions).
  """
  vocab_size: int
  width: int = 128
  depth: int = 2
  num_heads: int = 4
  max_tokens: int = 16

  @nn.compact
  def __call__(self, ids: jax.Array) -> tuple[jax.Array, jax.Array]:
    t = ids.shape[1]
    if t > self.max_tokens:
      raise ValueError(f'{t} tokens given; this text encoder reads at most {self.max_tokens}.')
    mask = ids != PAD_ID  # [B, T]
    x = nn.Embed(self.vocab_size, self.width, name='tokens')(ids)
    x = x + self.param('positions', nn.initializers.normal(0.02), (self.max_tokens, self.width))[:t]
    for _ in range(self.depth):
      x = _Block(self.num_heads)(x, mask)
    x = nn.LayerNorm(name='final_norm')(x)
    weights = mask[..., None].astype(x.dtype)
    pooled = (x * weights).sum(1) / jnp.maximum(weights.sum(1), 1.0)  # Mean over real tokens.
    return x, pooled
