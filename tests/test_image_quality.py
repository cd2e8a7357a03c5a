"""PSNR and SSIM against scikit-image, including BasicSR's Y-channel / border-crop protocol."""
import numpy as np
import pytest
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from genjax.metrics import image_quality as iq


def _ssim_ref(a, b, data_range, channel_axis):
  """The Wang et al. setting of skimage that genjax matches."""
  return structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False, channel_axis=channel_axis)


def _pair(rng, shape, data_range, noise):
  a = rng.uniform(0, data_range, size=shape)
  # Smooth structure plus noise, so SSIM is far from 0 and 1.
  a = 0.5 * a + 0.5 * np.roll(a, 1, axis=0)
  b = np.clip(a + rng.normal(0, noise * data_range, size=shape), 0, data_range)
  return a, b


@pytest.mark.parametrize('data_range', [1.0, 255.0])
def test_grayscale_matches_skimage(data_range):
  rng = np.random.default_rng(0)
  a, b = _pair(rng, (48, 40), data_range, 0.1)
  got_psnr = iq.psnr(a[..., None], b[..., None], data_range=data_range)
  got_ssim = iq.ssim(a[..., None], b[..., None], data_range=data_range)
  np.testing.assert_allclose(got_psnr, peak_signal_noise_ratio(a, b, data_range=data_range), atol=1e-4)
  np.testing.assert_allclose(got_ssim, _ssim_ref(a, b, data_range, None), atol=1e-4)


@pytest.mark.parametrize('data_range', [1.0, 2.0, 255.0])
def test_rgb_batch_matches_skimage(data_range):
  rng = np.random.default_rng(1)
  pairs = [_pair(rng, (32, 36, 3), data_range, noise) for noise in (0.02, 0.1, 0.3)]
  a = np.stack([p[0] for p in pairs])
  b = np.stack([p[1] for p in pairs])
  if data_range == 2.0:  # images in [-1, 1]: only the range matters
    a, b = a - 1.0, b - 1.0
  got_psnr = iq.psnr(a, b, data_range=data_range)
  got_ssim = iq.ssim(a, b, data_range=data_range)
  assert got_psnr.shape == got_ssim.shape == (3,)
  for i in range(3):
    np.testing.assert_allclose(got_psnr[i], peak_signal_noise_ratio(a[i], b[i], data_range=data_range),
                               atol=1e-4)
    np.testing.assert_allclose(got_ssim[i], _ssim_ref(a[i], b[i], data_range, -1), atol=1e-4)


def test_y_channel_and_crop_border_match_basicsr_protocol():
  """BasicSR: crop `crop_border` pixels, take BT.601 Y in [16, 235], compare with range 255."""
  rng = np.random.default_rng(2)
  a, b = _pair(rng, (2, 40, 44, 3), 255.0, 0.05)
  a, b = np.round(a), np.round(b)  # 8-bit images, as SR benchmarks store them
  border = 4
  got_psnr = iq.psnr(a, b, data_range=255.0, y_channel=True, crop_border=border)
  got_ssim = iq.ssim(a, b, data_range=255.0, y_channel=True, crop_border=border)
  for i in range(2):
    crop = lambda img: img[i, border:-border, border:-border]
    ya, yb = rgb2ycbcr(crop(a) / 255.0)[..., 0], rgb2ycbcr(crop(b) / 255.0)[..., 0]
    np.testing.assert_allclose(got_psnr[i], peak_signal_noise_ratio(ya, yb, data_range=255), atol=1e-4)
    np.testing.assert_allclose(got_ssim[i], _ssim_ref(ya, yb, 255, None), atol=1e-4)


def test_rgb_to_y_endpoints():
  y = iq.rgb_to_y(np.array([[[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]]], np.float32))
  np.testing.assert_allclose(y[..., 0], [[[16.0, 235.0]]], atol=1e-4)


def test_identical_images():
  a = np.random.default_rng(3).uniform(size=(16, 16, 1))
  assert np.isinf(iq.psnr(a, a, data_range=1.0))
  np.testing.assert_allclose(iq.ssim(a, a, data_range=1.0), 1.0, atol=1e-6)


def test_bad_input_is_refused():
  a = np.zeros((16, 16, 3))
  with pytest.raises(ValueError, match='equal shapes'):
    iq.psnr(a, np.zeros((16, 16, 1)), data_range=1.0)
  with pytest.raises(ValueError, match='3 channels'):
    iq.psnr(a[..., :1], a[..., :1], data_range=1.0, y_channel=True)
  with pytest.raises(ValueError, match='11x11'):
    iq.ssim(a, a, data_range=1.0, crop_border=3)
  with pytest.raises(ValueError, match='data_range'):
    iq.psnr(a, a, data_range=0.0)


def test_ssim_on_nearly_flat_bright_images():
  """Float32 E[x^2] - E[x]^2 cancels here; centring keeps SSIM on skimage's value."""
  rng = np.random.default_rng(4)
  for level in (0.5, 0.95, 1.0):
    for noise in (1e-4, 1e-2):
      a = level + rng.normal(0, noise, size=(40, 40))
      b = level + rng.normal(0, noise, size=(40, 40))
      np.testing.assert_allclose(iq.ssim(a[..., None], b[..., None], data_range=1.0),
                                 _ssim_ref(a, b, 1.0, None), atol=1e-5)
