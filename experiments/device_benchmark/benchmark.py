"""Training throughput, MFU and memory of DDPM CIFAR-10's step: genjax float32 vs bfloat16, and
the same U-Net in PyTorch (diffusers' UNet2DModel, the architecture google/ddpm-cifar10-32 uses).

Synthetic batches (uniform noise images): the step's cost does not depend on the pixels.
  python experiments/device_benchmark/benchmark.py --steps=300 --batch_size=128   # a GPU
  python experiments/device_benchmark/benchmark.py --smoke                         # CPU, tiny
Prints one markdown row per (framework, dtype): img/s, steps/s, achieved TFLOP/s (XLA's count
of the compiled step), MFU (against the device's dense peak; "no peak known" on CPU), peak memory.
"""
import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from genjax import config as config_lib  # noqa: E402
from genjax.core import flops  # noqa: E402
from genjax.methods import make_method  # noqa: E402

SMOKE = dict(channels=(32,), num_res_blocks=1, attention_resolutions=())


def genjax_row(dtype: str, args) -> dict:
  """Trains `args.steps` steps of the config in `dtype`; returns the measured row."""
  config = config_lib.load_config(os.path.join(REPO, 'configs/ddpm_cifar10.py'))
  config.unlock()
  config.train.compute_dtype, config.data.batch_size = dtype, args.batch_size
  side = 8 if args.smoke else 32
  if args.smoke:
    config.diffusion.update(SMOKE)
  method = make_method(config, (side, side, 3))
  rng = np.random.default_rng(0)
  batch = {'image': jnp.asarray(rng.uniform(-1, 1, (args.batch_size, side, side, 3)), jnp.float32),
           'label': jnp.zeros((args.batch_size,), jnp.int32)}
  state = jax.jit(method.init)(jax.random.key(0), jax.tree.map(lambda x: x[:1], batch))
  step = jax.jit(lambda s, b: method.train_step(s, b, jax.random.fold_in(jax.random.key(1), s.step)),
                 donate_argnums=0)
  compiled = step.lower(state, batch).compile()
  stats = flops.step_stats(compiled, num_devices=1, dtype_name=dtype)
  for _ in range(args.warmup):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  t0 = time.perf_counter()
  for _ in range(args.steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  rate = args.steps / (time.perf_counter() - t0)
  mem = jax.devices()[0].memory_stats() or {}
  return dict(framework='genjax (JAX)', dtype=dtype, steps_per_s=rate,
              img_per_s=rate * args.batch_size, **stats.metrics(rate),
              peak_memory_mib=(mem['peak_bytes_in_use'] if 'peak_bytes_in_use' in mem
                               else stats.memory_bytes) / 2**20,
              peak_memory_source='device' if 'peak_bytes_in_use' in mem else 'XLA estimate',
              loss=float(metrics['loss']), device=stats.device_kind, peak_known=stats.peak is not None)


def torch_row(dtype: str, args) -> dict:
  """The same U-Net and step (Adam, eps MSE) in PyTorch; bf16 via autocast."""
  import torch  # pylint: disable=g-import-not-at-top
  from diffusers import UNet2DModel  # pylint: disable=g-import-not-at-top

  dev = 'cuda' if torch.cuda.is_available() else 'cpu'
  c = SMOKE['channels'] if args.smoke else (128, 256, 256, 256)
  blocks = SMOKE['num_res_blocks'] if args.smoke else 2
  n = len(c)
  attn = 1 if n > 1 else 0
  down = tuple('AttnDownBlock2D' if i == attn else 'DownBlock2D' for i in range(n))
  up = tuple('AttnUpBlock2D' if n - 1 - i == attn else 'UpBlock2D' for i in range(n))
  side = 8 if args.smoke else 32
  model = UNet2DModel(sample_size=side, in_channels=3, out_channels=3, block_out_channels=c,
                      layers_per_block=blocks, down_block_types=down, up_block_types=up,
                      attention_head_dim=None, downsample_padding=0, flip_sin_to_cos=False,
                      freq_shift=1, dropout=0.1).to(dev).train()
  opt = torch.optim.Adam(model.parameters(), lr=2e-4)
  x0 = torch.rand(args.batch_size, 3, side, side, device=dev) * 2 - 1
  abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, device=dev), 0)

  def step():
    t = torch.randint(0, 1000, (args.batch_size,), device=dev)
    eps = torch.randn_like(x0)
    a = abar[t].view(-1, 1, 1, 1)
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=dtype == 'bfloat16'):
      loss = torch.mean((model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t).sample.float() - eps) ** 2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  sync = torch.cuda.synchronize if dev == 'cuda' else (lambda: None)
  for _ in range(args.warmup):
    step()
  sync()
  if dev == 'cuda':
    torch.cuda.reset_peak_memory_stats()
  t0 = time.perf_counter()
  for _ in range(args.steps):
    loss = step()
  sync()
  rate = args.steps / (time.perf_counter() - t0)
  return dict(framework='PyTorch (diffusers UNet2DModel)', dtype=dtype, steps_per_s=rate,
              img_per_s=rate * args.batch_size,
              peak_memory_mib=torch.cuda.max_memory_allocated() / 2**20 if dev == 'cuda' else None,
              loss=float(loss.detach()), device=torch.cuda.get_device_name() if dev == 'cuda' else 'cpu')


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser()
  parser.add_argument('--steps', type=int, default=300)
  parser.add_argument('--warmup', type=int, default=10)
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--smoke', action='store_true', help='A tiny U-Net for 2 steps (CPU check).')
  parser.add_argument('--no_torch', action='store_true')
  parser.add_argument('--dtypes', default='float32,bfloat16', help='Compute dtypes to run.')
  parser.add_argument('--out', default=None, help='Also write the rows to this JSON file.')
  args = parser.parse_args(argv)
  if args.smoke:
    args.steps, args.warmup, args.batch_size = 2, 1, 4
  dtypes = args.dtypes.split(',')
  rows = [genjax_row(d, args) for d in dtypes]
  if not args.no_torch:
    rows += [torch_row(d, args) for d in dtypes]
  print('| framework | dtype | device | img/s | achieved TFLOP/s | MFU | peak memory MiB |')
  print('|---|---|---|---|---|---|---|')
  for r in rows:
    tflops = f"{r['achieved_flops_per_s'] / 1e12:.2f}" if 'achieved_flops_per_s' in r else '-'
    mfu = f"{100 * r['mfu']:.1f}%" if 'mfu' in r else ('no peak known' if 'peak_known' in r else '-')
    mem = f"{r['peak_memory_mib']:.0f}" if r.get('peak_memory_mib') else '-'
    print(f"| {r['framework']} | {r['dtype']} | {r['device']} | {r['img_per_s']:.1f} | {tflops} | "
          f"{mfu} | {mem} |")
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(rows, f, indent=2)
  return rows


if __name__ == '__main__':
  main()
