"""Scoring inpainting by hole-to-image ratio, the same way for every method.

`score_bins(fill_fn, data, bins)` fills the test images with each bin's fixed masks and
reports, per bin (keys '<bin>/<metric>'):
  l1, l1_hole        mean absolute error on the [0, 1] scale, whole image / hole pixels only
  psnr, psnr_hole    dB, data range 1 on that scale: 10 log10(1 / MSE), mean over images;
                     each image's MSE is floored at 8-bit quantization noise, 1 / (12 255^2)
                     (58.9 dB at most), so that a perfect fill (common on the black
                     background of digits) counts, as a finite number, instead of making the
                     mean infinite or being left out
  ssim, ssim_hole    Wang et al. (2004) as genjax.metrics.image_quality.ssim (whole); the
                     SSIM map (skimage, same window) averaged over hole pixels (hole)
  fid, fid_floor     (digits) FID of the filled test digits against as many train digits,
                     on the shipped classifier's features; the floor is the unfilled test
                     digits against the same train digits (what a perfect fill scores)
  accuracy           (digits) the shipped classifier's label accuracy on the filled digits;
                     accuracy_floor on the unfilled ones
  fill_s_per_image   wall-clock seconds of fill_fn per image (after a compiling warm-up)
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from genjax.data import masks as masks_lib
from genjax.metrics import fid as fid_lib
from genjax.metrics import image_quality
from genjax.metrics.extractors import mnist5k_classifier
from genjax.metrics.generative import label_accuracy


# The variance of 8-bit rounding on the [0, 1] scale: errors below it are not visible in a
# saved image. PSNR's MSE is floored here, which caps it at 10 log10(12 * 255^2) = 58.9 dB.
QUANTIZATION_MSE = 1.0 / (12 * 255**2)


def psnr_from_mse(mse: np.ndarray) -> np.ndarray:
  """10 log10(1 / max(mse, QUANTIZATION_MSE)) in dB, elementwise (data range 1)."""
  return -10 * np.log10(np.maximum(mse, QUANTIZATION_MSE))


def hole_psnr_l1(truth: np.ndarray, filled: np.ndarray, masks: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Per image PSNR (dB, `psnr_from_mse`) and L1 over hole pixels only, on the [0, 1] scale.

  Args:
    truth, filled: [N, H, W, C] in [-1, 1]; masks: [N, H, W], 1 = known.

  Returns:
    (psnr [N], l1 [N]); an image without holes gets nan for both.
  """
  err = (np.asarray(filled, np.float64) - np.asarray(truth, np.float64)) / 2  # [0, 1] scale.
  hole = (1 - masks)[..., None] * np.ones_like(err)
  count = hole.sum((1, 2, 3))
  n = np.where(count > 0, count, np.nan)
  mse = (hole * err ** 2).sum((1, 2, 3)) / n
  l1 = (hole * np.abs(err)).sum((1, 2, 3)) / n
  return psnr_from_mse(mse), l1


def image_psnr(truth: np.ndarray, filled: np.ndarray) -> np.ndarray:
  """Per image PSNR (dB, `psnr_from_mse`) of whole images [N, H, W, C] in [-1, 1]: [N]."""
  err = (np.asarray(filled, np.float64) - np.asarray(truth, np.float64)) / 2
  return psnr_from_mse(np.mean(err**2, axis=(1, 2, 3)))


def hole_ssim(truth: np.ndarray, filled: np.ndarray, masks: np.ndarray) -> np.ndarray:
  """Per image mean of the SSIM map over hole pixels: [N] (nan for an image without holes).

  skimage's map (Gaussian 11x11 window, sigma 1.5, population covariances: the window and
  constants of image_quality.ssim), averaged over channels, then over the hole.
  """
  from skimage.metrics import structural_similarity  # pylint: disable=g-import-not-at-top

  out = np.full(len(truth), np.nan)
  for i, (a, b, m) in enumerate(zip(truth, filled, masks)):
    if m.all():
      continue
    _, smap = structural_similarity(a, b, data_range=2.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, channel_axis=-1, full=True)
    out[i] = smap.mean(-1)[m == 0].mean()
  return out


def score_bins(fill_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], data: dict,
               bins: dict[str, np.ndarray], *, reference: np.ndarray | None = None) -> dict:
  """Fills `data['image']` with each bin's masks and scores the fills.

  Args:
    fill_fn: (images [N, H, W, C] in [-1, 1], masks [N, H, W], 1 = known) -> filled images.
    data: {'image': [N, H, W, C] in [-1, 1], 'label': [N] (digits)}.
    bins: bin name -> masks [N, H, W] (`genjax.data.masks.eval_masks`).
    reference: [N, H, W, 1] train digits for the FID (None: no FID or accuracy; these need
      1-channel digits).

  Returns:
    A flat dict '<bin>/<metric>' (see the module docstring), plus 'num_examples'.
  """
  truth = np.asarray(data['image'], np.float32)
  extractor = mnist5k_classifier() if reference is not None else None
  if extractor is not None:
    batch = min(500, len(truth))  # Small evaluations: no padding to 500.
    f_ref, _ = extractor(reference, batch)
    f_truth, p_truth = extractor(truth, batch)
    fid_floor = fid_lib.fid_from_features(f_ref, f_truth)
  out = {'num_examples': int(len(truth))}
  first = next(iter(bins.values()))
  fill_fn(truth[:2], first[:2])  # Compiles outside the timings.
  for name, masks in bins.items():
    masks = masks_lib.check_masks(masks, truth.shape, f'the masks of bin {name}')
    t0 = time.perf_counter()
    filled = np.asarray(fill_fn(truth, masks), np.float32)
    out[f'{name}/fill_s_per_image'] = (time.perf_counter() - t0) / len(truth)
    psnr_hole, l1_hole = hole_psnr_l1(truth, filled, masks)
    out[f'{name}/hole_ratio'] = float(masks_lib.hole_ratio(masks).mean())
    out[f'{name}/l1'] = float(np.mean(np.abs(filled - truth)) / 2)
    out[f'{name}/l1_hole'] = float(np.nanmean(l1_hole))
    out[f'{name}/psnr'] = float(np.mean(image_psnr(truth, filled)))
    out[f'{name}/psnr_hole'] = float(np.nanmean(psnr_hole))
    out[f'{name}/ssim'] = float(np.mean(np.asarray(
        image_quality.ssim((truth + 1) / 2, (filled + 1) / 2, data_range=1.0))))
    out[f'{name}/ssim_hole'] = float(np.nanmean(hole_ssim(truth, filled, masks)))
    if extractor is not None:
      f_fill, p_fill = extractor(filled, batch)
      out[f'{name}/fid'] = fid_lib.fid_from_features(f_ref, f_fill)
      out[f'{name}/fid_floor'] = fid_floor
      if 'label' in data:
        out[f'{name}/accuracy'] = label_accuracy(p_fill, data['label'])
        out[f'{name}/accuracy_floor'] = label_accuracy(p_truth, data['label'])
  return out


def picture_rows(truth: np.ndarray, masks: np.ndarray, fills: dict[str, np.ndarray]
                 ) -> np.ndarray:
  """Rows for a grid: input (holes mid-grey), mask (white = known), each fill, truth.

  Args:
    truth: [n, H, W, C] in [-1, 1]; masks: [n, H, W]; fills: name -> [n, H, W, C].

  Returns:
    [(3 + len(fills)) n, H, W, C] in [-1, 1], row by row (`save_grid(..., ncol=n)`).
  """
  m = masks[..., None]
  c = truth.shape[-1]
  shown_input = np.where(m > 0, truth, 0.0)
  shown_mask = np.repeat(m * 2 - 1, c, -1)
  return np.concatenate([shown_input, shown_mask, *fills.values(), truth]).astype(np.float32)
