"""Inpainting masks (genjax/data/masks.py): ratios, fixed evaluation sets, the convention."""
import numpy as np
import pytest

from genjax.data import masks


@pytest.mark.parametrize('h,w', [(28, 28), (17, 40)])
@pytest.mark.parametrize('ratio', [0.0, 0.05, 0.3, 0.6, 1.0])
def test_free_form_hits_the_requested_hole_ratio(h, w, ratio):
  m = masks.free_form(np.random.default_rng(3), h, w, ratio)
  assert m.shape == (h, w) and set(np.unique(m)) <= {0.0, 1.0}
  assert int((m == 0).sum()) == round(ratio * h * w)


def test_free_form_masks_are_strokes_not_noise():
  # Strokes are connected runs: most hole pixels have a hole neighbour (iid noise at 0.2: ~60%).
  m = masks.free_form(np.random.default_rng(0), 64, 64, 0.2) == 0
  padded = np.pad(m, 1)
  neighbours = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
  assert (neighbours & m).sum() / m.sum() > 0.95


def test_random_rectangles_is_the_seeds_mask_at_256_and_scales():
  rng, ref_rng = np.random.default_rng(5), np.random.default_rng(5)
  got = masks.random_rectangles(rng, 256, 256, 0.5)
  want = np.ones((256, 256))
  for _ in range(5):  # The seed's create_random_mask, drawn in the same order.
    x, y = ref_rng.integers(0, 256), ref_rng.integers(0, 256)
    mw, mh = ref_rng.integers(10, 50), ref_rng.integers(10, 50)
    want[y:y + mh, x:x + mw] = 0
  np.testing.assert_array_equal(got, want)
  small = masks.random_rectangles(np.random.default_rng(1), 28, 28, 1.0)
  assert masks.hole_ratio(small) <= 10 * 6 * 6 / 28 ** 2  # Sides scaled to < 50 * 28 / 256.


def test_eval_masks_fall_in_their_bins_and_are_fixed():
  a = masks.eval_masks(7, 5, 28, 28)
  assert list(a) == ['0.01-0.1', '0.1-0.2', '0.2-0.3', '0.3-0.4', '0.4-0.5', '0.5-0.6']
  for (lo, hi), m in zip(masks.BINS, a.values()):
    r = masks.hole_ratio(m)
    assert m.shape == (5, 28, 28) and np.all(r >= lo - 1 / 784) and np.all(r <= hi + 1 / 784)
  b = masks.eval_masks(7, 3, 28, 28)  # The first masks do not depend on N.
  for k in a:
    np.testing.assert_array_equal(a[k][:3], b[k])
  assert not np.array_equal(masks.eval_masks(8, 3, 28, 28)['0.3-0.4'], b['0.3-0.4'])


def test_check_masks_refuses_wrong_sizes_and_values_naming_them():
  ok = masks.check_masks(np.ones((2, 28, 28, 1), np.uint8), (2, 28, 28, 1))
  assert ok.shape == (2, 28, 28) and ok.dtype == np.float32
  with pytest.raises(masks.MaskError, match=r'\(27, 28\).*28x28'):
    masks.check_masks(np.ones((27, 28)), (28, 28, 1), 'm')
  with pytest.raises(masks.MaskError, match=r'\(3, 28, 28\).*\(2, 28, 28\)'):
    masks.check_masks(np.ones((3, 28, 28)), (2, 28, 28, 1))
  with pytest.raises(masks.MaskError, match=r'values \[0.5, 255.0\] besides 0 and 1'):
    masks.check_masks(np.array([[0, 1], [0.5, 255]]), (2, 2, 3))


def test_mask_spec_parsing():
  assert masks.parse_mask_spec('random:0.3') == 0.3
  assert masks.parse_mask_spec('mask.png') is None
  for bad in ('random:x', 'random:1.5'):
    with pytest.raises(masks.MaskError, match='random:0.3'):
      masks.parse_mask_spec(bad)
