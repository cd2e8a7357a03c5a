"""RRDB inference speed: genjax (JAX, jit) against the same network in plain torch.nn.

  python experiments/super_resolution/torch_speed.py [--blocks=16 --features=64 --growth=32]

One 128x128x3 input -> 512x512x3, batch 1. The torch network gets genjax's weights
(kernels transposed to OIHW; the pixel-shuffle convs' output channels permuted, since
genjax's depth-to-space reads channel (i r + j) C + c where torch's pixel_shuffle reads
c r^2 + i r + j), runs channels-last under inference_mode, and must agree with genjax to
1e-3 before anything is timed. Both in the same process, alternating, median of --reps.
Prints img/s for each and the ratio genjax / torch (> 1: genjax faster).
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn

from genjax.core.malloc import keep_freed_memory
from genjax.models.rrdb import RRDBNet


class TorchDense(nn.Module):

  def __init__(self, nf, gc):
    super().__init__()
    self.convs = nn.ModuleList(nn.Conv2d(nf + i * gc, gc, 3, padding=1) for i in range(5))
    self.fusion = nn.Conv2d(nf + 5 * gc, nf, 1)

  def forward(self, x):
    h = x
    for conv in self.convs:
      h = torch.cat([h, nn.functional.leaky_relu(conv(h), 0.2)], 1)
    return x + 0.2 * self.fusion(h)


class TorchRRDBNet(nn.Module):
  """RRDBNet (genjax.models.rrdb) in torch.nn, bicubic skip off."""

  def __init__(self, c, nf, gc, blocks):
    super().__init__()
    self.conv_first = nn.Conv2d(c, nf, 3, padding=1)
    self.rrdbs = nn.ModuleList(nn.ModuleList(TorchDense(nf, gc) for _ in range(3))
                               for _ in range(blocks))
    self.conv_body = nn.Conv2d(nf, nf, 3, padding=1)
    self.ups = nn.ModuleList(nn.Conv2d(nf, 4 * nf, 3, padding=1) for _ in range(2))
    self.conv_hr = nn.Conv2d(nf, nf, 3, padding=1)
    self.conv_last = nn.Conv2d(nf, c, 3, padding=1)

  def forward(self, x):
    stem = self.conv_first(x)
    h = stem
    for rrdb in self.rrdbs:
      g = h
      for dense in rrdb:
        g = dense(g)
      h = h + 0.2 * g
    h = stem + self.conv_body(h)
    for up in self.ups:
      h = nn.functional.leaky_relu(nn.functional.pixel_shuffle(up(h), 2), 0.2)
    return self.conv_last(nn.functional.leaky_relu(self.conv_hr(h), 0.2))


def load_into(net: TorchRRDBNet, params, nf: int) -> None:
  """Copies genjax's parameters into the torch network."""
  def put(conv, p, perm=None):
    k = np.asarray(p['kernel'])
    b = np.asarray(p['bias'])
    if perm is not None:
      k, b = k[..., perm], b[perm]
    conv.weight.data = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
    conv.bias.data = torch.from_numpy(b.copy())

  # torch channel c*4 + k must be genjax channel k*nf + c.
  perm = np.array([k * nf + c for c in range(nf) for k in range(4)])
  put(net.conv_first, params['conv_first'])
  for i, rrdb in enumerate(net.rrdbs):
    for j, dense in enumerate(rrdb):
      p = params[f'rrdb{i}'][f'dense{j + 1}']
      for n, conv in enumerate(dense.convs):
        put(conv, p[f'conv{n + 1}'])
      put(dense.fusion, p['fusion'])
  put(net.conv_body, params['conv_body'])
  for i, up in enumerate(net.ups):
    put(up, params[f'conv_up{i + 1}'], perm)
  put(net.conv_hr, params['conv_hr'])
  put(net.conv_last, params['conv_last'])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--blocks', type=int, default=16)
  parser.add_argument('--features', type=int, default=64)
  parser.add_argument('--growth', type=int, default=32)
  parser.add_argument('--size', type=int, default=128)
  parser.add_argument('--reps', type=int, default=2)
  args = parser.parse_args()
  keep_freed_memory()
  nf, gc = args.features, args.growth
  net = RRDBNet(out_channels=3, features=nf, growth=gc, num_blocks=args.blocks)
  x = np.random.default_rng(0).uniform(-1, 1, (1, args.size, args.size, 3)).astype(np.float32)
  params = jax.jit(net.init)(jax.random.key(0), x)['params']
  fn = jax.jit(lambda p, v: net.apply({'params': p}, v))
  tnet = TorchRRDBNet(3, nf, gc, args.blocks).eval().to(memory_format=torch.channels_last)
  load_into(tnet, params, nf)
  tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(memory_format=torch.channels_last)

  def run_jax():
    return np.asarray(jax.block_until_ready(fn(params, x)))

  def run_torch():
    with torch.inference_mode():
      return tnet(tx).permute(0, 2, 3, 1).numpy()

  ours, theirs = run_jax(), run_torch()  # Warm-up (compilation) and the agreement check.
  run_jax(), run_torch()  # oneDNN builds its primitives over the first calls.
  err = float(np.abs(ours - theirs).max())
  assert err < 1e-3, f'genjax and torch disagree by {err}'
  times = {'genjax': [], 'torch': []}
  for _ in range(args.reps):
    for name, f in (('genjax', run_jax), ('torch', run_torch)):
      t = time.perf_counter()
      f()
      times[name].append(time.perf_counter() - t)
  rate = {k: 1.0 / float(np.median(v)) for k, v in times.items()}
  print(f'RRDBNet nf={nf} gc={gc} blocks={args.blocks}, {args.size}x{args.size}x3 -> '
        f'{4 * args.size}x{4 * args.size}, batch 1; torch {torch.__version__} '
        f'({torch.get_num_threads()} threads, channels-last); max |genjax - torch| = {err:.1e}')
  for name, r in rate.items():
    print(f'  {name}: {r:.3f} img/s (median of {args.reps}: {np.median(times[name]):.2f} s)')
  print(f'  ratio genjax / torch = {rate["genjax"] / rate["torch"]:.2f}x')


if __name__ == '__main__':
  main()
