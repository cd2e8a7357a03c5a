"""Inpainting study, photo variant: the partial-conv U-Net against biharmonic on the held-out
photos' tiles, per hole-ratio bin.

  .venv/bin/python experiments/inpainting/photos.py --pconv=runs/pconv_photos [--ae=W]

The test split of the run's data (`configs/pconv_photos.py`: flower and rocket cut into
64x64 tiles, all of them), the run's fixed evaluation masks of every bin (the same masks for
every method), L1 / PSNR / SSIM whole and hole-only over RGB (`inpaint_eval.score_bins`).
Writes photos.json, photos.md and photo_fills_<bin>.png (input / mask / each method / truth
for eight tiles) to --out.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from genjax.data import load_split
from genjax.data.masks import eval_masks
from genjax.methods import inpaint, inpaint_eval
from genjax.train.trained import load_trained
from genjax.viz.grid import save_grid

from run import network_fill  # pylint: disable=g-bad-import-order  # This folder's study.

METRICS = ('l1_hole', 'psnr', 'psnr_hole', 'ssim', 'ssim_hole', 'fill_s_per_image')


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--pconv', required=True, help='A finished configs/pconv_photos.py run.')
  p.add_argument('--ae', help='Optionally a seed-autoencoder run on the same data.')
  p.add_argument('--out', default=os.path.dirname(os.path.abspath(__file__)))
  args = p.parse_args()
  trained = load_trained(args.pconv)
  config = trained.config
  data = load_split(config, config.eval.split)
  h, w, _ = data['image'].shape[1:]
  bins = eval_masks(config.inpaint.eval_mask_seed, len(data['image']), h, w)
  methods = {'partial conv U-Net': network_fill(args.pconv, trained)}  # Loaded once.
  if args.ae:
    methods['autoencoder (seed)'] = network_fill(args.ae)
  methods['biharmonic'] = inpaint.biharmonic_fill
  results = {name: inpaint_eval.score_bins(fn, data, bins) for name, fn in methods.items()}
  lines = [f'Photo tiles: N = {len(data["image"])} ({h}x{w}) of the test split, step '
           f'{trained.step} of {args.pconv}; RGB in [0, 1] for L1, 8-bit PSNR cap.', '',
           '| bin | method | ' + ' | '.join(METRICS) + ' |', '|---|---|' + '---|' * len(METRICS)]
  for b in bins:
    for name, r in results.items():
      lines.append(f'| {b} | {name} | ' + ' | '.join(f'{r[f"{b}/{k}"]:.4g}' for k in METRICS)
                   + ' |')
  text = '\n'.join(lines)
  print(text)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'photos.md'), 'w') as f:
    f.write(text + '\n')
  with open(os.path.join(args.out, 'photos.json'), 'w') as f:
    json.dump({'pconv': args.pconv, 'step': trained.step, 'results': results}, f, indent=1)
  pick = np.linspace(0, len(data['image']) - 1, 8).astype(int)  # Tiles of both photos.
  for b in inpaint.PICTURED_BINS:
    m = bins[b][pick]
    fills = {name: np.asarray(fn(data['image'][pick], m)) for name, fn in methods.items()}
    save_grid(inpaint_eval.picture_rows(data['image'][pick], m, fills),
              os.path.join(args.out, f'photo_fills_{b}.png'), ncol=len(pick))


if __name__ == '__main__':
  main()
