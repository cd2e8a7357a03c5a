"""Captions of mnist5k: the attribute measures on hand-made images, tercile bins, the grammar
and the tokenizer round trips."""
import numpy as np
import pytest

from genjax.data import captions


def _canvas():
  return np.full((1, 28, 28), -1.0, np.float32)  # Background -1, ink +1 (the pipeline's range).


def test_stroke_width_is_the_width_of_a_drawn_bar():
  thin, thick = _canvas(), _canvas()
  thin[0, 4:24, 13:15] = 1.0  # 20 rows, 2 columns.
  thick[0, 4:24, 11:17] = 1.0  # 20 rows, 6 columns.
  w_thin, w_thick = captions.stroke_width(np.concatenate([thin, thick]))
  assert w_thin == pytest.approx(2.0, abs=0.3)
  assert w_thick == pytest.approx(6.0, rel=0.35)  # The skeleton of a bar is shorter than it.
  assert w_thick > 2 * w_thin


@pytest.mark.parametrize('shear', [0.5, -0.5, 0.0])
def test_slant_of_a_sheared_line_is_its_shear(shear):
  image = _canvas()
  for row in range(4, 24):  # Moving up one row moves the line `shear` pixels right.
    image[0, row, int(round(14 + shear * (14 - row)))] = 1.0
  assert captions.slant(image)[0] == pytest.approx(shear, abs=0.03)


def test_height_is_the_ink_box_height_and_uint8_reads_like_float():
  image = _canvas()
  image[0, 5:15, 10:20] = 1.0
  image[0, 20, 12] = -0.2  # 40% bright: not ink, but counts 0.4 of a row.
  assert captions.height(image)[0] == pytest.approx(10.4)
  as_uint8 = np.round((image + 1) * 127.5).astype(np.uint8)
  np.testing.assert_allclose(captions.measure(as_uint8), captions.measure(image), atol=0.02)


def test_terciles_split_every_class_into_thirds():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 300)
  measures = rng.normal(size=(900, 3)) + labels[:, None] * 10.0  # Classes far apart.
  b = captions.bins(measures, labels, captions.tercile_thresholds(measures, labels, 3))
  for k in range(3):
    for a in range(3):
      np.testing.assert_array_equal(np.bincount(b[labels == k, a], minlength=3), [100, 100, 100])


def test_every_caption_parses_back_to_what_it_was_drawn_from():
  rng = np.random.default_rng(1)
  forms = set()
  for _ in range(400):
    label, attribute_bins = int(rng.integers(10)), rng.integers(3, size=3)
    keep = tuple(bool(k) for k in rng.integers(2, size=3))
    text = captions.caption(label, attribute_bins, rng, keep)
    ids, unknown = captions.encode(text)
    assert not unknown, text
    want = {'digit': label, **{a: int(b) if k else None
                               for a, b, k in zip(captions.ATTRIBUTES, attribute_bins, keep)}}
    assert captions.parse(text) == want, text
    assert captions.parse(captions.decode(ids)) == want  # Through the tokenizer and back.
    forms.add(text.split()[0])
  assert len(forms) > 10  # Several templates, word orders and digit forms.


def test_user_prompts_in_any_order_and_case():
  for text in ('a thick seven leaning right', 'Leaning right, THICK 7', 'the digit 7, thick and '
               'leaning right', 'a 7 that is leaning right and thick'):
    assert captions.parse(text) == {'digit': 7, 'thickness': 2, 'slant': 2, 'size': None}


def test_tokenizer_names_unknown_words_once_and_refuses_prompts_of_unknown_words_only():
  ids, unknown = captions.tokenize(['a fat fat seven', 'a seven, bold'])
  assert unknown == ['fat', 'bold']
  assert captions.decode(ids[0]) == 'a seven'
  with pytest.raises(captions.PromptError, match=r"unknown: purple, elephant.*thick"):
    captions.tokenize(['purple elephant'])
  empty, unknown = captions.tokenize([''])  # The unconditional model.
  assert not unknown and empty[0, 0] == captions.BOS and not empty[0, 1:].any()
  with pytest.raises(captions.PromptError, match='at most 15'):
    captions.tokenize(['seven ' * 16])


def test_contrast_pairs_differ_in_one_attribute_only():
  for name in captions.ATTRIBUTES:
    low, high, digits = captions.contrast_pairs(name, 20)
    for lo, hi, d in zip(low, high, digits):
      p_lo, p_hi = captions.parse(lo), captions.parse(hi)
      assert (p_lo[name], p_hi[name]) == (0, 2) and p_lo['digit'] == p_hi['digit'] == d
      assert {k: v for k, v in p_lo.items() if k != name} == {k: v for k, v in p_hi.items()
                                                               if k != name}


def test_add_captions_bins_with_the_train_terciles():
  rng = np.random.default_rng(2)
  images = np.where(rng.random((30, 28, 28, 1)) < 0.2, 1.0, -1.0).astype(np.float32)
  labels = np.repeat(np.arange(3), 10).astype(np.int32)
  out = captions.add_captions({'image': images, 'label': labels}, {'image': images, 'label': labels})
  assert out['captions'].shape == (30, captions.NUM_CAPTIONS, captions.MAX_TOKENS)
  assert out['attributes'].shape == (30, 3) and out['measures'].shape == (30, 3)
  for i in range(30):
    parsed = captions.parse(captions.decode(out['captions'][i, 0]))
    assert parsed['digit'] == labels[i]
    for a, name in enumerate(captions.ATTRIBUTES):
      assert parsed[name] in (None, out['attributes'][i, a])
