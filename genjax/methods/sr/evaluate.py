"""Measuring SR as papers do: PSNR/SSIM (Y channel, border crop = scale) for the model and the
bicubic and nearest baselines; for digits also FID and the classifier's label accuracy."""
from __future__ import annotations

import os
from typing import Callable

import jax
import numpy as np

from genjax.core.batching import batched_apply
from genjax.data import bundled, resize, sources
from genjax.methods.api import EvalContext
from genjax.methods.sr import upscale
from genjax.methods.sr.spec import SRSpec
from genjax.metrics import extractors, fid, generative, image_quality
from genjax.viz.grid import save_grid

BASELINES = {'bicubic': resize.upsample_bicubic, 'nearest': resize.upsample_nearest}


def make_upscaler(spec: SRSpec, params, sampler=None, num_steps: int = 20,
                  ) -> Callable[[np.ndarray, jax.Array], jax.Array]:
  """(lr [B, h, w, C], keys [B]) -> SR [B, s h, s w, C] in [-1, 1] for `params` of `spec.arch`
  (self-ensembled when `spec.self_ensemble`).

  Args:
    sampler: diffusion only: a function of genjax.diffusion.SAMPLERS.
    num_steps: diffusion only: the sampler's steps.
  """
  if spec.arch == 'diffusion':
    fn = lambda lr, keys: upscale.diffusion_upscale(spec, sampler, num_steps, params['unet'],
                                                    lr, keys)
  else:
    fn = lambda lr, keys: upscale.rrdb_upscale(spec, params['generator'], lr)
  return upscale.self_ensemble(fn) if spec.self_ensemble else fn


def upscale_all(fn, lr: np.ndarray, rng: jax.Array, batch_size: int) -> np.ndarray:
  """`fn` over lr [N, h, w, C] in batches; image i gets key fold_in(rng, i)."""
  keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(np.arange(len(lr), dtype=np.uint32))
  return batched_apply(lambda b: fn(b['lr'], b['keys']), {'lr': lr, 'keys': keys},
                       min(batch_size, len(lr)))


def quality(hr: np.ndarray, sr: np.ndarray, scale: int) -> dict:
  """Mean PSNR and SSIM of SR [N, H, W, C] against HR in [-1, 1]: Y of RGB, the grey
  channel of 1-channel images, in [0, 1] units (data range 1), `scale` border pixels cropped."""
  y = hr.shape[-1] == 3
  a, b = (np.clip(hr, -1, 1) + 1) / 2, (np.clip(sr, -1, 1) + 1) / 2
  kwargs = dict(data_range=1.0, y_channel=y, crop_border=scale)
  return {'psnr': np.asarray(image_quality.psnr(a, b, **kwargs)),
          'ssim': np.asarray(image_quality.ssim(a, b, **kwargs))}


def load_photos(config, split: str) -> tuple[list[str], list[np.ndarray]]:
  """The bundled photos of `split` at full size (not resized): names, [H, W, 3] in [-1, 1]."""
  source = sources.get_source(config.data.name, split, config.data.data_dir)
  names, images = [], []
  for i in range(len(source)):
    ex = source[i]
    name = ex['name']
    names.append(name.decode() if isinstance(name, bytes) else str(name))
    images.append(np.asarray(ex['image'], np.float32) / 127.5 - 1.0)
  return names, images


def evaluate_photos(spec: SRSpec, fn, ctx: EvalContext) -> dict:
  """PSNR/SSIM (Y, crop scale) on each held-out photo, whole (modcropped), and their means."""
  names, photos = load_photos(ctx.config, ctx.config.eval.split)
  out = {}
  per = {m: {'psnr': [], 'ssim': []} for m in ('model', *BASELINES)}
  for name, photo in zip(names, photos):
    lr, hr = resize.make_pairs(photo, spec.scale)
    results = {'model': np.asarray(fn(lr[None], jax.random.fold_in(ctx.rng, 0)[None]))[0]}
    results.update({k: f(lr) for k, f in BASELINES.items()})
    for method, sr in results.items():
      q = quality(hr[None], np.asarray(sr)[None], spec.scale)
      suffix = '' if method == 'model' else f'_{method}'
      for metric in ('psnr', 'ssim'):
        out[f'{metric}{suffix}_{name}'] = float(q[metric][0])
        per[method][metric].append(float(q[metric][0]))
  for method, metrics in per.items():
    suffix = '' if method == 'model' else f'_{method}'
    for metric, values in metrics.items():
      out[f'{metric}{suffix}'] = float(np.mean(values))
  out['num_examples'] = len(photos)
  return out


def evaluate_digits(spec: SRSpec, fn, ctx: EvalContext) -> dict:
  """PSNR/SSIM, FID (classifier features) and label accuracy on the test digits, for the
  model and the baselines; the FID floor is `eval.split` against as many train digits."""
  c = ctx.config
  data = ctx.load_split(c.eval.split, c.eval.num_examples)
  lr, hr = resize.make_pairs(data['image'], spec.scale)
  results = {'model': upscale_all(fn, lr, ctx.rng, c.eval.sample_batch_size)}
  results.update({k: f(lr) for k, f in BASELINES.items()})
  out = {'num_examples': int(len(hr))}
  extractor = None
  if c.eval.feature_extractor is not None and spec.channels == 1:
    extractor = extractors.get_extractor(c.eval.feature_extractor, c.eval.feature_extractor_path)
    hr_feats, hr_probs = extractor(hr)
    train = ctx.load_split(c.data.train_split, None)['image']
    pick = np.random.default_rng(c.seed).choice(len(train), min(len(hr), len(train)), False)
    out['fid_floor'] = fid.fid_from_features(hr_feats, extractor(train[pick])[0])
    if 'label' in data:
      out['label_accuracy_hr'] = generative.label_accuracy(hr_probs, data['label'])
  for method, sr in results.items():
    suffix = '' if method == 'model' else f'_{method}'
    q = quality(hr, np.asarray(sr), spec.scale)
    out[f'psnr{suffix}'], out[f'ssim{suffix}'] = float(q['psnr'].mean()), float(q['ssim'].mean())
    if extractor is not None:
      feats, probs = extractor(np.clip(np.asarray(sr), -1, 1))
      out[f'fid{suffix}'] = fid.fid_from_features(hr_feats, feats)
      if 'label' in data:
        out[f'label_accuracy{suffix}'] = generative.label_accuracy(probs, data['label'])
  return out


def is_photos(config) -> bool:
  return config.data.name in bundled.PHOTO_SETS


def evaluate(spec: SRSpec, fn_of_params, state, ctx: EvalContext) -> dict:
  """The SR metrics of `state.eval_params` (see `evaluate_photos`, `evaluate_digits`)."""
  fn = fn_of_params(state.eval_params)
  result = {'arch': spec.arch, 'scale': spec.scale}
  if is_photos(ctx.config):
    return {**result, **evaluate_photos(spec, fn, ctx)}
  return {**result, **evaluate_digits(spec, fn, ctx)}


def write_images(spec: SRSpec, fn_of_params, state, ctx: EvalContext) -> list[str]:
  """Rows LR (nearest, for display) / bicubic / model / HR: 10 test digits, or 4 crops of
  each held-out photo."""
  fn = fn_of_params(state.eval_params)
  if is_photos(ctx.config):
    side = 32 * spec.scale
    hrs = []
    for photo in load_photos(ctx.config, ctx.config.eval.split)[1]:
      h, w = photo.shape[:2]
      hrs += [photo[t:t + side, l:l + side] for t, l in
              ((h // 4, w // 4), (h // 4, w // 2), (h // 2, w // 4), (h // 2, w // 2))]
    hr = np.stack(hrs)
  else:
    hr = ctx.load_split(ctx.config.eval.split, 10)['image']
  lr, hr = resize.make_pairs(hr, spec.scale)
  sr = upscale_all(fn, lr, ctx.rng, len(lr))
  rows = [resize.upsample_nearest(lr), resize.upsample_bicubic(lr), sr, hr]
  grid = np.clip(np.stack(rows), -1, 1).reshape(-1, *hr.shape[1:])
  path = os.path.join(ctx.images_dir, f'sr_{ctx.step:07d}.png')
  return [save_grid(grid, path, ncol=len(hr), scale=1 if is_photos(ctx.config) else 3)]
