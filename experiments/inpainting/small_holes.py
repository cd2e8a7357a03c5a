"""Why a method wins or loses the smallest hole bin: hole PSNR split by where the hole lies.

  .venv/bin/python experiments/inpainting/small_holes.py --pconv=runs/pconv_inpaint \
      --ae=runs/ae_inpaint --bin=0.01-0.1 --num=1000

In the 0.01-0.1 bin many holes fall on the black background only. Their truth is a constant
(-1), which biharmonic interpolation reproduces exactly, so those images' hole PSNR reaches
the 8-bit cap (58.9 dB) and dominates the bin's mean. This splits each method's per-image hole
PSNR (as in the study's table) into the images whose hole is all background and the others,
and adds the median, the fraction at the cap and the mean error on background hole pixels
in grey levels. Writes small_holes.json and small_holes.md to --out.
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

from run import network_fill  # pylint: disable=g-bad-import-order  # This folder's study.

CAP_DB = float(inpaint_eval.psnr_from_mse(np.zeros(1))[0])  # 58.9 dB: the 8-bit floor's PSNR.


def split_scores(truth: np.ndarray, filled: np.ndarray, masks: np.ndarray) -> dict:
  """Hole PSNR of filled [N, H, W, 1] against truth (in [-1, 1]) with masks [N, H, W] (1 = known),
  split by whether the hole covers background (-1) only."""
  psnr, _ = inpaint_eval.hole_psnr_l1(truth, filled, masks)
  hole = masks[..., None] == 0
  background = np.array([(t[h] == -1).all() for t, h in zip(truth, hole)])
  grey_levels = np.abs(filled - truth)[hole & (truth == -1)] * 127.5
  return {'psnr_hole': float(psnr.mean()), 'psnr_hole_median': float(np.median(psnr)),
          'at_cap': float((psnr >= CAP_DB - 1e-6).mean()),
          'background_only': {'n': int(background.sum()),
                              'psnr_hole': float(psnr[background].mean())},
          'touching_the_digit': {'n': int((~background).sum()),
                                 'psnr_hole': float(psnr[~background].mean())},
          'background_error_grey_levels': float(grey_levels.mean())}


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--pconv', required=True)
  p.add_argument('--ae', required=True)
  p.add_argument('--bin', default='0.01-0.1')
  p.add_argument('--num', type=int, default=1000)
  p.add_argument('--out', default=os.path.dirname(os.path.abspath(__file__)))
  a = p.parse_args()
  config = load_trained(a.pconv).config
  x = load_split(config, 'test', a.num)['image']
  n, h, w, _ = x.shape
  masks = eval_masks(config.inpaint.eval_mask_seed, n, h, w)[a.bin]
  fills = {'autoencoder (seed)': network_fill(a.ae), 'partial conv U-Net': network_fill(a.pconv),
           'biharmonic': inpaint.biharmonic_fill}
  scores = {name: split_scores(x, np.asarray(fn(x, masks)), masks) for name, fn in fills.items()}
  lines = [f'Bin {a.bin}, N = {n} test digits, per-image hole PSNR (dB):', '',
           '| method | mean | median | at the cap | hole all background: n, mean | hole touches '
           'the digit: n, mean | error on background hole pixels (grey levels) |',
           '|---|---|---|---|---|---|---|']
  for name, s in scores.items():
    bg, fg = s['background_only'], s['touching_the_digit']
    lines.append(f'| {name} | {s["psnr_hole"]:.2f} | {s["psnr_hole_median"]:.2f} | '
                 f'{s["at_cap"]:.3f} | {bg["n"]}, {bg["psnr_hole"]:.2f} | {fg["n"]}, '
                 f'{fg["psnr_hole"]:.2f} | {s["background_error_grey_levels"]:.2f} |')
  os.makedirs(a.out, exist_ok=True)
  with open(os.path.join(a.out, 'small_holes.json'), 'w') as f:
    json.dump({'bin': a.bin, 'num': n, 'runs': {'pconv': a.pconv, 'ae': a.ae}, 'scores': scores},
              f, indent=1)
  with open(os.path.join(a.out, 'small_holes.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  print('\n'.join(lines))


if __name__ == '__main__':
  main()
