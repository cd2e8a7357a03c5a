"""Winograd F(2x2, 3x3) against lax's 3x3 convolution, per layer, forward and both gradients.

Usage: python experiments/xla_cpu_convolutions/winograd.py [--shapes=128x28x32x32,128x14x64x64]

Winograd's minimal filtering (Lavin & Gray 2016) computes each 2x2 output tile from a 4x4
input tile with 16 multiplies per channel pair instead of 36: 2.25x fewer FLOPs, as 16
batched matrix products [tiles, C_in] x [C_in, C_out] between elementwise transforms. On
XLA:CPU both the transforms and the products are plain jnp, and autodiff gives the gradients
(whose kernel gradient becomes 16 products contracting over all tiles, the shape XLA's matrix
products run fastest). This script measures whether that beats lax's convolution here, on
both of XLA:CPU's convolution libraries (genjax/core/xla_cpu.py), and checks the values and
gradients against lax's. It is a measurement, not a genjax fast path: at the shapes of
genjax's models it does not win (RESULTS.md, performance section).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from genjax.core import malloc  # noqa: E402

malloc.keep_freed_memory()  # As genjax commands do (genjax/core/malloc.py).

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from genjax.core import xla_cpu  # noqa: E402

# F(2, 3): kernel transform G (4x3), input transform B^T (4x4, applied below as sums of the
# tile's rows d0..d3), output transform A^T (2x4).
_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float32)
SHAPES = '128x28x32x32,128x14x64x64,128x7x128x128,128x14x32x64,128x7x64x128'


def _input_transform(x: jax.Array, axis: int) -> jax.Array:
  """B^T along `axis` over tiles of 4 at stride 2: [..., 2n + 2, ...] -> [4, ..., n, ...]."""
  n = (x.shape[axis] - 2) // 2
  split = lambda t: [jnp.squeeze(a, axis + 1) for a in jnp.split(
      t.reshape(t.shape[:axis] + (n, 2) + t.shape[axis + 1:]), 2, axis + 1)]
  d0, d1 = split(lax.slice_in_dim(x, 0, 2 * n, axis=axis))  # Rows 2i and 2i + 1,
  d2, d3 = split(lax.slice_in_dim(x, 2, 2 * n + 2, axis=axis))  # 2i + 2 and 2i + 3.
  return jnp.stack([d0 - d2, d1 + d2, d2 - d1, d1 - d3])


def winograd_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """3x3 'SAME' stride-1 convolution [B, H, W, C_in] x [3, 3, C_in, C_out] -> [B, H, W, C_out]."""
  b, h, w, c = x.shape
  nh, nw = -(-h // 2), -(-w // 2)
  xp = jnp.pad(x, ((0, 0), (1, 1 + 2 * nh - h), (1, 1 + 2 * nw - w), (0, 0)))
  v = _input_transform(_input_transform(xp, 1), 3)  # [4 (col), 4 (row), B, nh, nw, C_in]
  u = jnp.einsum('ai,bj,ijcd->bacd', _G, _G, kernel)  # G g G^T: [4 (col), 4 (row), C_in, C_out]
  m = jnp.einsum('banc,bacd->band', v.reshape(4, 4, -1, c), u).reshape(4, 4, b, nh, nw, -1)
  m0, m1, m2, m3 = (m[:, i] for i in range(4))  # A^T over rows: output rows 2i and 2i + 1.
  r = jnp.stack([m0 + m1 + m2, m1 - m2 - m3], axis=3)  # [4 (col), B, nh, 2, nw, C_out]
  r0, r1, r2, r3 = (r[i] for i in range(4))  # Then over columns.
  y = jnp.stack([r0 + r1 + r2, r1 - r2 - r3], axis=-2).reshape(b, 2 * nh, 2 * nw, -1)
  return y[:, :h, :w]


def lax_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, (1, 1), 'SAME',
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _forward_backward(conv):
  def run(x, kernel, dy):
    y, vjp = jax.vjp(conv, x, kernel)
    return y, vjp(dy)
  return run


def _best_ms(fn, *args, repeats: int = 7) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return 1e3 * min(times)


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--shapes', default=SHAPES, help='BxHxC_inxC_out, comma-separated (square images)')
  args = p.parse_args()
  print('| layer (B, H=W, C_in->C_out) | max rel. error (y, dx, dk) | library '
        '| lax fwd / fwd+grads ms '
        '| Winograd fwd / fwd+grads ms |')
  print('|---|---|---|---|---|')
  for spec in args.shapes.split(','):
    b, s, ci, co = (int(v) for v in spec.split('x'))
    x = jax.random.normal(jax.random.key(0), (b, s, s, ci))
    kernel = jax.random.normal(jax.random.key(1), (3, 3, ci, co)) / np.sqrt(9 * ci)
    dy = jax.random.normal(jax.random.key(2), (b, s, s, co))
    want = jax.tree.leaves(_forward_backward(lax_conv)(x, kernel, dy))
    got = jax.tree.leaves(_forward_backward(winograd_conv)(x, kernel, dy))
    err = ', '.join(f'{float(jnp.max(jnp.abs(g - w)) / jnp.max(jnp.abs(w))):.0e}'
                    for g, w in zip(got, want))
    for library in xla_cpu.LIBRARIES:
      opts = xla_cpu.compiler_options(library)
      cells = []
      for conv in (lax_conv, winograd_conv):
        fwd = _best_ms(jax.jit(conv, compiler_options=opts), x, kernel)
        both = _best_ms(jax.jit(_forward_backward(conv), compiler_options=opts), x, kernel, dy)
        cells.append(f'{fwd:.1f} / {both:.1f}')
      print(f'| {b}, {s}, {ci}->{co} | {err} | {library} | {cells[0]} | {cells[1]} |', flush=True)


if __name__ == '__main__':
  main()
