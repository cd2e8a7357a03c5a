"""Every SR method measured as SR papers measure: the study's table, plot and pictures.

  python experiments/super_resolution/sweep.py --runs=runs/sr --out=experiments/super_resolution

Reads the five runs of run_all.sh. Digits (all 1,000 mnist5k test digits, 7x7 -> 28x28):
PSNR/SSIM (grey channel, 4-px border crop), FID against the HR test digits (the shipped
classifier's features; floor: 1,000 train digits) and the classifier's label accuracy, for
nearest, bicubic, RRDB-PSNR, ESRGAN, network interpolation alpha in 0..1 (one sweep) and
diffusion SR at several NFE. Photos (flower and rocket whole): PSNR/SSIM on Y, 4-px crop.
Writes results.json, results.md, pd_plot.png (PSNR against FID), digits_compare.png,
photos_compare.png; with --photos_only, only the photo runs: photos_compare.png and
results_photos.json.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import jax
import matplotlib
import numpy as np

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from genjax.core.malloc import keep_freed_memory  # noqa: E402
from genjax.data import load_split, resize  # noqa: E402
from genjax.diffusion import SAMPLERS  # noqa: E402
from genjax.methods import sr  # noqa: E402
from genjax.methods.sr import evaluate as sr_eval  # noqa: E402
from genjax.metrics import extractors, fid, generative  # noqa: E402
from genjax.tools import upscale as upscale_tool  # noqa: E402
from genjax.train.trained import load_trained  # noqa: E402
from genjax.viz.grid import save_grid  # noqa: E402

ALPHAS = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)
DIFFUSION_STEPS = (3, 5, 10)  # DPM-Solver++(2M): NFE = steps; 20 from the run's eval.json.


def timed(fn, lr, rng, batch):
  """fn over all of lr, and its images per second after one warm-up batch (compilation)."""
  sr_eval.upscale_all(fn, lr[:batch], rng, batch)
  t = time.perf_counter()
  out = sr_eval.upscale_all(fn, lr, rng, batch)
  return out, len(lr) / (time.perf_counter() - t)


def digits(runs: str, num: int | None = None) -> tuple[dict, dict]:
  """Scores of every method on the test digits, and 8 digits' pictures per method."""
  trained = load_trained(os.path.join(runs, 'rrdb_psnr_mnist'))
  config = trained.config
  test, train = load_split(config, 'test', num), load_split(config, 'train')
  lr, hr = resize.make_pairs(test['image'], 4)
  extractor = extractors.get_extractor('mnist5k_classifier')
  hr_feats, hr_probs = extractor(hr)
  pick = np.random.default_rng(0).choice(len(train['image']), len(hr), replace=False)
  rows = {'HR (real-data floor)': {
      'fid': fid.fid_from_features(hr_feats, extractor(train['image'][pick])[0]),
      'label_accuracy': generative.label_accuracy(hr_probs, test['label']),
      'psnr': float('inf'), 'ssim': 1.0}}
  pictures = {'LR': resize.upsample_nearest(lr[:8]), 'HR': hr[:8]}
  rng = jax.random.key(0)

  def score(name, sr_images, rate=None, **extra):
    q = sr_eval.quality(hr, sr_images, 4)
    feats, probs = extractor(np.clip(sr_images, -1, 1))
    rows[name] = {'psnr': float(q['psnr'].mean()), 'ssim': float(q['ssim'].mean()),
                  'fid': fid.fid_from_features(hr_feats, feats),
                  'label_accuracy': generative.label_accuracy(probs, test['label']),
                  'img_per_s': rate, **extra}
    print(name, {k: round(v, 4) if isinstance(v, float) else v for k, v in rows[name].items()},
          flush=True)

  for name, f in sr_eval.BASELINES.items():
    out = f(lr)
    score(name, out)
    pictures[name] = out[:8]
  spec, fn = upscale_tool.load_upscaler(os.path.join(runs, 'rrdb_psnr_mnist'), None)
  out, rate = timed(fn, lr, rng, 250)
  score('RRDB-PSNR', out, rate)
  pictures['RRDB-PSNR'] = out[:8]
  for alpha in ALPHAS:
    _, fn = upscale_tool.load_upscaler(os.path.join(runs, 'esrgan_mnist'), alpha)
    out, rate = timed(fn, lr, rng, 250)
    score(f'ESRGAN alpha={alpha}', out, rate, alpha=alpha)
    if alpha == 0.0:
      pictures['ESRGAN'] = out[:8]
  diffusion = load_trained(os.path.join(runs, 'sr_diffusion_mnist'))
  dspec = sr.decode(diffusion.config, diffusion.run.example['image'].shape[1:])
  for n in DIFFUSION_STEPS:
    fn = sr_eval.make_upscaler(dspec, diffusion.state.eval_params, SAMPLERS['dpmpp_2m'], n)
    out, rate = timed(fn, lr, rng, 250)
    score(f'diffusion dpmpp_2m NFE={n}', out, rate, nfe=n)
    if n == DIFFUSION_STEPS[-1]:
      pictures['diffusion'] = out[:8]
  # NFE 20 (the config's sampler): the run's own evaluation, the same metrics on the same digits
  # (its sampling noise from the run's eval key; ~6 CPU-minutes saved).
  ev = json.load(open(os.path.join(runs, 'sr_diffusion_mnist', 'eval.json')))
  if ev.get('num_examples') == len(hr):
    rows['diffusion dpmpp_2m NFE=20'] = {k: ev[k] for k in ('psnr', 'ssim', 'fid', 'label_accuracy')}
    rows['diffusion dpmpp_2m NFE=20'].update(nfe=20, img_per_s=None)
  return rows, pictures


def photos(runs: str) -> tuple[dict, dict, dict]:
  """Per-photo PSNR/SSIM (Y, crop 4) of each method; crops for pictures; the tiling check."""
  psnr_run = os.path.join(runs, 'rrdb_psnr_photos')
  config = load_trained(psnr_run).config
  names, images = sr_eval.load_photos(config, 'test')
  methods = {name: (lambda f: lambda lr, keys: f(lr[0])[None])(f)
             for name, f in sr_eval.BASELINES.items()}
  methods['RRDB-PSNR'] = upscale_tool.load_upscaler(psnr_run, None)[1]
  for alpha in (0.5, 0.0):
    methods[f'ESRGAN alpha={alpha}'] = upscale_tool.load_upscaler(
        os.path.join(runs, 'esrgan_photos'), alpha)[1]
  rows, crops = {}, {'LR': [], 'HR': []}
  key = jax.random.key(0)[None]
  for name, image in zip(names, images):
    lr, hr = resize.make_pairs(image, 4)
    h, w = lr.shape[:2]
    boxes = [(h // 3, w // 3), (h // 2, w // 2)]  # 32x32 LR crops for the pictures.
    crops['LR'] += [resize.upsample_nearest(lr[t:t + 32, l:l + 32]) for t, l in boxes]
    crops['HR'] += [hr[4 * t:4 * t + 128, 4 * l:4 * l + 128] for t, l in boxes]
    for method, fn in methods.items():
      t0 = time.perf_counter()
      out = np.asarray(fn(lr[None], key))[0]
      seconds = time.perf_counter() - t0
      q = sr_eval.quality(hr[None], out[None], 4)
      rows.setdefault(method, {})[name] = {'psnr': float(q['psnr'][0]),
                                           'ssim': float(q['ssim'][0]), 'seconds': seconds}
      crops.setdefault(method, []).extend(
          out[4 * t:4 * t + 128, 4 * l:4 * l + 128] for t, l in boxes)
    print(name, {m: round(r[name]['psnr'], 3) for m, r in rows.items()}, flush=True)
  for method, per in rows.items():
    per['mean'] = {k: float(np.mean([per[n][k] for n in names])) for k in ('psnr', 'ssim')}
  # Tiles (the command's 16 pixels of context) against the whole image, RRDB-PSNR, flower.
  lr, hr = resize.make_pairs(images[0], 4)
  fn = methods['RRDB-PSNR']
  whole = np.asarray(fn(lr[None], key))[0]
  tiled = sr.upscale_tiled(lambda x: np.asarray(fn(x, key)), lr, 4, tile=32,
                           overlap=upscale_tool.OVERLAP)
  diff = np.abs(tiled - whole)
  tiling = {'image': names[0], 'tile': 32, 'overlap': upscale_tool.OVERLAP,
            'max_abs_diff': float(diff.max()), 'mean_abs_diff': float(diff.mean()),
            'psnr_whole': float(sr_eval.quality(hr[None], whole[None], 4)['psnr'][0]),
            'psnr_tiled': float(sr_eval.quality(hr[None], tiled[None], 4)['psnr'][0])}
  print('tiling', tiling, flush=True)
  return rows, {k: np.stack(v) for k, v in crops.items()}, tiling


def plot(rows: dict, path: str) -> None:
  """PSNR against FID: the interpolation alpha and the diffusion NFE as curves."""
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  alpha = [(r['fid'], r['psnr'], r['alpha']) for r in rows.values() if 'alpha' in r]
  ax.plot([a[0] for a in alpha], [a[1] for a in alpha], 'o-', label='ESRGAN interpolation')
  for f, p, a in alpha:
    ax.annotate(f'a={a:g}', (f, p), textcoords='offset points', xytext=(4, 4), fontsize=8)
  nfe = [(r['fid'], r['psnr'], r['nfe']) for r in rows.values() if 'nfe' in r]
  ax.plot([n[0] for n in nfe], [n[1] for n in nfe], 's-', label='diffusion SR (DPM++ 2M)')
  for f, p, n in nfe:
    ax.annotate(f'NFE {n}', (f, p), textcoords='offset points', xytext=(4, -10), fontsize=8)
  for name in ('bicubic', 'nearest', 'RRDB-PSNR'):
    ax.plot(rows[name]['fid'], rows[name]['psnr'], 'k^' if name != 'RRDB-PSNR' else 'r*',
            label=name)
  ax.axvline(rows['HR (real-data floor)']['fid'], color='grey', ls=':', label='FID floor')
  ax.set_xscale('log')
  ax.set_xlabel('FID to the HR test digits (mnist5k classifier features; lower: more real)')
  ax.set_ylabel('PSNR (dB, 4-px crop; higher: less distortion)')
  ax.set_title('Perception-distortion, x4 on mnist5k test digits')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def table(rows: dict, photo_rows: dict, tiling: dict) -> str:
  lines = ['| method | digits PSNR | SSIM | FID | label acc. | img/s | photos PSNR (flower, '
           'rocket; mean) | SSIM (mean) |', '|---|---|---|---|---|---|---|---|']
  for name, r in rows.items():
    p = photo_rows.get(name)
    photo = (f'{p["flower"]["psnr"]:.2f}, {p["rocket"]["psnr"]:.2f}; {p["mean"]["psnr"]:.2f}'
             if p else '-')
    rate = f'{r["img_per_s"]:.0f}' if r.get('img_per_s') else '-'
    lines.append(f'| {name} | {r["psnr"]:.2f} | {r["ssim"]:.4f} | {r["fid"]:.2f} | '
                 f'{r["label_accuracy"]:.3f} | {rate} | {photo} | '
                 f'{p["mean"]["ssim"]:.4f} |' if p else
                 f'| {name} | {r["psnr"]:.2f} | {r["ssim"]:.4f} | {r["fid"]:.2f} | '
                 f'{r["label_accuracy"]:.3f} | {rate} | - | - |')
  for name, p in photo_rows.items():
    if name not in rows:
      lines.append(f'| {name} (photos only) | - | - | - | - | - | {p["flower"]["psnr"]:.2f}, '
                   f'{p["rocket"]["psnr"]:.2f}; {p["mean"]["psnr"]:.2f} | '
                   f'{p["mean"]["ssim"]:.4f} |')
  lines.append('')
  lines.append(f'Tiling ({tiling["tile"]}-px tiles, {tiling["overlap"]} px of context, '
               f'{tiling["image"]}): max |tiled - whole| = {tiling["max_abs_diff"]:.2e}, mean '
               f'{tiling["mean_abs_diff"]:.2e} (on [-1, 1]); PSNR {tiling["psnr_whole"]:.3f} whole, '
               f'{tiling["psnr_tiled"]:.3f} tiled.')
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--runs', default='runs/sr')
  parser.add_argument('--out', default='experiments/super_resolution')
  parser.add_argument('--num_digits', type=int, default=None, help='Test digits (all: 1,000).')
  parser.add_argument('--photos_only', action='store_true',
                      help='Only the photo runs (rrdb_psnr_photos, esrgan_photos): writes '
                      'photos_compare.png and results_photos.json.')
  args = parser.parse_args()
  keep_freed_memory()
  t0 = time.perf_counter()
  photo_rows, crops, tiling = photos(args.runs)
  os.makedirs(args.out, exist_ok=True)
  order = ['LR', 'bicubic', 'RRDB-PSNR', 'ESRGAN alpha=0.0', 'HR']
  save_grid(np.clip(np.concatenate([crops[k] for k in order]), -1, 1),
            os.path.join(args.out, 'photos_compare.png'), ncol=len(crops['HR']), scale=1)
  if args.photos_only:
    with open(os.path.join(args.out, 'results_photos.json'), 'w') as f:
      json.dump({'photos': photo_rows, 'tiling': tiling, 'seconds': time.perf_counter() - t0},
                f, indent=2)
    print(table({}, photo_rows, tiling))
    return
  rows, pictures = digits(args.runs, args.num_digits)
  order = ['LR', 'bicubic', 'RRDB-PSNR', 'ESRGAN', 'diffusion', 'HR']
  save_grid(np.clip(np.concatenate([pictures[k] for k in order]), -1, 1),
            os.path.join(args.out, 'digits_compare.png'), ncol=8, scale=3)
  plot(rows, os.path.join(args.out, 'pd_plot.png'))
  with open(os.path.join(args.out, 'results.json'), 'w') as f:
    json.dump({'digits': rows, 'photos': photo_rows, 'tiling': tiling,
               'seconds': time.perf_counter() - t0}, f, indent=2)
  md = table(rows, photo_rows, tiling)
  with open(os.path.join(args.out, 'results.md'), 'w') as f:
    f.write(md + '\n')
  print(md)


if __name__ == '__main__':
  main()
