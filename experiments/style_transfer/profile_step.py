"""Where the time of one style-transfer step goes on XLA:CPU: a profile, summed per thunk.

  .venv/bin/python experiments/style_transfer/profile_step.py --side=256 [--no_grad_kernels]

Builds `genjax.stylize`'s jitted Adam step on the random-weight VGG19 (random content and
style images), times 5 steps, then traces 5 more with `jax.profiler.trace` (a Perfetto JSON,
no TensorFlow needed) and prints the largest thunks in ms per step, and how many kernel
transposes the compiled step holds. Eigen's convolutions run on XLA's thread pool, so their
thunks show only their dispatch; elementwise fusions and copies show their whole time.
`--no_grad_kernels` builds the step as it was before `vgg.input_grad_kernels`: XLA then
reverses and transposes every kernel for the image gradient at every step;
`--params_from_host` passes numpy weights to every step, as `stylize` did before it put them
on the device once (the "H2D Dispatch" thunks: 80 MB copied per step).
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from genjax.models import vgg
from genjax.stylize import transfer


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--side', type=int, default=256)
  p.add_argument('--steps', type=int, default=5)
  p.add_argument('--top', type=int, default=25)
  p.add_argument('--no_grad_kernels', action='store_true')
  p.add_argument('--params_from_host', action='store_true',
                 help='Pass the numpy weights to every step (as stylize did before it put '
                 'them on the device once).')
  a = p.parse_args()
  rng = np.random.default_rng(0)
  content, style = (jnp.asarray(rng.uniform(size=(a.side, a.side, 3)), jnp.float32)
                    for _ in range(2))
  spec = transfer.StylizeSpec()
  params = vgg.random_params(transfer.RANDOM_SEED)  # numpy arrays.
  if not a.params_from_host:
    params = jax.device_put(params)  # As `stylize` puts them, once.
  # pylint: disable=protected-access
  targets = transfer._targets(params, content, style, spec, 'torch', 'style')
  grad_kernels = None if a.no_grad_kernels else jax.jit(vgg.input_grad_kernels)(params)
  image, state = jnp.copy(content), transfer._optimizer(spec).init(content)
  kw = dict(spec=spec, preprocessing='torch', weights=(1.0, 1.0))

  def steps(n, image, state):
    for _ in range(n):
      image, state, _ = transfer._step(image, state, params, grad_kernels, targets, **kw)
    return jax.block_until_ready(image), state

  image, state = steps(3, image, state)
  t = time.perf_counter()
  image, state = steps(a.steps, image, state)
  print(f'{a.side}x{a.side}: {(time.perf_counter() - t) / a.steps * 1e3:.0f} ms per step '
        f'({"no " if a.no_grad_kernels else ""}precomputed input-gradient kernels)')
  hlo = transfer._step.lower(image, state, params, grad_kernels, targets, **kw)
  hlo = hlo.compile().as_text()
  transposes = [line for line in hlo.split('\n')
                if 'fusion(' in line and 'transpose' in line and ' = f32[3,3,' in line]
  print(f'kernel transposes in the compiled step: {len(transposes)}')
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d, create_perfetto_trace=True):
      steps(a.steps, image, state)
    events = json.load(gzip.open(glob.glob(f'{d}/**/*.trace.json.gz', recursive=True)[0]))
  events = events['traceEvents'] if isinstance(events, dict) else events
  total, count = collections.Counter(), collections.Counter()
  for e in events:
    if e.get('ph') == 'X' and not e['name'].startswith(('$', 'ThunkExecutor')):
      total[e['name']] += e.get('dur', 0)
      count[e['name']] += 1
  for name, us in total.most_common(a.top):
    print(f'{us / a.steps / 1e3:7.1f} ms/step  x{count[name] / a.steps:4.1f}  {name[:90]}')


if __name__ == '__main__':
  main()
