"""Pooling with a CPU-friendly gradient, numerically equal to flax's.

Why: `flax.linen.max_pool` is a `reduce_window`, whose gradient XLA computes
with `select_and_scatter`, a slow generic kernel on CPU. Non-overlapping
windows (stride = window, the classifier's 2x2 pooling) are a reshape and a
max over two axes instead, which differentiates into elementwise compares
(classifier train step about 25% faster, experiments/xla_cpu_convolutions/README.md).
tests/test_nn_pool.py proves outputs and gradients equal to flax's.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def max_pool(x: jax.Array, window: int = 2, padding: str = 'SAME') -> jax.Array:
  """Max-pooling over non-overlapping window x window tiles, as flax's with `padding`.

  Equal to `flax.linen.max_pool(x, (window, window), strides=(window, window),
  padding=padding)`: with 'SAME' a side that does not divide by the window is padded
  at the end with -inf (SAME's padding for stride = window puts it all at the end);
  with 'VALID' (VGG's) its last, incomplete tile is dropped.
  Gradients match wherever a tile's maximum is unique (ties: flax's gradient
  goes to one of the tied inputs, this one splits it among them; after a ReLU,
  tied zeros have zero gradient either way).

  Args:
    x: [B, H, W, C].
    window: the tile side k (also the stride).
    padding: 'SAME' | 'VALID'.

  Returns:
    [B, ceil(H / k), ceil(W / k), C] ('SAME') or [B, floor(H / k), floor(W / k), C].
  """
  if x.ndim != 4:
    raise ValueError(f'max_pool takes [B, H, W, C] images, got shape {x.shape}.')
  if window < 1:
    raise ValueError(f'max_pool window must be >= 1, got {window}.')
  if padding not in ('SAME', 'VALID'):
    raise ValueError(f"max_pool padding must be 'SAME' or 'VALID', got {padding!r}.")
  b, h, w, c = x.shape
  if padding == 'VALID':
    hp, wp = h // window * window, w // window * window
    x = x[:, :hp, :wp]
  else:
    hp, wp = -(-h // window) * window, -(-w // window) * window
  if (hp, wp) != x.shape[1:3]:
    x = jnp.pad(x, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)), constant_values=-jnp.inf)
  return jnp.max(x.reshape(b, hp // window, window, wp // window, window, c), axis=(2, 4))
