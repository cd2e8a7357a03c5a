"""Two probes of the style-transfer step on XLA:CPU (Eigen's convolutions, as `stylize` runs).

  .venv/bin/python experiments/style_transfer/step_probes.py --side=256

1. The gradient of one 2x2 max pool at VGG19's four pooled shapes: flax's `reduce_window`
   pool (differentiated into `select_and_scatter`) against `genjax.nn.pool.max_pool`
   (a reshape and a max).
2. VGG19's value-and-gradient with respect to the image (the layers style transfer reads,
   up to block5_conv2), for each `conv_method`: None (genjax.nn.conv's per-layer rule),
   'lax' everywhere, 'im2col' everywhere.
Both interleave the variants over rounds and print the best and median time of each.
"""
from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.core import xla_cpu
from genjax.models import vgg
from genjax.nn.pool import max_pool

LAYERS = ('block1_conv1', 'block2_conv1', 'block3_conv1', 'block4_conv1', 'block5_conv1',
          'block5_conv2')


def timed(fns: dict, arg, rounds: int) -> dict:
  """name -> (best, median) seconds of fn(arg), variants interleaved, after one warm-up."""
  for fn in fns.values():
    jax.block_until_ready(fn(arg))
  times = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      t = time.perf_counter()
      jax.block_until_ready(fn(arg))
      times[name].append(time.perf_counter() - t)
  return {name: (min(v), sorted(v)[len(v) // 2]) for name, v in times.items()}


def show(title: str, results: dict) -> None:
  print(title + ': ' + ', '.join(f'{name} {best * 1e3:.1f} ms (median {median * 1e3:.1f})'
                                 for name, (best, median) in results.items()))


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--side', type=int, default=256)
  p.add_argument('--rounds', type=int, default=5)
  a = p.parse_args()
  eigen = xla_cpu.compiler_options('eigen')

  pools = {'flax reduce_window': lambda x: nn.max_pool(x, (2, 2), strides=(2, 2), padding='VALID'),
           'reshape + max': lambda x: max_pool(x, 2, 'VALID')}
  for k, c in enumerate((64, 128, 256, 512)):
    s = a.side >> k
    x = jax.random.normal(jax.random.key(0), (1, s, s, c))
    fns = {name: jax.jit(jax.grad(lambda v, f=f: jnp.sum(f(v) ** 2)), compiler_options=eigen)
           for name, f in pools.items()}
    show(f'pool gradient {s}x{s}x{c}', timed(fns, x, a.rounds))

  image = jax.random.uniform(jax.random.key(1), (1, a.side, a.side, 3))
  params = vgg.network('vgg19').init(jax.random.key(2), image, LAYERS)
  fns = {}
  for method in (None, 'lax', 'im2col'):
    net = vgg.network('vgg19', conv_method=method)

    def loss(x, net=net):
      return sum(jnp.mean(jnp.square(f)) for f in net.apply(params, x, LAYERS).values())

    fns[str(method)] = jax.jit(jax.value_and_grad(loss), compiler_options=eigen)
  show(f'VGG19 value and image gradient at {a.side}x{a.side}, conv_method', timed(fns, image,
                                                                                  a.rounds))


if __name__ == '__main__':
  main()
