"""Inpainting study: four methods on the same fixed masks, scored per hole-ratio bin.

  .venv/bin/python experiments/inpainting/run.py --pconv=runs/pconv_inpaint \
      --ae=runs/ae_inpaint --ddpm=runs/ddpm_inpaint --num=1000 --num_repaint=100

Writes results.json, table.md and pictures (input / mask / each method / truth for three
hole-ratio bins) to --out. Table A: N = --num test digits for the methods that are cheap to
run (seed's autoencoder, partial-conv U-Net, biharmonic); table B: the first --num_repaint
digits for all four methods (RePaint costs its NFE per image), so FIDs compare at one N, in
every bin or in those of --repaint_bins.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from genjax.config import decode
from genjax.core.batching import batched_apply
from genjax.data import load_split
from genjax.data.masks import eval_masks
from genjax.diffusion.samplers import repaint_nfe
from genjax.methods import diffusion, inpaint, inpaint_eval
from genjax.train.trained import load_trained
from genjax.viz.grid import save_grid

METRICS = ('l1_hole', 'psnr', 'psnr_hole', 'ssim', 'ssim_hole', 'fid', 'accuracy',
           'fill_s_per_image')


def network_fill(workdir: str, trained=None):
  """fill(images, masks) with the inpainting run in `workdir` (`trained`: that run, if loaded)."""
  trained = trained or load_trained(workdir)
  config = trained.config
  spec = decode(inpaint.InpaintSpec, config, 'inpaint',
                image_shape=tuple(trained.run.example['image'].shape[1:]))
  params = trained.state.eval_params
  return lambda x, m: batched_apply(lambda b: inpaint.fill(spec, params, b['x'], b['m']),
                                    {'x': x, 'm': m}, 250)


def repaint_fill(workdir: str, jump_length: int, jump_n_sample: int, num_steps: int, seed: int):
  trained = load_trained(workdir)
  spec, sample_spec = diffusion.decode_specs(trained.config,
                                             tuple(trained.run.example['image'].shape[1:]))
  run = inpaint.make_repaint_fn(spec, sample_spec, jump_length=jump_length,
                                jump_n_sample=jump_n_sample, num_steps=num_steps)
  params, key = trained.state.eval_params, jax.random.key(seed)

  def fill(x, m):
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(np.arange(len(x)))
    return batched_apply(lambda b: run(params, b['x'], b['m'], b['k']),
                         {"x": x, "m": m, "k": keys}, 50)  # One compiled shape.
  return fill, trained.step


def table(results: dict, bins: list[str], title: str) -> str:
  lines = [f'### {title}', '', '| bin | method | ' + ' | '.join(METRICS) + ' |',
           '|---|---|' + '---|' * len(METRICS)]
  for b in bins:
    for name, r in results.items():
      cells = [f'{r[f"{b}/{k}"]:.4g}' if f'{b}/{k}' in r else '-' for k in METRICS]
      lines.append(f'| {b} | {name} | ' + ' | '.join(cells) + ' |')
    floor = next(iter(results.values()))
    lines.append(f'| {b} | (real digits) | - | - | - | - | - | {floor[f"{b}/fid_floor"]:.4g} | '
                 f'{floor[f"{b}/accuracy_floor"]:.4g} | - |')
  return '\n'.join(lines)


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--pconv', required=True)
  p.add_argument('--ae', required=True)
  p.add_argument('--ddpm', required=True)
  p.add_argument('--num', type=int, default=1000)
  p.add_argument('--num_repaint', type=int, default=100)
  p.add_argument('--repaint_steps', type=int, default=20)
  p.add_argument('--jump_length', type=int, default=5)
  p.add_argument('--jump_n_sample', type=int, default=3)
  p.add_argument('--repaint_bins', default='',
                 help='comma-separated hole-ratio bins of table B (default: every bin)')
  p.add_argument('--out', default='experiments/inpainting')
  a = p.parse_args()

  config = load_trained(a.pconv).config
  data = load_split(config, 'test', a.num)
  train = load_split(config, 'train')['image']  # A seeded random subset, as sampling's floor.
  reference = train[np.random.default_rng(config.seed).choice(len(train), a.num, replace=False)]
  n, h, w, _ = data['image'].shape
  spec = decode(inpaint.InpaintSpec, config, 'inpaint', image_shape=(h, w, 1))
  bins = eval_masks(spec.eval_mask_seed, n, h, w)
  b_names = a.repaint_bins.split(',') if a.repaint_bins else list(bins)
  unknown = [b for b in b_names if b not in bins]
  if unknown:
    p.error(f'--repaint_bins: no bin {unknown[0]!r}; the bins are {",".join(bins)}.')
  fills = {'autoencoder (seed)': network_fill(a.ae), 'partial conv U-Net': network_fill(a.pconv),
           'biharmonic': inpaint.biharmonic_fill}
  rp_fill, ddpm_step = repaint_fill(a.ddpm, a.jump_length, a.jump_n_sample, a.repaint_steps,
                                    config.seed)
  results_a = {}
  for name, fn in fills.items():
    t0 = time.perf_counter()
    results_a[name] = inpaint_eval.score_bins(fn, data, bins, reference=reference)
    print(f'{name}: scored N={n} in {time.perf_counter() - t0:.0f} s', flush=True)

  k = a.num_repaint
  sub = {key: v[:k] for key, v in data.items()}
  sub_bins = {key: bins[key][:k] for key in b_names}
  results_b = {}
  for name, fn in {**fills, 'RePaint': rp_fill}.items():
    t0 = time.perf_counter()
    results_b[name] = inpaint_eval.score_bins(fn, sub, sub_bins, reference=reference[:k])
    print(f'{name}: scored N={k} in {time.perf_counter() - t0:.0f} s', flush=True)

  os.makedirs(a.out, exist_ok=True)
  shown = 8
  for b in inpaint.PICTURED_BINS:
    x, m = data['image'][:shown], bins[b][:shown]
    filled = {name: np.asarray(fn(x, m)) for name, fn in {**fills, 'RePaint': rp_fill}.items()}
    save_grid(inpaint_eval.picture_rows(x, m, filled),
              os.path.join(a.out, f'fills_{b}.png'), ncol=shown, scale=3)
  info = {'num': n, 'num_repaint': k, 'repaint': {
      'steps': a.repaint_steps, 'jump_length': a.jump_length, 'jump_n_sample': a.jump_n_sample,
      'nfe': repaint_nfe(a.repaint_steps, a.jump_length, a.jump_n_sample), 'bins': b_names,
      'ddpm_step': ddpm_step}, 'eval_mask_seed': spec.eval_mask_seed,
      'runs': {'pconv': a.pconv, 'ae': a.ae, 'ddpm': a.ddpm}}
  with open(os.path.join(a.out, 'results.json'), 'w') as f:
    json.dump({'info': info, f'N={n}': results_a, f'N={k}': results_b}, f, indent=1)
  names = list(bins)
  md = (table(results_a, names, f'A: N = {n} test digits') + '\n\n' +
        table(results_b, b_names, f'B: N = {k} test digits, with RePaint'))
  with open(os.path.join(a.out, 'table.md'), 'w') as f:
    f.write(md + '\n')
  print(md)


if __name__ == '__main__':
  main()
