"""The weight gradient of a 3x3 stride-1 convolution, written nine ways, timed on XLA:CPU.

Usage: python experiments/xla_cpu_convolutions/conv_dw.py [--batch=128] [--seconds=0.4]

Why: this gradient is what bounds genjax's U-Net step against PyTorch (README.md). For the
U-Net's stride-1 layer shapes (batch 128, fp32) it prints the time of dW alone, in ms (best
of 3 blocks), given the layer input x [B, H, W, C_in] and the output gradient dy, for:
  lax        jax.vjp of lax.conv_general_dilated;
  nchw       the same through NCHW/OIHW dimension numbers (with the transposes);
  canonical  dW as one forward convolution: x as [C_in, H+2, W+2, B] against dy as a
             [H, W, B, C_out] kernel;
  im2col     the [B*H*W, 9 C_in] patch matrix, transposed, times dy;
  im2col_t   the patch matrix built transposed ([9 C_in, B*H*W], from x as [C_in, B, H, W]),
             so the product is a plain (NN) one;
  taps       one product per kernel tap (9 strided views of x, each transposed, times dy);
  taps_t     the same from x as [C_in, B, H, W];
  rows3      the 3 column shifts concatenated ([B, H+2, W, 3 C_in]), then one product per
             row shift;
  split      lax's dW summed over batch slices of 8 images (genjax.nn.conv's 'split').
Under XLA's default YNNPACK; with XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= the
convolutions run on Eigen instead (genjax/core/xla_cpu.py).
Each formulation is checked against lax before it is timed (relative error printed when
above 1e-5). A large NN matrix product of the im2col shape is timed too, for the ceiling.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from genjax.core import malloc  # noqa: E402

# As genjax commands do, before XLA starts its threads (genjax/core/malloc.py).
malloc.keep_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from genjax.nn.conv import tap_views, conv_split_kernel_grad  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conv_shapes import best_ms  # noqa: E402

_DN = ('NHWC', 'HWIO', 'NHWC')
_PADS = ((1, 1), (1, 1))
# (side, C_in, C_out): the stride-1 3x3 convolutions of the flagship U-Net and its wider kin.
SHAPES = [(28, 32, 32), (14, 32, 32), (14, 64, 32), (14, 64, 64), (7, 128, 64), (7, 128, 128)]


def dw_lax(x, dy, c_out):
  kernel = jnp.zeros((3, 3, x.shape[-1], c_out), x.dtype)
  _, vjp = jax.vjp(lambda k: lax.conv_general_dilated(x, k, (1, 1), _PADS, dimension_numbers=_DN),
                   kernel)
  return vjp(dy)[0]


def dw_nchw(x, dy, c_out):
  kernel = jnp.zeros((c_out, x.shape[-1], 3, 3), x.dtype)
  _, vjp = jax.vjp(lambda k: lax.conv_general_dilated(
      x.transpose(0, 3, 1, 2), k, (1, 1), _PADS, dimension_numbers=('NCHW', 'OIHW', 'NCHW')), kernel)
  return vjp(dy.transpose(0, 3, 1, 2))[0].transpose(2, 3, 1, 0)


def dw_canonical(x, dy, c_out):
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = lax.conv_general_dilated(xp.transpose(3, 1, 2, 0), dy.transpose(1, 2, 0, 3), (1, 1),
                                 'VALID', dimension_numbers=_DN)  # [C_in, 3, 3, C_out]
  return out.transpose(1, 2, 0, 3)


def dw_im2col(x, dy, c_out):
  c_in = x.shape[-1]
  patches = jnp.concatenate(tap_views(x, 3, 3, (1, 1), _PADS), -1).reshape(-1, 9 * c_in)
  return (patches.T @ dy.reshape(-1, c_out)).reshape(3, 3, c_in, c_out)


def _x_cbhw_views(x):
  b, h, w, c_in = x.shape
  xt = jnp.pad(x.transpose(3, 0, 1, 2), ((0, 0), (0, 0), (1, 1), (1, 1)))  # [C_in, B, H+2, W+2]
  return [xt[:, :, i:i + h, j:j + w].reshape(c_in, -1) for i in range(3) for j in range(3)]


def dw_im2col_t(x, dy, c_out):
  c_in = x.shape[-1]
  patches_t = jnp.concatenate(_x_cbhw_views(x), 0)  # [9 C_in, B*H*W]
  return (patches_t @ dy.reshape(-1, c_out)).reshape(3, 3, c_in, c_out)


def dw_taps(x, dy, c_out):
  c_in, d2 = x.shape[-1], dy.reshape(-1, c_out)
  return jnp.stack([v.reshape(-1, c_in).T @ d2
                    for v in tap_views(x, 3, 3, (1, 1), _PADS)]).reshape(3, 3, c_in, c_out)


def dw_taps_t(x, dy, c_out):
  d2 = dy.reshape(-1, c_out)
  return jnp.stack([v @ d2 for v in _x_cbhw_views(x)]).reshape(3, 3, x.shape[-1], c_out)


def dw_rows3(x, dy, c_out):
  b, h, w, c_in = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  cols = jnp.concatenate([xp[:, :, j:j + w] for j in range(3)], -1)  # [B, H+2, W, 3 C_in]
  d2 = dy.reshape(-1, c_out)
  return jnp.stack([lax.dot_general(cols[:, i:i + h].reshape(-1, 3 * c_in), d2,
                                    (((0,), (0,)), ((), ()))) for i in range(3)]
                   ).reshape(3, 3, c_in, c_out)


def dw_split(x, dy, c_out):
  kernel = jnp.zeros((3, 3, x.shape[-1], c_out), x.dtype)
  _, vjp = jax.vjp(lambda k: conv_split_kernel_grad(x, k, (1, 1), _PADS), kernel)
  return vjp(dy)[0]


FORMULATIONS = dict(lax=dw_lax, nchw=dw_nchw, canonical=dw_canonical, im2col=dw_im2col,
                    im2col_t=dw_im2col_t, taps=dw_taps, taps_t=dw_taps_t, rows3=dw_rows3,
                    split=dw_split)


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--batch', type=int, default=128)
  p.add_argument('--seconds', type=float, default=0.4)
  p.add_argument('--methods', default=','.join(FORMULATIONS))
  args = p.parse_args()
  for side, c_in, c_out in SHAPES:
    x = jax.random.normal(jax.random.key(0), (args.batch, side, side, c_in))
    dy = jax.random.normal(jax.random.key(1), (args.batch, side, side, c_out))
    ref = jax.jit(dw_lax, static_argnums=2)(x, dy, c_out)
    cells = []
    for name in args.methods.split(','):
      fn = jax.jit(FORMULATIONS[name], static_argnums=2)
      err = float(jnp.max(jnp.abs(fn(x, dy, c_out) - ref)) / jnp.max(jnp.abs(ref)))
      ms = best_ms(lambda: fn(x, dy, c_out), args.seconds)
      cells.append(f'{name} {ms:.1f}' + (f' (err {err:.0e})' if err > 1e-5 else ''))
    n = args.batch * side * side
    gflop = 2 * n * 9 * c_in * c_out / 1e9
    a, d = jnp.ones((9 * c_in, n)), jnp.ones((n, c_out))
    ceiling = best_ms(lambda: jax.jit(jnp.matmul)(a, d), args.seconds)
    print(f'{side}x{side} {c_in}->{c_out} ({gflop:.2f} GFLOP) | ' + ' | '.join(cells)
          + f' | NN product alone {ceiling:.1f}', flush=True)


if __name__ == '__main__':
  main()
