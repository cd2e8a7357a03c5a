"""Where an RRDB-PSNR run gains and loses against bicubic on each held-out photo.

  python experiments/super_resolution/residual_scale.py --workdir=runs/sr6/rrdb_psnr_photos

For each held-out photo (whole, modcropped; Y channel, 4-px border crop as the run's eval):
- PSNR of bicubic, of the model, and of bicubic + a * (model - bicubic) with the one scale a
  that minimises the MSE on that photo (an oracle: it reads the HR image). If even the best
  a leaves a photo near bicubic, no calibration of the residual can help there; the detail
  itself is missing;
- the MSE of the model and of bicubic in 32x32 blocks, grouped by the HR block's standard
  deviation (flat to textured quartiles), and the share of blocks where the model wins.
"""
from __future__ import annotations

import argparse

import numpy as np

from genjax.data import resize
from genjax.methods import sr
from genjax.methods.sr import evaluate as sr_eval
from genjax.metrics import image_quality
from genjax.train.trained import workdir_config

BLOCK = 32


def luma(images: np.ndarray, scale: int) -> np.ndarray:
  """[H, W, 3] in [-1, 1] -> BT.601 Y [H - 2 scale, W - 2 scale] in [0, 1] units (the
  PSNR's: `image_quality.psnr` with data_range 1 and y_channel), border cropped."""
  y = np.asarray(image_quality.rgb_to_y((np.clip(images, -1, 1) + 1) / 2))[..., 0] / 255.0
  return y[scale:-scale, scale:-scale]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
  """PSNR (dB) of two Y images [H, W] in [0, 1] units (`image_quality.psnr`, data range 1)."""
  return float(image_quality.psnr(a[..., None], b[..., None], data_range=1.0))


def analyse(name: str, hr: np.ndarray, model: np.ndarray, bicubic: np.ndarray) -> None:
  """Prints the photo's PSNRs, the oracle residual scale and the per-texture block MSEs."""
  residual, truth = model - bicubic, hr - bicubic
  a = float(np.sum(residual * truth) / np.sum(residual * residual))
  print(f'{name}: PSNR (Y) bicubic {psnr(bicubic, hr):.2f}, model {psnr(model, hr):.2f}, '
        f'bicubic + {a:.2f} x residual (best scale) {psnr(bicubic + a * residual, hr):.2f} dB; '
        f'corr(residual, HR - bicubic) {np.corrcoef(residual.ravel(), truth.ravel())[0, 1]:.2f}')
  h, w = hr.shape
  blocks = [(hr[i:i + BLOCK, j:j + BLOCK], model[i:i + BLOCK, j:j + BLOCK],
             bicubic[i:i + BLOCK, j:j + BLOCK])
            for i in range(0, h - BLOCK + 1, BLOCK) for j in range(0, w - BLOCK + 1, BLOCK)]
  std = np.array([np.std(t) for t, _, _ in blocks])
  mse = np.array([[np.mean(np.square(m - t)), np.mean(np.square(b - t))] for t, m, b in blocks])
  print(f'  {len(blocks)} blocks of {BLOCK}x{BLOCK}; the model wins {np.mean(mse[:, 0] < mse[:, 1]):.0%}')
  edges = np.quantile(std, [0, 0.25, 0.5, 0.75, 1])
  for k in range(4):
    pick = (std >= edges[k]) & ((std < edges[k + 1]) if k < 3 else True)
    print(f'  texture quartile {k + 1} (HR std {edges[k] * 255:.1f}-{edges[k + 1] * 255:.1f} '
          f'grey levels): MSE model {mse[pick, 0].mean() * 255 ** 2:.2f}, bicubic '
          f'{mse[pick, 1].mean() * 255 ** 2:.2f} (grey levels^2), model wins '
          f'{np.mean(mse[pick, 0] < mse[pick, 1]):.0%}')


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--workdir', required=True, help='an RRDB-PSNR photo run')
  args = p.parse_args()
  config = workdir_config(args.workdir)
  side = config.data.crop_to or config.data.tile_to  # The training images' side.
  spec = sr.decode(config, (side, side, 3))
  generator = sr.upscale.load_run_params(args.workdir)['generator']  # The EMA, as the eval.
  names, photos = sr_eval.load_photos(config, config.eval.split)
  for name, photo in zip(names, photos):
    lr, hr = resize.make_pairs(photo, spec.scale)
    model = np.asarray(sr.upscale.rrdb_upscale(spec, generator, lr[None]))[0]
    bicubic = np.asarray(resize.upsample_bicubic(lr[None], spec.scale))[0]
    analyse(name, *(luma(x, spec.scale) for x in (hr, model, bicubic)))


if __name__ == '__main__':
  main()
