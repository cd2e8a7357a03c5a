"""Latent diffusion study (issue 21): pictures, the guidance sweep and sampling throughput of a
trained pipeline (`genjax train --config=configs/ldm_mnist.py --workdir=W`).

  python experiments/latent_diffusion/analyze.py --workdir=W [--num=1000] \
      [--weights=0,1,2,4,8] [--out=experiments/latent_diffusion]

Writes into --out: prompts_x_seeds.png, guidance_sweep.png, interpolation.png,
fid_vs_prompt_accuracy.png, sweep.json (per guidance weight: prompt accuracy, FID, FID ratio,
precision, recall, CLIP score, N) and prints a markdown table. Prompts are the test split's
captions (the first caption of each test digit, cycled to N); the FID reference is the test
split and its floor N training digits, as in the metrics suite.
"""
import argparse
import json
import os
import time

import jax
import matplotlib
import numpy as np

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from genjax import config as config_lib  # noqa: E402
from genjax.methods.diffusion import SampleSpec  # noqa: E402
from genjax.methods.ldm import LDMSpec, clip, evaluation, load_parts  # noqa: E402
from genjax.metrics import extractors, suite  # noqa: E402
from genjax.train import pipeline, run as run_lib, trained as trained_lib  # noqa: E402
from genjax.viz.grid import save_grid  # noqa: E402

PROMPTS = ('a thin zero', 'a thick one leaning left', 'a small two', 'the digit 3, thick',
           'a large four leaning right', 'a thin five', 'a six leaning left', 'a thick seven '
           'leaning right', 'a small eight', 'a nine that is thin and upright')


def load_run(workdir: str):
  """(trained run, its Parts, its SampleSpec) of an LDM run or of a pipeline's workdir."""
  t = trained_lib.load_trained(pipeline.resolve_workdir(workdir))
  parts = load_parts(config_lib.decode(LDMSpec, t.config, 'ldm'),
                     tuple(t.run.example['image'].shape[1:]))
  return t, parts, config_lib.decode(SampleSpec, t.config, 'sample')


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--workdir', required=True)
  p.add_argument('--num', type=int, default=1000)
  p.add_argument('--weights', default='0,1,2,4,8')
  p.add_argument('--out', default=os.path.dirname(os.path.abspath(__file__)))
  p.add_argument('--seed', type=int, default=0)
  args = p.parse_args()
  t, parts, base = load_run(args.workdir)
  config = t.config
  key = jax.random.key(args.seed)
  os.makedirs(args.out, exist_ok=True)

  grid = evaluation.prompt_grid(parts, base, t.state, key, PROMPTS, num_seeds=8)
  save_grid(grid, os.path.join(args.out, 'prompts_x_seeds.png'), ncol=8)
  sweep = evaluation.guidance_grid(parts, base, t.state, key, 'a thick seven leaning right',
                                   (0.0, 1.0, 2.0, 4.0, 8.0))
  save_grid(sweep, os.path.join(args.out, 'guidance_sweep.png'), ncol=8)
  inter = evaluation.interpolation_grid(parts, base, t.state, key, 'a thin small one leaning left',
                                        'a thick large seven leaning right')
  save_grid(inter, os.path.join(args.out, 'interpolation.png'), ncol=8)

  ctx = run_lib.eval_context(t.run, t.step)
  test = ctx.load_split(config.eval.split, None)
  train = ctx.load_split(config.data.train_split, None)
  pick = np.arange(args.num) % len(test['label'])
  ids, digits = test['captions'][pick, 0], test['label'][pick]
  floor = train['image'][np.random.default_rng(config.seed).choice(len(train['image']), args.num,
                                                                   replace=False)]
  extractor = extractors.get_extractor(config.eval.feature_extractor)
  rows = []
  for w in [float(v) for v in args.weights.split(',')]:
    spec = base.replace(guidance_scale=w)
    evaluation.draw(parts, spec, t.state, key, ids[:250], 250)  # Compile outside the timing.
    t0 = time.perf_counter()
    samples = evaluation.draw(parts, spec, t.state, key, ids, 250)
    seconds = time.perf_counter() - t0
    q = suite.sample_quality(extractor, samples, test['image'], floor, sample_labels=digits,
                             seed=config.seed)
    row = {'guidance': w, 'num_samples': args.num, 'prompt_accuracy': q['label_accuracy'],
           'fid': q['fid'], 'fid_floor': q['fid_floor'], 'fid_ratio': q['fid_ratio'],
           'precision': q['precision'], 'recall': q['recall'],
           'img_per_s': args.num / seconds, 'nfe_per_image': base.num_steps * (1 if w in (0, 1) else 2)}
    if parts.clip is not None:
      row['clip_score'] = float(np.mean(clip.clip_score(*parts.clip, samples, ids)))
    rows.append(row)
    print(json.dumps(row), flush=True)
  with open(os.path.join(args.out, 'sweep.json'), 'w') as f:
    json.dump({'workdir': pipeline.resolve_workdir(args.workdir), 'step': t.step,
               'sampler': base.sampler, 'sample_steps': base.num_steps, 'rows': rows}, f, indent=2)
  fig, ax = plt.subplots(figsize=(4.5, 3.5))
  ax.plot([r['prompt_accuracy'] for r in rows], [r['fid_ratio'] for r in rows], 'o-')
  for r in rows:
    ax.annotate(f"w={r['guidance']:g}", (r['prompt_accuracy'], r['fid_ratio']))
  ax.set_xlabel('prompt accuracy (shipped classifier)')
  ax.set_ylabel('FID / real-data floor')
  ax.set_title(f'LDM guidance sweep, N={args.num}')
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, 'fid_vs_prompt_accuracy.png'), dpi=120)
  print('| w | prompt acc. | FID | FID/floor | precision | recall | CLIP score | img/s |')
  print('|---|---|---|---|---|---|---|---|')
  for r in rows:
    print(f"| {r['guidance']:g} | {r['prompt_accuracy']:.3f} | {r['fid']:.3g} | "
          f"{r['fid_ratio']:.3g} | {r['precision']:.3f} | {r['recall']:.3f} | "
          f"{r.get('clip_score', float('nan')):.2f} | {r['img_per_s']:.0f} |")


if __name__ == '__main__':
  main()
