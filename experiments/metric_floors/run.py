"""Real-data floors of every sample-quality metric on mnist5k, and what each metric costs.

  .venv/bin/python experiments/metric_floors/run.py [--num=1000] [--seed=0]

The floor is the figure that real data reach: `num` training digits (the same seeded subset
that `genjax eval` uses) against the 1,000 test digits, scored by the bundled classifier's
features exactly as samples are. A generator cannot be expected to beat it at the same N.
Also times each metric at that N (features, FID, IS, KID, precision/recall, memorization,
PSNR/SSIM), and checks that the memorization report flags a "generator" that copies
training digits. Prints markdown tables; writes results.json beside this file.
"""
import argparse
import json
import os
import time

import jax.numpy as jnp
import numpy as np

from genjax import data
from genjax.config import load_config
from genjax.metrics import extractors, image_quality, suite

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FLOORS = ('fid_floor', 'is_real', 'kid_floor', 'precision_floor', 'recall_floor',
          'label_accuracy_real')


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--num', type=int, default=1000)
  p.add_argument('--seed', type=int, default=0)
  args = p.parse_args()
  config = load_config(os.path.join(REPO, 'configs', 'vae_mnist.py'))  # mnist5k, default eval
  train = data.load_split(config, config.data.train_split)
  test = data.load_split(config, config.eval.split)
  extractor = extractors.get_extractor(config.eval.feature_extractor)
  rng = np.random.default_rng(args.seed)
  pick = rng.choice(len(train['image']), args.num, replace=False)
  floor_real = train['image'][pick]
  extractor(floor_real[:8])  # compile outside the timings
  # "Samples" that are other real digits: every metric should sit at its floor. Labels: the
  # true ones, so label accuracy is the classifier's own.
  others = np.setdiff1d(np.arange(len(train['image'])), pick)[:args.num]
  report = suite.sample_quality(
      extractor, train['image'][others], test['image'], floor_real, train=None,
      sample_labels=train['label'][others], reference_labels=test['label'], seed=args.seed,
      with_costs=True)
  # Memorization: real held-out digits vs copies of training digits.
  t0 = time.perf_counter()
  honest = suite.sample_quality(extractor, test['image'][:args.num], test['image'], floor_real,
                                train=train['image'], seed=args.seed)
  copier = suite.sample_quality(extractor, train['image'][others], test['image'], floor_real,
                                train=train['image'], seed=args.seed)
  mem_cost = (time.perf_counter() - t0) / 2
  # PSNR/SSIM of a noisy copy against the original: the restoration metrics' cost at this N.
  clean = jnp.asarray(test['image'][:args.num])
  noisy = jnp.clip(clean + 0.1 * jnp.asarray(rng.standard_normal(clean.shape), clean.dtype), -1, 1)
  image_quality.psnr(clean[:4], noisy[:4], data_range=2.0)
  image_quality.ssim(clean[:4], noisy[:4], data_range=2.0)
  costs = {k.split('/', 1)[1]: v for k, v in report.items() if k.startswith('cost_s/')}
  for name, fn in (('psnr', image_quality.psnr), ('ssim', image_quality.ssim)):
    t0 = time.perf_counter()
    float(jnp.mean(fn(clean, noisy, data_range=2.0)))
    costs[name] = time.perf_counter() - t0
  costs['memorization (with its features)'] = mem_cost
  out = {'num': args.num, 'seed': args.seed, 'date': time.strftime('%Y-%m-%d %H:%M'),
         'extractor': extractor.name, 'sha256': extractor.sha256,
         'floors': {k: report[k] for k in FLOORS if k in report},
         'real_vs_floor': {k: report[k] for k in ('fid', 'is', 'kid', 'precision', 'recall',
                                                   'label_accuracy', 'class_entropy_normalized')},
         'memorization': {
             name: {k: r[k] for k in r if k.startswith('memorization_')}
             for name, r in (('test digits', honest), ('copied train digits', copier))},
         'cost_s': costs}
  print(f'## Real-data floors, mnist5k, N = {args.num} (train subset vs test split)\n')
  print('| metric | floor | other real train digits |\n|---|---|---|')
  for key, other in (('fid_floor', 'fid'), ('is_real', 'is'), ('kid_floor', 'kid'),
                     ('precision_floor', 'precision'), ('recall_floor', 'recall'),
                     ('label_accuracy_real', 'label_accuracy')):
    print(f'| {key} | {report[key]:.4g} | {report[other]:.4g} |')
  print('\n## Memorization report\n\n| samples | median NN-distance ratio | fraction close |\n|---|---|---|')
  for name, m in out['memorization'].items():
    print(f'| {name} | {m["memorization_median_ratio"]:.3f} | {m["memorization_fraction_close"]:.3f} |')
  print(f'\n## Cost of each metric at N = {args.num} (seconds, 2-core CPU)\n\n| metric | s |\n|---|---|')
  for k, v in costs.items():
    print(f'| {k} | {v:.2f} |')
  with open(os.path.join(HERE, 'results.json'), 'w') as f:
    json.dump(out, f, indent=1)


if __name__ == '__main__':
  main()
