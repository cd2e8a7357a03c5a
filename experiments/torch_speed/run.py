"""genjax vs PyTorch on this CPU: train-step and sampling throughput, compile time, memory.

Usage (after `pip install torch==2.13.0`; `make bench` does both):
  python experiments/torch_speed/run.py                       # every model, ratio table
  python experiments/torch_speed/run.py --models=unet_ddpm --rounds=9
  python experiments/torch_speed/run.py --malloc=both         # default vs tuned glibc malloc
  python experiments/torch_speed/run.py --json=runs/bench.json

Method. Both frameworks run in the same process on the same batch (fp32,
PyTorch in channels_last, its fastest CPU layout here, and its fused Adam).
Each round times a block of genjax steps and a block of PyTorch steps back to
back, alternating which goes first; the reported ratio is the median over
rounds of (genjax img/s) / (PyTorch img/s), so the load of a shared machine
affects both sides of each ratio alike. The genjax step is the method's real
`train_step` (genjax.methods), jitted with the state donated as the training
loop does; the PyTorch step (torch_models.py) does the same work, and its
parameter count is checked equal. Compile time, first-step time and peak
memory come from a fresh child process per (model, framework). Achieved
FLOP/s use XLA's FLOP count of the genjax step (the same architecture, so the
same count for PyTorch) against a 4096^2 matmul timed in this process.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# name -> (config file, overrides, image shape); the DCGAN step skips the monitor classifier
# (a genjax-only metric) so both sides do the same work.
MODELS = {
    'classifier': ('configs/classifier_mnist.py', {}, (28, 28, 1)),
    'vae': ('configs/vae_mnist.py', {}, (28, 28, 1)),
    'dcgan': ('configs/dcgan_mnist.py', {'gan.monitor_classifier': None}, (32, 32, 1)),
    'unet_ddpm': ('configs/ddpm_mnist.py', {}, (28, 28, 1)),
    # The seed document's U-Net widths (64 -> 128 -> 256) in genjax's U-Net, at full resolution.
    'unet_seed': ('configs/ddpm_mnist.py', {'diffusion.channels': (64, 128, 256), 'diffusion.num_res_blocks': 1,
                                            'diffusion.attention_resolutions': (7,), 'diffusion.patch_size': 1},
                  (28, 28, 1)),
}
SAMPLING = ('unet_ddpm', 'unet_seed')


def load(name: str, batch_size: int):
  from genjax.config import load_config
  path, overrides, shape = MODELS[name]
  config = load_config(os.path.join(REPO, path))
  with config.unlocked():
    for dotted, value in overrides.items():
      group, key = dotted.split('.')
      config[group][key] = value
    config.data.batch_size = batch_size
  return config, shape


def make_batch(shape, batch_size: int, seed: int = 0):
  import numpy as np
  rng = np.random.default_rng(seed)
  images = rng.uniform(-1, 1, (batch_size, *shape)).astype(np.float32)
  return {'image': images, 'label': rng.integers(0, 10, batch_size).astype(np.int32)}


def compile_options(library: str | dict | None, config) -> dict:
  """XLA compiler options for `library`: 'ynnpack' or 'eigen' (genjax/core/xla_cpu.py), None for
  the config's choice, or a dict of raw XLA options (ynn_ab.py's --b_ynn)."""
  from genjax.core import xla_cpu
  if isinstance(library, dict):
    return library
  return xla_cpu.compiler_options(library or config.train.xla_cpu_convolutions)


def build_genjax(name: str, batch_size: int, library: str | dict | None = None):
  """(step_fn () -> None that runs one step, the jitted step, args, state holder, config, shape).

  The step compiles for XLA:CPU convolution `library` ('ynnpack' or 'eigen'), by default the
  one the model's config picks, as `genjax` commands would (genjax/core/xla_cpu.py); a dict
  is taken as raw XLA compiler options.
  """
  import jax
  from genjax.methods import make_method
  config, shape = load(name, batch_size)
  method = make_method(config, shape)
  batch = jax.tree.map(jax.numpy.asarray, make_batch(shape, batch_size))
  state = jax.jit(method.init)(jax.random.key(0), jax.tree.map(lambda a: a[:1], batch))
  key = jax.random.key(1)
  step = jax.jit(lambda s, b: method.train_step(s, b, jax.random.fold_in(key, s.step)),
                 donate_argnums=0, compiler_options=compile_options(library, config))
  holder = {'state': state}

  def run(n: int):
    s = holder['state']
    for _ in range(n):
      s, metrics = step(s, batch)
    jax.block_until_ready(s)
    holder['state'] = s

  return run, step, batch, holder, config, shape


def build_torch(name: str, batch_size: int, config, shape, channels_last: bool = True):
  import torch
  import torch_models as tm
  h, w, c = shape
  data = make_batch(shape, batch_size)
  x = tm.to_layout(torch.from_numpy(data['image']).permute(0, 3, 1, 2).contiguous(), channels_last)
  y = torch.from_numpy(data['label']).long()
  m, o = config[config.method], config.optim  # The family's own group: config.classifier, .vae, ...
  if name == 'classifier':
    net = tm.Classifier(tuple(m.channels), m.feature_dim, m.num_classes, m.dropout, c, h)
    nets = [net]
    step_fn = tm.make_classifier_step(tm.to_layout(net, channels_last), o.lr, o.weight_decay,
                                      config.classifier.augment_shift, config.classifier.label_smoothing)
  elif name == 'vae':
    net = tm.VAE(tuple(m.channels), tuple(reversed(m.channels)), m.hidden_dim, m.latent_dim, h, c)
    nets = [net]
    step_fn = tm.make_vae_step(tm.to_layout(net, channels_last), o.lr, config.train.ema_decay)
  elif name == 'dcgan':
    gen = tm.DCGANGenerator(m.latent_dim, tuple(m.gen_channels), c, m.bn_momentum)
    gen.channels_last = channels_last
    disc = tm.DCGANDiscriminator(tuple(m.disc_channels), c, h, m.bn_momentum)
    nets = [gen, disc]
    step_fn = tm.make_gan_step(tm.to_layout(gen, channels_last), tm.to_layout(disc, channels_last),
                               m.latent_dim, o.lr, o.b1)
  else:
    net = tm.UNet(tuple(m.channels), m.num_res_blocks, tuple(m.attention_resolutions), c, h,
                  m.patch_size)
    nets = [net]
    step_fn = tm.make_edm_step(tm.to_layout(net, channels_last), o.lr, config.train.ema_decay)

  def run(n: int):
    for _ in range(n):
      step_fn(x, y)

  return run, nets


def count(tree) -> int:
  import jax
  import numpy as np
  return int(sum(np.size(a) for a in jax.tree.leaves(tree)))


def timed(fn, n: int) -> float:
  t = time.perf_counter()
  fn(n)
  return time.perf_counter() - t


@contextlib.contextmanager
def conv_rule(rule=None):
  """Within the block, genjax.nn.conv picks each Conv's formulation with `rule` (None: its own
  rule). jit traces at a function's first call, so build and run a step inside the block."""
  from genjax.nn import conv
  chosen = conv.conv_method
  conv.conv_method = rule or chosen
  try:
    yield
  finally:
    conv.conv_method = chosen


def ab_parser() -> argparse.ArgumentParser:
  """The options of the genjax-alone A/B scripts (conv_ab.py, ynn_ab.py): models, batch, rounds."""
  p = argparse.ArgumentParser()
  p.add_argument('--models', default=','.join(MODELS))
  p.add_argument('--batch', type=int, default=128)
  p.add_argument('--rounds', type=int, default=3)
  p.add_argument('--target_s', type=float, default=1.5, help='seconds per timed block')
  return p


def compare(run_a, run_b, batch: int, rounds: int, target_s: float):
  """Interleaved rounds; returns dict of median img/s of a and b and the median ratio a/b."""
  ta, tb = timed(run_a, 1), timed(run_b, 1)  # Warm-up (compiled already for a).
  na = max(1, round(target_s / max(ta, 1e-3)))
  nb = max(1, round(target_s / max(tb, 1e-3)))
  ra, rb, ratios = [], [], []
  for r in range(rounds):
    order = [(run_a, na, ra), (run_b, nb, rb)]
    for fn, n, out in (order if r % 2 == 0 else order[::-1]):
      out.append(n * batch / timed(fn, n))
    ratios.append(ra[-1] / rb[-1])
  return {'genjax_img_s': statistics.median(ra), 'torch_img_s': statistics.median(rb),
          'ratio': statistics.median(ratios), 'ratio_min': min(ratios), 'ratio_max': max(ratios),
          'steps_per_block': [na, nb]}


def matmul_gflops(rounds: int = 5, n: int = 4096) -> dict:
  """fp32 n x n matmul GFLOP/s of XLA and of PyTorch, interleaved."""
  import jax
  import jax.numpy as jnp
  import torch
  a = jax.random.normal(jax.random.key(0), (n, n))
  mm = jax.jit(lambda a: a @ a)
  mm(a).block_until_ready()
  ta = torch.randn(n, n)
  ta @ ta
  j, t = [], []
  for _ in range(rounds):
    s = time.perf_counter(); mm(a).block_until_ready(); j.append(time.perf_counter() - s)
    s = time.perf_counter(); ta @ ta; t.append(time.perf_counter() - s)
  flop = 2 * n**3
  return {'xla_gflops': flop / statistics.median(j) / 1e9,
          'torch_gflops': flop / statistics.median(t) / 1e9}


def bench_model(name: str, args) -> dict:
  import jax
  import torch
  import torch_models as tm
  run_j, step, batch, holder, config, shape = build_genjax(name, args.batch)
  params = holder['state'].params
  run_t, nets = build_torch(name, args.batch, config, shape)
  n_j = count(params)
  n_t = sum(tm.count_params(n) for n in nets)
  if n_j != n_t:
    raise SystemExit(f'{name}: parameter counts differ: genjax {n_j}, PyTorch {n_t}.')
  cost = step.lower(holder['state'], batch).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get('flops', 0.0))
  row = {'model': name, 'params': n_j, 'batch': args.batch, 'step_gflop': flops / 1e9}
  row.update(compare(run_j, run_t, args.batch, args.rounds, args.target_s))
  row['genjax_gflops'] = row['genjax_img_s'] / args.batch * flops / 1e9
  row['torch_gflops'] = row['torch_img_s'] / args.batch * flops / 1e9
  if name in SAMPLING and args.sample_steps:
    row['sampling'] = bench_sampling(name, config, shape, holder['state'].params, nets[0], args)
  return row


def build_genjax_sampler(config, shape, params, batch_size: int, steps: int,
                         library: str | dict | None = None):
  """run(n): n calls of genjax's DPM-Solver++(2M) sampler (`steps` steps, a batch of
  `batch_size`), compiled for XLA:CPU convolution `library` (default: the config's)."""
  import jax
  from genjax.methods import diffusion
  keys = jax.random.split(jax.random.key(2), batch_size)
  spec, sample_spec = diffusion.decode_specs(config, shape)
  sample_spec = sample_spec.replace(sampler='dpmpp_2m', num_steps=steps, guidance_scale=None,
                                    sigma_schedule='karras')
  sample = diffusion.make_sample_fn(spec, sample_spec).lower(params, keys, None).compile(
      compiler_options=compile_options(library, config))

  def run(n: int):
    for _ in range(n):
      sample(params, keys, None).block_until_ready()

  return run


def bench_sampling(name, config, shape, params, net, args) -> dict:
  """DPM-Solver++(2M), args.sample_steps steps, a batch of args.batch, both frameworks."""
  import torch
  import torch_models as tm
  n = args.batch
  run_j = build_genjax_sampler(config, shape, params, n, args.sample_steps)
  run_j(1)
  net = tm.to_layout(net, True).eval()
  sigmas = tm.karras_sigmas(args.sample_steps, config.diffusion.sigma_min, config.diffusion.sigma_max)
  x = tm.to_layout(torch.randn(n, shape[2], shape[0], shape[1]) * sigmas[0], True)

  def run_t(k):
    for _ in range(k):
      tm.sample_dpmpp_2m(net, x, sigmas)

  out = compare(run_j, run_t, n, max(3, args.rounds // 2), args.target_s)
  out['nfe'] = args.sample_steps
  return out


def child(spec: str, batch: int) -> None:
  """One (model, framework) in a fresh process: compile/first-step time and peak RSS (MiB)."""
  name, framework = spec.split(':')
  if os.environ.get('_GENJAX_BENCH_MODE') == 'tuned':  # As the measuring process.
    from genjax.core import malloc
    malloc.keep_freed_memory()
  base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  if framework == 'genjax':
    import jax
    t = time.perf_counter()
    run, step, batch_, holder, _, _ = build_genjax(name, batch)
    jax.block_until_ready(holder['state'])
    init_s = time.perf_counter() - t
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    compiled = step.lower(holder['state'], batch_).compile()
    compile_s = time.perf_counter() - t
    del compiled
    t = time.perf_counter()
    run(1)
    first_s = time.perf_counter() - t
    run(3)
  else:
    import torch
    config, shape = load(name, batch)
    t = time.perf_counter()
    run, _ = build_torch(name, batch, config, shape)
    init_s = time.perf_counter() - t
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    compile_s = 0.0
    t = time.perf_counter()
    run(1)
    first_s = time.perf_counter() - t
    run(3)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  print(json.dumps({'init_s': init_s, 'compile_s': compile_s, 'first_step_s': first_s,
                    'peak_rss_mib': peak / 1024, 'step_rss_growth_mib': (peak - base) / 1024}))


def run_child(spec: str, batch: int, env: dict) -> dict:
  out = subprocess.run([sys.executable, os.path.abspath(__file__), f'--child={spec}',
                        f'--batch={batch}'], capture_output=True, text=True, env=env, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def print_table(rows, mm, title: str) -> None:
  print(f'\n## {title}')
  print(f'matmul 4096^2 fp32: XLA {mm["xla_gflops"]:.0f} GFLOP/s, PyTorch {mm["torch_gflops"]:.0f} GFLOP/s')
  print('| model | params | batch | GFLOP/step | genjax img/s | PyTorch img/s | ratio (min-max) '
        '| genjax GFLOP/s | PyTorch GFLOP/s |')
  print('|---|---|---|---|---|---|---|---|---|')
  for r in rows:
    print(f'| {r["model"]} train | {r["params"]:,} | {r["batch"]} | {r["step_gflop"]:.1f} '
          f'| {r["genjax_img_s"]:.0f} | {r["torch_img_s"]:.0f} '
          f'| **{r["ratio"]:.2f}** ({r["ratio_min"]:.2f}-{r["ratio_max"]:.2f}) '
          f'| {r["genjax_gflops"]:.0f} | {r["torch_gflops"]:.0f} |')
    if 'sampling' in r:
      s = r['sampling']
      print(f'| {r["model"]} sample ({s["nfe"]} NFE) | | {r["batch"]} | | {s["genjax_img_s"]:.1f} '
            f'| {s["torch_img_s"]:.1f} | **{s["ratio"]:.2f}** ({s["ratio_min"]:.2f}-'
            f'{s["ratio_max"]:.2f}) | | |')
  if any('memory' in r for r in rows):
    print('\n| model | genjax compile s | genjax first step s | PyTorch first step s '
          '| genjax peak RSS MiB | PyTorch peak RSS MiB | genjax step growth MiB | PyTorch step growth MiB |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
      if 'memory' not in r:
        continue
      g, t = r['memory']['genjax'], r['memory']['torch']
      print(f'| {r["model"]} | {g["compile_s"]:.1f} | {g["first_step_s"]:.2f} | {t["first_step_s"]:.2f} '
            f'| {g["peak_rss_mib"]:.0f} | {t["peak_rss_mib"]:.0f} | {g["step_rss_growth_mib"]:.0f} '
            f'| {t["step_rss_growth_mib"]:.0f} |')


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--models', default=','.join(MODELS), help=f'comma-separated subset of {list(MODELS)}')
  p.add_argument('--batch', type=int, default=128)
  p.add_argument('--rounds', type=int, default=7, help='interleaved timing rounds per model')
  p.add_argument('--target_s', type=float, default=1.5, help='seconds per timed block')
  p.add_argument('--sample_steps', type=int, default=20, help='U-Net sampler steps (0: skip)')
  p.add_argument('--memory', type=int, default=1, help='1: child processes for compile time and RSS')
  p.add_argument('--malloc', default='tuned', choices=('default', 'tuned', 'both'),
                 help='glibc malloc of the measuring process (one child process each): tuned is '
                 'genjax.core.malloc.keep_freed_memory(), what genjax commands apply')
  p.add_argument('--json', default='', help='also write the results here')
  p.add_argument('--child', default='', help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    return child(args.child, args.batch)

  modes = ['default', 'tuned'] if args.malloc == 'both' else [args.malloc]
  if os.environ.get('_GENJAX_BENCH_MODE') is None:  # Parent: one child run per malloc mode.
    for mode in modes:
      env = dict(os.environ, _GENJAX_BENCH_MODE=mode)
      env.pop('GLIBC_TUNABLES', None)  # 'default' means glibc's own defaults.
      argv = [a for a in sys.argv[1:] if not a.startswith('--json')]
      json_arg = [f'--json={args.json[:-5]}_{mode}.json'] if args.json.endswith('.json') else []
      subprocess.run([sys.executable, os.path.abspath(__file__), *argv, *json_arg], env=env,
                     check=True)
    return

  mode = os.environ['_GENJAX_BENCH_MODE']
  if mode == 'tuned':  # Before any thread allocates: threads keep their first arena.
    from genjax.core import malloc
    malloc.keep_freed_memory()
  import jax
  import torch
  torch.set_num_threads(os.cpu_count())
  print(f'# genjax vs PyTorch, {time.strftime("%Y-%m-%d %H:%M")}, {platform.processor() or platform.machine()}, '
        f'{os.cpu_count()} cores, jax {jax.__version__}, torch {torch.__version__}, malloc {mode}, '
        f'load average {os.getloadavg()[0]:.1f}', flush=True)
  mm = matmul_gflops()
  rows = []
  for name in args.models.split(','):
    row = bench_model(name, args)
    if args.memory:
      env = dict(os.environ)
      row['memory'] = {fw: run_child(f'{name}:{fw}', args.batch, env) for fw in ('genjax', 'torch')}
    rows.append(row)
    print(f'{name}: ratio {row["ratio"]:.2f} ({row["genjax_img_s"]:.0f} vs {row["torch_img_s"]:.0f} img/s)',
          flush=True)
  print_table(rows, mm, f'malloc {mode}, load average {os.getloadavg()[0]:.1f} at the end')
  if args.json:
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, 'w') as f:
      json.dump({'date': time.strftime('%Y-%m-%d %H:%M'), 'malloc': mode, 'matmul': mm,
                 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  main()
