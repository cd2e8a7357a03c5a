"""Scoring inpainting per hole-ratio bin (genjax.methods.inpaint_eval) against closed forms."""
import numpy as np
import pytest

from genjax.methods import inpaint_eval

CAP_DB = 10 * np.log10(12 * 255**2)  # 58.88 dB: an MSE at 8-bit quantization noise.


def _images():
  """Four 12x12 grey images in [-1, 1] (SSIM needs 11x11) and masks (1 = known) with 0, 12, 24 and 144 hole pixels."""
  truth = np.linspace(-1, 1, 4 * 144).reshape(4, 12, 12, 1)
  masks = np.ones((4, 12, 12))
  masks[1, :1] = 0
  masks[2, :2] = 0
  masks[3] = 0
  return truth, masks


def test_hole_psnr_and_l1_follow_the_closed_form_and_ignore_known_pixels():
  truth, masks = _images()
  # An error of 0.2 on [-1, 1] (0.1 on [0, 1]) in the hole: MSE 0.01 -> 20 dB, L1 0.1; the
  # known pixels are off by 1.0, which hole metrics must not see.
  filled = truth + np.where(masks[..., None] == 0, 0.2, 1.0)
  psnr, l1 = inpaint_eval.hole_psnr_l1(truth, filled, masks)
  assert np.isnan(psnr[0]) and np.isnan(l1[0])  # No hole: no hole score.
  np.testing.assert_allclose(psnr[1:], 20.0, rtol=1e-9)
  np.testing.assert_allclose(l1[1:], 0.1, rtol=1e-9)


def test_a_perfect_fill_counts_at_the_quantization_cap_instead_of_inf():
  truth, masks = _images()
  psnr, _ = inpaint_eval.hole_psnr_l1(truth, truth.copy(), masks)
  np.testing.assert_allclose(psnr[1:], CAP_DB, rtol=1e-12)
  np.testing.assert_allclose(inpaint_eval.image_psnr(truth, truth.copy()), CAP_DB, rtol=1e-12)
  # Whole-image PSNR: an error of 0.2 everywhere is 20 dB.
  np.testing.assert_allclose(inpaint_eval.image_psnr(truth, truth + 0.2), 20.0, rtol=1e-9)


def test_score_bins_averages_perfect_and_imperfect_fills_as_finite_numbers():
  truth, masks = _images()
  # Image 1's hole filled exactly, image 2's off by 0.2, image 3's off by 0.2: the mean hole
  # PSNR over the three images with holes is (58.88 + 20 + 20) / 3; image 0 has no hole.
  def fill(x, m):
    out = np.array(x, np.float64)
    out[2:] += np.where(m[2:, ..., None] == 0, 0.2, 0.0)
    return out
  result = inpaint_eval.score_bins(fill, {'image': truth}, {'b': masks})
  assert result['num_examples'] == 4
  assert result['b/psnr_hole'] == pytest.approx((CAP_DB + 40.0) / 3, rel=1e-6)
  assert result['b/l1_hole'] == pytest.approx((0.0 + 0.1 + 0.1) / 3, rel=1e-6)
  whole_mse = np.array([0, 0, 24, 144]) / 144 * 0.01
  assert result['b/psnr'] == pytest.approx(
      np.mean(-10 * np.log10(np.maximum(whole_mse, 1 / (12 * 255**2)))), rel=1e-6)
