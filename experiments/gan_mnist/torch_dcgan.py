"""The PyTorch DCGAN anchor rerun here, scored by genjax's own metrics (same extractor, floor, N).

ANCHORS.md's DCGAN figure (4.6x the floor, IS 8.5) comes from another feature extractor, and
"ratios carry over between extractors only roughly". This script removes that doubt: it
trains the same DCGAN in PyTorch (experiments/torch_speed/torch_models.py: the architecture of
configs/dcgan_mnist.py, its N(0, 0.02) initialization, Adam 2e-4 with beta1 0.5, batch 128,
the non-saturating loss and genjax's update order) on the same 4,000 mnist5k training digits
padded to 32x32, then scores 1,000 samples exactly as `genjax train` scores its DCGAN
(genjax.metrics.suite.sample_quality against the 1,000 test digits, with the same seeded
real-data floor). Samples use the batch statistics of the 1,000 latents, what genjax's
`gan.standing_stats_size=1000` does.

Usage (needs torch: `make bench` installs it; 2 cores: 20 min alone, 2026-11-30):
  .venv/bin/python experiments/gan_mnist/torch_dcgan.py --workdir=runs/gan_mnist/torch_dcgan
Writes report.json (the metrics and the wall time) and samples.png in --workdir.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'experiments', 'torch_speed'))
sys.path.insert(0, REPO)


def dcgan_init(module) -> None:
  """genjax.models.gan's DCGAN initialization: conv and dense weights ~ N(0, 0.02), biases 0."""
  import torch
  for m in module.modules():
    if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
      torch.nn.init.normal_(m.weight, 0.0, 0.02)
      torch.nn.init.zeros_(m.bias)


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--workdir', required=True)
  p.add_argument('--config', default=os.path.join(REPO, 'configs', 'dcgan_mnist.py'))
  p.add_argument('--steps', type=int, default=None, help='default: the config\'s num_steps')
  p.add_argument('--seed', type=int, default=0)
  args = p.parse_args()

  import torch
  import torch_models as tm
  from genjax.config import load_config
  from genjax.data.pipeline import load_split
  from genjax.metrics import extractors, suite
  from genjax.viz.grid import save_grid

  torch.set_num_threads(os.cpu_count() or 1)
  torch.manual_seed(args.seed)
  config = load_config(args.config)
  m, o = config.gan, config.optim
  steps = args.steps or config.train.num_steps
  batch = config.data.batch_size
  train = load_split(config, config.data.train_split)['image']  # [4000, 32, 32, 1] in [-1, 1]
  h, w, c = train.shape[1:]
  gen = tm.DCGANGenerator(m.latent_dim, tuple(m.gen_channels), c, m.bn_momentum)
  disc = tm.DCGANDiscriminator(tuple(m.disc_channels), c, h, m.bn_momentum)
  dcgan_init(gen)
  dcgan_init(disc)
  gen, disc = tm.to_layout(gen, True), tm.to_layout(disc, True)
  step = tm.make_gan_step(gen, disc, m.latent_dim, o.lr, o.b1)
  images = tm.to_layout(torch.from_numpy(train).permute(0, 3, 1, 2).contiguous(), True)

  rng = np.random.default_rng(args.seed)
  order, pos = rng.permutation(len(train)), 0
  start = time.perf_counter()
  for i in range(steps):
    if pos + batch > len(order):  # Reshuffle each epoch, dropping the remainder.
      order, pos = rng.permutation(len(train)), 0
    loss = step(images[order[pos:pos + batch]], None)
    pos += batch
    if (i + 1) % 500 == 0:
      print(f'step {i + 1}/{steps} loss {loss.item():.3f} '
            f'{time.perf_counter() - start:.0f} s', flush=True)
  train_s = time.perf_counter() - start

  n = config.eval.num_samples
  with torch.no_grad():  # Train mode: BatchNorm uses the statistics of these n latents.
    samples = gen(torch.randn(n, m.latent_dim)).permute(0, 2, 3, 1).contiguous().numpy()
  reference = load_split(config, config.eval.split)
  pick = np.random.default_rng(config.seed).choice(len(train), n, replace=False)
  report = suite.sample_quality(
      extractors.get_extractor(config.eval.feature_extractor, config.eval.feature_extractor_path),
      samples, reference['image'], train[pick], train=train,
      reference_labels=reference.get('label'), seed=config.seed,
      kid_subset_size=config.eval.kid_subset_size, kid_num_subsets=config.eval.kid_num_subsets)
  report.update(train_seconds=train_s, steps=steps, batch_size=batch, torch=torch.__version__,
                img_per_s=steps * batch / train_s)
  os.makedirs(args.workdir, exist_ok=True)
  with open(os.path.join(args.workdir, 'report.json'), 'w') as f:
    json.dump({k: (v.item() if hasattr(v, 'item') else v) for k, v in report.items()}, f, indent=1)
  save_grid(samples[:64], os.path.join(args.workdir, 'samples.png'), ncol=8)
  print(json.dumps({k: report[k] for k in ('fid', 'fid_floor', 'fid_ratio', 'is', 'kid',
                                           'precision', 'recall', 'classes_covered',
                                           'train_seconds')}, default=float))


if __name__ == '__main__':
  main()
