"""Where genjax's stylize holds its peak memory: RSS after each phase of one stylize run.

    .venv/bin/python experiments/style_transfer/memory_probe.py --side=512

Phases, each in the same process: imports; the random VGG19 (seed 0); the style/content
targets; the compilation of the jitted step (XLA's own memory_analysis of it is printed too);
then --steps steps. Printed: the resident set after each phase and the process's peak so far
(`ru_maxrss`), in MiB. torch_speed.py compares only the final peaks; this says which phase
sets genjax's.
"""
import argparse
import json
import os
import resource
import sys
import time


def rss_mib() -> tuple[float, float]:
  """(resident now, peak so far) in MiB (Linux)."""
  with open('/proc/self/statm') as f:
    pages = int(f.read().split()[1])
  now = pages * os.sysconf('SC_PAGE_SIZE') / 2**20
  return now, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--side', type=int, default=512)
  p.add_argument('--keep_freed_memory', type=int, default=1)
  p.add_argument('--steps', type=int, default=2)
  p.add_argument('--chunk', type=int, default=1,
                 help='steps dispatched before waiting for them (stylize reads back per chunk)')
  a = p.parse_args()
  phases = []

  def mark(name):
    now, peak = rss_mib()
    phases.append({'phase': name, 'rss_mib': round(now), 'peak_mib': round(peak),
                   't_s': round(time.perf_counter() - t0, 1)})
    print(phases[-1], flush=True)

  t0 = time.perf_counter()
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from genjax.core import malloc  # pylint: disable=g-import-not-at-top
  from genjax.stylize import transfer  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, 'experiments/style_transfer')
  from torch_speed import images  # pylint: disable=g-import-not-at-top
  if a.keep_freed_memory:
    malloc.keep_freed_memory()
  mark('imports')
  net = transfer.load_network(None)
  jax.block_until_ready(net.params)
  mark('random VGG19')
  content, style = (jnp.asarray(x) for x in images(a.side))
  spec = transfer.StylizeSpec(steps=2, max_side=a.side)
  d = transfer.RANDOM_DEFAULTS
  weights = (d['content_weight'], d['style_weight'])
  targets = transfer._targets(net.params, content, style, spec, net.preprocessing, d['norm'])  # pylint: disable=protected-access
  jax.block_until_ready(targets)
  mark('targets')
  image = jnp.copy(content)
  opt_state = transfer._optimizer(spec).init(image)  # pylint: disable=protected-access
  step = transfer._step  # pylint: disable=protected-access
  compiled = step.lower(image, opt_state, net.params, targets, spec=spec,
                        preprocessing=net.preprocessing, weights=weights).compile()
  mark('compiled step')
  m = compiled.memory_analysis()
  xla = {k: round(getattr(m, k) / 2**20) for k in ('argument_size_in_bytes', 'output_size_in_bytes',
                                                   'temp_size_in_bytes', 'generated_code_size_in_bytes')}
  print('XLA memory_analysis (MiB):', xla, flush=True)
  for i in range(a.steps):
    image, opt_state, aux = step(image, opt_state, net.params, targets, spec=spec,
                                 preprocessing=net.preprocessing, weights=weights)
    if (i + 1) % a.chunk == 0:
      jax.block_until_ready(image)
      mark(f'step {i + 1}')
  print(json.dumps({'side': a.side, 'phases': phases, 'xla_mib': xla}))


if __name__ == '__main__':
  main()
