"""Per-layer timing of genjax.nn.conv.conv2d's formulations on the shapes genjax's models use.

Usage: python experiments/xla_cpu_convolutions/conv_shapes.py [--shapes=vae,1x1]
       [--methods=lax,im2col,gemm]

For each layer shape (batch 128, fp32) prints the forward time and the time of the
gradient with respect to the kernel (and the input, unless it is a first layer, whose input
gradient a train step never computes), in ms, best of 3 blocks, for every formulation that
applies. `conv_method` in genjax/nn/conv.py encodes the winners (README.md beside this file).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from genjax.core import malloc  # noqa: E402

# As genjax commands do, before XLA starts its threads (genjax/core/malloc.py).
malloc.keep_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from genjax.nn.conv import conv2d, conv_method  # noqa: E402

# (name, side, C_in, C_out, kernel, stride, needs dx)
SHAPES = [
    ('classifier conv1 28 1->32 k3', 28, 1, 32, 3, 1, False),
    ('classifier conv2 14 32->64 k3', 14, 32, 64, 3, 1, True),
    ('classifier conv3 7 64->128 k3', 7, 64, 128, 3, 1, True),
    ('vae enc1 28 1->32 k3s2', 28, 1, 32, 3, 2, False),
    ('vae enc2 14 32->64 k3s2', 14, 32, 64, 3, 2, True),
    ('dcgan D1 32 1->64 k4s2', 32, 1, 64, 4, 2, False),
    ('dcgan D2 16 64->128 k4s2', 16, 64, 128, 4, 2, True),
    ('dcgan D3 8 128->256 k4s2', 8, 128, 256, 4, 2, True),
    ('unet 28 32->32 k3', 28, 32, 32, 3, 1, True),
    ('unet 14 64->64 k3', 14, 64, 64, 3, 1, True),
    ('unet 14 64->32 k3', 14, 64, 32, 3, 1, True),
    ('unet 7 128->64 k3', 7, 128, 64, 3, 1, True),
    ('unet down 14 32 k3s2', 14, 32, 32, 3, 2, True),
    ('unet skip 1x1 14 96->32', 14, 96, 32, 1, 1, True),
]


def best_ms(fn, seconds: float) -> float:
  jax.block_until_ready(fn())
  best = float('inf')
  for _ in range(3):
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
      jax.block_until_ready(fn())
      n += 1
    best = min(best, (time.perf_counter() - t) / n)
  return best * 1e3


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--shapes', default='', help='comma-separated substrings of shape names')
  p.add_argument('--methods', default='lax,im2col,gemm')
  p.add_argument('--batch', type=int, default=128)
  p.add_argument('--seconds', type=float, default=0.5)
  args = p.parse_args()
  for name, side, c_in, c_out, k, s, needs_dx in SHAPES:
    if args.shapes and not any(q in name for q in args.shapes.split(',')):
      continue
    x = jax.random.normal(jax.random.key(0), (args.batch, side, side, c_in))
    w = 0.1 * jax.random.normal(jax.random.key(1), (k, k, c_in, c_out))
    pads = tuple(lax.padtype_to_pads((side, side), (k, k), (s, s), 'SAME'))
    cells = []
    for method in args.methods.split(','):
      if method == 'gemm' and (k, s) != (1, 1):
        continue
      fwd = jax.jit(lambda x, w, m=method: conv2d(x, w, (s, s), pads, m))
      loss = lambda x, w, m=method: jnp.sum(conv2d(x, w, (s, s), pads, m) ** 2)
      grad = jax.jit(jax.grad(loss, argnums=(0, 1) if needs_dx else 1))
      cells.append(f'{method}: fwd {best_ms(lambda: fwd(x, w), args.seconds):6.1f} '
                   f'grad {best_ms(lambda: grad(x, w), args.seconds):6.1f}')
    chosen = conv_method(w.shape, (s, s), pads)
    print(f'{name:32s} | ' + ' | '.join(cells) + f' | chosen: {chosen}', flush=True)


if __name__ == '__main__':
  main()
