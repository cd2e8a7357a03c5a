"""FID against NFE for every sampler of the library, on a trained diffusion run.

  .venv/bin/python experiments/sampler_nfe/run.py --workdir=runs/ddpm \
      [--nfes=5,10,20,50,100] [--samplers=all] [--num=1000] [--reference=ddpm:1000] \
      [--extra_samplers=experiments/new_sampler/my_sampler.py]

For each sampler and NFE budget it takes the largest step count whose NFE fits
the budget (Heun's 2n-1, DPM-Solver++(2S)'s 2n-1, ...), draws `--num` samples
with per-sample seeds (the same seeds for every sampler), and scores them with
the metrics suite against the mnist5k test split; the real-data floor is
computed once at the same N. Results go to results.json, results.md (table) and
fid_vs_nfe.png beside this file (or --out). A file given to --extra_samplers
defines EXTRA_SAMPLERS (name -> sampler) and EXTRA_NFE (name -> count); its
samplers join the study's own table (`samplers_with`), SAMPLERS unchanged.
"""
import argparse
import json
import os
import runpy
import time

import jax
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from genjax import data
from genjax.diffusion import samplers
from genjax.methods import diffusion, sampling
from genjax.metrics import extractors, suite
from genjax.train.trained import load_trained

HERE = os.path.dirname(os.path.abspath(__file__))


def steps_for_nfe(name: str, budget: int, counts=samplers.NFE) -> int | None:
  """The largest step count n with nfe(name, n) <= budget, or None if even n=1 exceeds it."""
  best = None
  for n in range(1, budget + 1):
    if samplers.nfe(name, n, counts=counts) <= budget:
      best = n
    elif best is not None:
      break
  return best


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--workdir', required=True)
  p.add_argument('--nfes', default='5,10,20,50,100')
  p.add_argument('--samplers', default='all')
  p.add_argument('--num', type=int, default=1000)
  p.add_argument('--reference', default='ddpm:1000', help='sampler:steps for the reference row, or none')
  p.add_argument('--sigma_schedule', default=None, help='default: the run config\'s')
  p.add_argument('--out', default=HERE)
  p.add_argument('--extra_samplers', action='append', default=[],
                 help='a Python file defining EXTRA_SAMPLERS and EXTRA_NFE (see '
                      'experiments/new_sampler/my_sampler.py): its samplers join the study')
  args = p.parse_args()
  extra, extra_nfe = {}, {}
  for path in args.extra_samplers:  # A user's sampler joins the study like the built-in ones.
    module = runpy.run_path(path, run_name='extra_samplers')
    extra.update(module['EXTRA_SAMPLERS'])
    extra_nfe.update(module['EXTRA_NFE'])
  table, counts = samplers.samplers_with(extra), samplers.nfe_with(extra_nfe)

  trained = load_trained(args.workdir)
  config, state = trained.config, trained.state
  spec, sample_spec = diffusion.decode_specs(config, trained.run.example['image'].shape[1:])
  extractor = extractors.get_extractor(config.eval.feature_extractor)
  test = data.load_split(config, config.eval.split)
  train = data.load_split(config, config.data.train_split)
  floor_real = train['image'][np.random.default_rng(config.seed).choice(len(train['image']), args.num,
                                                                        replace=False)]
  labels = sampling.default_labels(trained.method.num_classes, args.num)
  schedule = args.sigma_schedule or sample_spec.sigma_schedule
  names = sorted(table) if args.samplers == 'all' else args.samplers.split(',')
  budgets = [int(v) for v in args.nfes.split(',')]
  jobs = [(name, b, steps_for_nfe(name, b, counts)) for name in names for b in budgets]
  if args.reference != 'none':
    ref_name, ref_steps = args.reference.split(':')
    jobs.append((ref_name, samplers.nfe(ref_name, int(ref_steps), counts=counts), int(ref_steps)))

  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, 'results.json')
  rows = json.load(open(path)) if os.path.exists(path) else []
  done = {(r['sampler'], r['steps'], r['num'], r['sigma_schedule']) for r in rows}
  for name, budget, steps in jobs:
    if steps is None or (name, steps, args.num, schedule) in done:
      continue
    fn = diffusion.make_sample_fn(spec, sample_spec.replace(
        sampler=name, num_steps=steps, sigma_schedule=schedule, samplers=table))
    t0 = time.perf_counter()
    images = sampling.draw(lambda s, k, l: fn(s.eval_params, k, l), state, jax.random.key(config.seed),
                           args.num, labels, config.eval.sample_batch_size)
    seconds = time.perf_counter() - t0
    report = suite.sample_quality(extractor, images, test['image'], floor_real, seed=config.seed,
                                  sample_labels=labels, reference_labels=test.get('label'))
    row = {'sampler': name, 'steps': steps, 'nfe': samplers.nfe(name, steps, counts=counts),
           'budget': budget, 'num': args.num, 'sigma_schedule': schedule, 'sample_seconds': seconds,
           'step': int(state.step), **{k: report[k] for k in (
               'fid', 'fid_floor', 'fid_ratio', 'is', 'precision', 'recall', 'kid')}}
    rows.append(row)
    done.add((name, steps, args.num, schedule))
    print(json.dumps(row), flush=True)
    with open(path, 'w') as f:
      json.dump(rows, f, indent=1)
  write_table_and_plot(rows, args.out)


def label(row) -> str:
  """Sampler name, with its sigma schedule where it is not Karras (the default)."""
  return row['sampler'] if row['sigma_schedule'] == 'karras' else f"{row['sampler']} ({row['sigma_schedule']})"


def write_table_and_plot(rows, out):
  """results.md: one row per (sampler, schedule, NFE); fid_vs_nfe.png: FID against NFE."""
  ref = [r for r in rows if r['budget'] >= 1000]
  lines = ['| sampler | NFE | steps | FID | FID / floor | IS | precision | recall | s / 1k samples |',
           '|---|---|---|---|---|---|---|---|---|']
  for r in sorted(rows, key=lambda r: (label(r), r['nfe'])):
    lines.append(f"| {label(r)} | {r['nfe']} | {r['steps']} | {r['fid']:.2f} | {r['fid_ratio']:.2f} "
                 f"| {r['is']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} "
                 f"| {1000 * r['sample_seconds'] / r['num']:.0f} |")
  with open(os.path.join(out, 'results.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  fig, ax = plt.subplots(figsize=(9, 6))
  curves = sorted({label(r) for r in rows if r['budget'] < 1000})
  cmap = plt.get_cmap('tab20')
  for j, name in enumerate(curves):
    pts = sorted((r['nfe'], r['fid']) for r in rows if label(r) == name and r['budget'] < 1000)
    ax.plot(*zip(*pts), marker='o', ms=4, color=cmap(j % 20), label=name,
            ls='--' if '(' in name else '-')
  for r in ref:
    ax.axhline(r['fid'], color='k', ls='--', lw=1, label=f"{r['sampler']} {r['nfe']} NFE")
  if rows:
    ax.axhline(rows[0]['fid_floor'], color='gray', ls=':', lw=1, label='real-data floor')
  ax.set_xscale('log')
  ax.set_yscale('log')
  ax.set_xlabel('NFE (denoiser calls)')
  ax.set_ylabel('FID (mnist5k classifier features, N=%d)' % rows[0]['num'] if rows else 'FID')
  ax.legend(fontsize=7, ncol=2)
  ax.set_title('Sample quality against NFE')
  fig.tight_layout()
  fig.savefig(os.path.join(out, 'fid_vs_nfe.png'), dpi=110)
  plt.close(fig)


if __name__ == '__main__':
  main()
