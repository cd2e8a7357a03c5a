"""PSNR and SSIM between image pairs, as super-resolution papers report them.

Both match scikit-image to 1e-4 (tests check it):

    skimage.metrics.peak_signal_noise_ratio(ref, img, data_range=R)
    skimage.metrics.structural_similarity(ref, img, data_range=R, gaussian_weights=True,
        sigma=1.5, use_sample_covariance=False, channel_axis=-1)  # channel_axis=None for 2-D

i.e. Wang et al. (2004): an 11x11 Gaussian window (sigma 1.5, truncated at
3.5 sigma), K1=0.01, K2=0.03, population (co)variances, the mean over the
'valid' interior (skimage crops (11-1)/2 pixels each side after filtering)
and over channels. The SSIM is computed here rather than with `dm_pix.ssim`
(same window and formula) because float32 E[x^2] - E[x]^2 cancels on flat
bright regions (dm_pix is ~3e-5 off skimage there); centring each image on
its mean first keeps it ~1e-6. With `y_channel=True` and `crop_border`,
the numbers are those of ESRGAN/BasicSR's `calculate_psnr/ssim(...,
test_y_channel=True)`: the ITU-R BT.601 luma of RGB in [0, 1],

    Y = 16 + 65.481 R + 128.553 G + 24.966 B        (in [16, 235])

(skimage.color.rgb2ycbcr's first channel), compared with data_range 255.
BasicSR reads its images as BGR; here channels are RGB.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# ITU-R BT.601 luma weights for R, G, B in [0, 1], giving Y on the [0, 255] scale.
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03


def _gaussian_window() -> np.ndarray:
  # scipy.ndimage.gaussian_filter's kernel for sigma 1.5, truncate 3.5: radius int(3.5 * 1.5 + 0.5) = 5.
  offsets = np.arange(_SSIM_WINDOW) - _SSIM_WINDOW // 2
  window = np.exp(-0.5 * (offsets / _SSIM_SIGMA) ** 2)
  return window / window.sum()


def _filter_valid(x: jax.Array) -> jax.Array:
  """Separable Gaussian filter of [B, H, W, C], 'valid' part only: [B, H - 10, W - 10, C]."""
  window = _gaussian_window()
  h, w = x.shape[1] - _SSIM_WINDOW + 1, x.shape[2] - _SSIM_WINDOW + 1
  x = sum(float(wk) * x[:, k:k + h] for k, wk in enumerate(window))
  return sum(float(wk) * x[:, :, k:k + w] for k, wk in enumerate(window))


def rgb_to_y(images: jax.Array) -> jax.Array:
  """ITU-R BT.601 luma, as BasicSR and MATLAB's rgb2ycbcr compute it.

  Args:
    images: [..., H, W, 3] RGB in [0, 1].

  Returns:
    [..., H, W, 1] Y in [16, 235] (the [0, 255] scale).
  """
  if images.shape[-1] != 3:
    raise ValueError(f'rgb_to_y needs RGB images [..., H, W, 3]; got {images.shape}.')
  return 16.0 + jnp.tensordot(images, jnp.asarray(_Y_WEIGHTS, images.dtype), axes=1)[..., None]


def _prepare(a, b, data_range, y_channel, crop_border, min_size=1):
  """Checks shapes, crops borders, converts to Y; returns images in [0, 1] units, [B, H, W, C]."""
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  if a.shape != b.shape or a.ndim < 3:
    raise ValueError(f'Images must be [..., H, W, C] with equal shapes; got {a.shape} and {b.shape}.')
  if data_range <= 0:
    raise ValueError(f'data_range must be > 0 (max - min of the pixel range); got {data_range}.')
  if crop_border < 0:
    raise ValueError(f'crop_border must be >= 0; got {crop_border}.')
  batch_shape = a.shape[:-3]
  h, w, c = a.shape[-3:]
  if min(h, w) - 2 * crop_border < min_size:
    raise ValueError(f'Images of {h}x{w} with crop_border={crop_border} leave less than the '
                     f'{min_size}x{min_size} pixels this metric needs.')
  if crop_border:
    a = a[..., crop_border:h - crop_border, crop_border:w - crop_border, :]
    b = b[..., crop_border:h - crop_border, crop_border:w - crop_border, :]
  a, b = a / data_range, b / data_range  # [0, 1] units: float32 keeps its precision
  if y_channel:
    if c != 3:
      raise ValueError('y_channel=True needs RGB images (3 channels) in [0, data_range]; '
                       f'got {c} channels.')
    a, b = rgb_to_y(a) / 255.0, rgb_to_y(b) / 255.0
  return a.reshape((-1,) + a.shape[-3:]), b.reshape((-1,) + b.shape[-3:]), batch_shape


@functools.partial(jax.jit, static_argnames=('data_range', 'y_channel', 'crop_border'))
def psnr(a: jax.Array, b: jax.Array, *, data_range: float, y_channel: bool = False,
         crop_border: int = 0) -> jax.Array:
  """Peak signal-to-noise ratio 10 log10(R^2 / MSE) per image pair, in dB.

  Args:
    a: [..., H, W, C] reference images in [0, data_range] (any range if not y_channel).
    b: same shape, images to compare.
    data_range: R, max - min of the pixel range (1.0 for [0, 1], 2.0 for
      [-1, 1], 255.0 for 8-bit values). Required: a wrong range shifts PSNR.
    y_channel: compare the BT.601 luma (RGB only; pixels must be in [0, R]).
    crop_border: pixels dropped on each side first (the SR scale, by convention).

  Returns:
    [...] PSNR in dB (inf for identical images).
  """
  a, b, batch_shape = _prepare(a, b, data_range, y_channel, crop_border)
  mse = jnp.mean(jnp.square(a - b), axis=(1, 2, 3))
  return (-10.0 * jnp.log10(mse)).reshape(batch_shape)


@functools.partial(jax.jit, static_argnames=('data_range', 'y_channel', 'crop_border'))
def ssim(a: jax.Array, b: jax.Array, *, data_range: float, y_channel: bool = False,
         crop_border: int = 0) -> jax.Array:
  """Structural similarity (Wang et al. 2004) per image pair, averaged over channels.

  Args:
    a: [..., H, W, C] reference images; H, W >= 11 after cropping.
    b: same shape, images to compare.
    data_range: max - min of the pixel range (sets the constants C1, C2).
    y_channel: compare the BT.601 luma (RGB only; pixels must be in [0, R]).
    crop_border: pixels dropped on each side first.

  Returns:
    [...] SSIM in [-1, 1].
  """
  a, b, batch_shape = _prepare(a, b, data_range, y_channel, crop_border, min_size=_SSIM_WINDOW)
  # (Co)variances are shift invariant: centre on the pair's mean so float32 keeps their digits.
  centre = 0.5 * (jnp.mean(a, axis=(1, 2), keepdims=True) + jnp.mean(b, axis=(1, 2), keepdims=True))
  a, b = a - centre, b - centre
  mu_a, mu_b = _filter_valid(a), _filter_valid(b)
  var_a = _filter_valid(a * a) - mu_a * mu_a
  var_b = _filter_valid(b * b) - mu_b * mu_b
  cov = _filter_valid(a * b) - mu_a * mu_b
  mu_a, mu_b = mu_a + centre, mu_b + centre
  c1, c2 = _K1 ** 2, _K2 ** 2  # data range 1 after _prepare
  ssim_map = (((2 * mu_a * mu_b + c1) * (2 * cov + c2))
              / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
  return jnp.mean(ssim_map, axis=(1, 2, 3)).reshape(batch_shape)
