"""Captions of mnist5k digits that say something checkable, and their word-level tokenizer.

Each digit is described by its label and by three attributes measured on the image itself:

  stroke width  ink area / skeleton length (skimage.morphology.skeletonize), in pixels
  slant         -mu11 / mu02 of the ink's second moments: horizontal shift per pixel upwards
                (> 0: the top leans right)
  height        the ink's (soft) bounding-box height, in pixels

Each attribute is binned into terciles within the digit's class (thresholds from the train
split), so every class has as many thin as thick digits: thin / medium / thick, leaning left /
upright / leaning right, small / medium-sized / large.

The grammar (users write prompts in it, in any order; README of experiments/latent_diffusion):

  digit       zero .. nine, or 0 .. 9
  thickness   thin | medium | thick
  slant       leaning left | upright | leaning right
  size        small | medium-sized | large
  fillers     a, an, the, digit, number, that, is, and, with, written, stroke (carry no meaning)

Captions are drawn from four templates ("a thick seven leaning right", "the digit 3, thin
and upright", "a 5 that is small", "small 5"), each attribute kept with probability
`KEEP_PROB`; commas are separators, case is ignored. The data set `mnist5k_captions` is
mnist5k with `attributes`, `measures` and `captions` fields added by `add_captions`
(genjax.data.pipeline.VIEWS), on the same train/test split.
"""
from __future__ import annotations

import re

import numpy as np
from skimage.morphology import skeletonize

from genjax.data.sources import DataError

DIGIT_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')
ATTRIBUTES = ('thickness', 'slant', 'size')
# attribute -> phrase of each tercile (low, middle, high).
PHRASES = {
    'thickness': ('thin', 'medium', 'thick'),
    'slant': ('leaning left', 'upright', 'leaning right'),
    'size': ('small', 'medium-sized', 'large'),
}
FILLERS = ('a', 'an', 'the', 'digit', 'number', 'that', 'is', 'and', 'with', 'written', 'stroke')
PAD, BOS = 0, 1  # Every encoded prompt starts with BOS, so the empty prompt is [BOS, PAD, ...].
VOCAB = (('<pad>', '<bos>') + DIGIT_WORDS + tuple(str(d) for d in range(10)) + FILLERS +
         ('thin', 'medium', 'thick', 'leaning', 'left', 'right', 'upright', 'small',
          'medium-sized', 'large'))
WORD_IDS = {w: i for i, w in enumerate(VOCAB)}
MAX_TOKENS = 16  # BOS + at most 15 words.
NUM_CAPTIONS = 8  # Captions drawn per example; training picks one of them per step.
KEEP_PROB = 0.7  # Each attribute's chance to be named in a caption.


class PromptError(DataError):
  """A prompt the vocabulary cannot express (only unknown words, or too long)."""


# -- Measuring the attributes. --


def _ink(images: np.ndarray) -> np.ndarray:
  """[N, H, W(, 1)] images (uint8 0..255 or float in [-1, 1]) -> bool ink masks [N, H, W]."""
  x = np.asarray(images)
  if x.ndim == 4:
    x = x[..., 0]
  return x > (127 if x.dtype == np.uint8 else 0.0)


def stroke_width(images: np.ndarray) -> np.ndarray:
  """Mean stroke width [N]: ink area / skeleton length, in pixels (0 for a blank image).

  Args:
    images: [N, H, W] or [N, H, W, 1], uint8 or float in [-1, 1] (ink is bright).
  """
  ink = _ink(images)
  length = np.array([skeletonize(m).sum() for m in ink], np.float32)
  return ink.sum(axis=(1, 2)).astype(np.float32) / np.maximum(length, 1.0)


def slant(images: np.ndarray) -> np.ndarray:
  """Slant [N] from the ink's second moments: -mu11 / mu02, dx per pixel upwards.

  > 0 when the top of the digit lies to the right of its bottom. Rows grow downwards, so a
  stroke leaning right has negative covariance of (column, row).

  Args:
    images: as in `stroke_width`; the ink's intensity weights the moments.
  """
  x = np.asarray(images, np.float32)
  if x.ndim == 4:
    x = x[..., 0]
  w = x / 255.0 if np.asarray(images).dtype == np.uint8 else (x + 1.0) / 2.0
  w = np.clip(w, 0.0, 1.0)
  rows, cols = np.mgrid[:w.shape[1], :w.shape[2]].astype(np.float32)
  mass = np.maximum(w.sum(axis=(1, 2)), 1e-6)
  cy = (w * rows).sum(axis=(1, 2)) / mass
  cx = (w * cols).sum(axis=(1, 2)) / mass
  dy, dx = rows[None] - cy[:, None, None], cols[None] - cx[:, None, None]
  mu11 = (w * dx * dy).sum(axis=(1, 2)) / mass
  mu02 = (w * dy * dy).sum(axis=(1, 2)) / mass
  return -mu11 / np.maximum(mu02, 1e-6)


def height(images: np.ndarray) -> np.ndarray:
  """Soft bounding-box height [N] of the ink, in pixels: each row counts its brightest pixel.

  For binary ink this is the number of inked rows (the box's height when no row inside is
  blank); anti-aliased edges count in part. MNIST digits were scaled to fit 20 pixels, so a
  hard count ties most of them at 20 and could not be binned into terciles.
  """
  x = np.asarray(images, np.float32)
  if x.ndim == 4:
    x = x[..., 0]
  w = x / 255.0 if np.asarray(images).dtype == np.uint8 else (x + 1.0) / 2.0
  return np.clip(w, 0.0, 1.0).max(axis=2).sum(axis=1)


def measure(images: np.ndarray) -> np.ndarray:
  """[N, 3] float32: stroke width, slant, height (the order of ATTRIBUTES)."""
  return np.stack([stroke_width(images), slant(images), height(images)], axis=1)


def tercile_thresholds(measures: np.ndarray, labels: np.ndarray,
                       num_classes: int = 10) -> np.ndarray:
  """[K, 3, 2]: each class's 1/3 and 2/3 quantiles of each attribute (from measures [N, 3])."""
  out = np.zeros((num_classes, measures.shape[1], 2), np.float32)
  for k in range(num_classes):
    rows = measures[labels == k]
    if len(rows):
      out[k] = np.quantile(rows, [1 / 3, 2 / 3], axis=0).T
  return out


def bins(measures: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
  """[N, 3] int32 in {0, 1, 2}: the tercile of each attribute within the example's class."""
  t = thresholds[labels]  # [N, 3, 2]
  return ((measures > t[..., 0]).astype(np.int32) + (measures > t[..., 1])).astype(np.int32)


# -- The grammar. --


def _join(parts: list[str]) -> str:
  """'a', 'a and b', 'a, b and c'."""
  if len(parts) <= 1:
    return ''.join(parts)
  return ', '.join(parts[:-1]) + ' and ' + parts[-1]


def caption(label: int, attribute_bins, rng: np.random.Generator,
            keep: tuple[bool, bool, bool] | None = None) -> str:
  """One caption of a digit: a random template, word order and digit form.

  Args:
    label: the digit.
    attribute_bins: [3] terciles (thickness, slant, size).
    rng: numpy generator.
    keep: which attributes to name; None draws each with probability KEEP_PROB.
  """
  keep = tuple(rng.random(3) < KEEP_PROB) if keep is None else keep
  digit = DIGIT_WORDS[label] if rng.random() < 0.5 else str(label)
  named = {a: PHRASES[a][int(b)] for a, b, k in zip(ATTRIBUTES, attribute_bins, keep) if k}
  phrases = list(named.values())
  rng.shuffle(phrases)
  template = rng.integers(4)
  if template == 0:  # "a thick small seven leaning right": adjectives before, slant after.
    adjectives = [named[a] for a in ('thickness', 'size') if a in named]
    rng.shuffle(adjectives)
    article = ('a', 'the', '')[rng.integers(3)]
    words = [article] + adjectives + [digit] + ([named['slant']] if 'slant' in named else [])
    return ' '.join(w for w in words if w)
  if template == 1:  # "the digit 3, thin and upright"
    head = f'the {("digit", "number")[rng.integers(2)]} {digit}'
    return f'{head}, {_join(phrases)}' if phrases else head
  if template == 2:  # "a 5 that is small and leaning left"
    return f'a {digit} that is {_join(phrases)}' if phrases else f'a {digit}'
  return ' '.join(phrases + [digit])  # "small thick 5"


def parse(text: str) -> dict:
  """What a prompt asks for: {'digit', 'thickness', 'slant', 'size'}, each an int or None.

  The first digit named counts; attributes take their tercile index (0, 1, 2).
  """
  words = split_words(text)
  out = dict.fromkeys(('digit',) + ATTRIBUTES)
  for i, w in enumerate(words):
    if out['digit'] is None and (w in DIGIT_WORDS or (len(w) == 1 and w.isdigit())):
      out['digit'] = DIGIT_WORDS.index(w) if w in DIGIT_WORDS else int(w)
    elif w in PHRASES['thickness']:
      out['thickness'] = PHRASES['thickness'].index(w)
    elif w in PHRASES['size']:
      out['size'] = PHRASES['size'].index(w)
    elif w == 'upright':
      out['slant'] = 1
    elif w in ('left', 'right') and (i == 0 or words[i - 1] == 'leaning' or out['slant'] is None):
      out['slant'] = 0 if w == 'left' else 2
  return out


# -- Tokenizer. --


def split_words(text: str) -> list[str]:
  """Lower-cased words; commas, periods and other punctuation (but hyphens) separate."""
  return [w for w in re.split(r"[^\w\-]+", text.lower()) if w]


def encode(text: str, max_tokens: int = MAX_TOKENS) -> tuple[np.ndarray, list[str]]:
  """Token ids [max_tokens] (BOS, the known words, PAD...) and the unknown words, in order.

  Raises:
    PromptError: more than max_tokens - 1 known words.
  """
  words = split_words(text)
  known = [w for w in words if WORD_IDS.get(w, PAD) not in (PAD, BOS)]
  unknown = list(dict.fromkeys(w for w in words if w not in known))  # Each once, in order.
  ids = [BOS] + [WORD_IDS[w] for w in known]
  if len(ids) > max_tokens:
    raise PromptError(f'The prompt {text!r} has {len(ids) - 1} words; at most {max_tokens - 1} '
                      'are accepted.')
  return np.asarray(ids + [PAD] * (max_tokens - len(ids)), np.int32), unknown


def tokenize(texts, max_tokens: int = MAX_TOKENS) -> tuple[np.ndarray, list[str]]:
  """Token ids [N, max_tokens] of N prompts, and the unknown words among them (each once).

  An empty prompt is [BOS, PAD, ...]: the unconditional model. Unknown words are not
  silently dropped: they are returned, for the caller to name.

  Raises:
    PromptError: a prompt made only of unknown words (naming them and the vocabulary), or
      one too long.
  """
  rows, unknown = [], []
  for text in texts:
    ids, bad = encode(text, max_tokens)
    if bad and (ids != PAD).sum() == 1:
      raise PromptError(f'The prompt {text!r} has no word of the vocabulary (unknown: '
                        f'{", ".join(bad)}); the words are: {" ".join(VOCAB[2:])}.')
    rows.append(ids)
    unknown += [w for w in bad if w not in unknown]
  return np.stack(rows) if rows else np.zeros((0, max_tokens), np.int32), unknown


def decode(ids) -> str:
  """Token ids [T] -> the words, space-separated (BOS and PAD left out)."""
  return ' '.join(VOCAB[i] for i in np.asarray(ids).tolist() if i not in (PAD, BOS))


# -- The captioned view of a data set. --


def captions_of(labels: np.ndarray, attribute_bins: np.ndarray, seed: int = 0,
                num_captions: int = NUM_CAPTIONS) -> np.ndarray:
  """[N, num_captions, MAX_TOKENS] token ids of captions drawn in order from `seed`."""
  rng = np.random.default_rng(seed)
  texts = [caption(int(label), b, rng) for label, b in zip(labels, attribute_bins)
           for _ in range(num_captions)]
  return tokenize(texts)[0].reshape(len(labels), num_captions, MAX_TOKENS)


def add_captions(arrays: dict, train: dict, seed: int = 0) -> dict:
  """A split's arrays with its captions: the pipeline stage of `mnist5k_captions`.

  Args:
    arrays: {'image': [N, H, W, C] in [-1, 1], 'label': [N]} of the split.
    train: the same for the train split (its terciles bin every split).
    seed: caption draws.

  Returns:
    arrays plus 'measures' float32 [N, 3], 'attributes' int32 [N, 3] (terciles) and
    'captions' int32 [N, NUM_CAPTIONS, MAX_TOKENS].
  """
  thresholds = tercile_thresholds(measure(train['image']), train['label'])
  measures = measure(arrays['image'])
  attribute_bins = bins(measures, arrays['label'], thresholds)
  return {**arrays, 'measures': measures, 'attributes': attribute_bins,
          'captions': captions_of(arrays['label'], attribute_bins, seed)}


def contrast_pairs(attribute: str, n: int, seed: int = 0) -> tuple[list[str], list[str], np.ndarray]:
  """n prompt pairs that differ only in `attribute`: its low vs high tercile (thin vs thick,
  leaning left vs right, small vs large), the same digit, template and word order.

  Returns:
    (low prompts [n], high prompts [n], digits [n]); pair i names digit i % 10.
  """
  a = ATTRIBUTES.index(attribute)
  keep = tuple(i == a for i in range(3))
  low, high = [], []
  for i in range(n):
    for level, out in ((0, low), (2, high)):
      attribute_bins = np.ones(3, np.int32)
      attribute_bins[a] = level
      out.append(caption(i % 10, attribute_bins, np.random.default_rng([seed, i]), keep))
  return low, high, np.arange(n) % 10


def read_prompts(path: str) -> list[str]:
  """The prompts of a text file, one a line (blank lines left out).

  Raises:
    FileNotFoundError: no such file. PromptError: no prompt in it.
  """
  with open(path) as f:
    prompts = [line.strip() for line in f if line.strip()]
  if not prompts:
    raise PromptError(f'{path} holds no prompt (one a line).')
  return prompts


def prompt_batch(prompts: list[str], n: int, log=print) -> tuple[np.ndarray, np.ndarray]:
  """Token ids [n, MAX_TOKENS] and the prompts [n] (`prompts` repeated cyclically); the
  unknown words are named once through `log`.

  Raises:
    PromptError: a prompt with no known word, or too long.
  """
  ids, unknown = tokenize(prompts)
  if unknown:
    log(f'genjax: unknown words left out of the prompt: {", ".join(unknown)} '
        f'(vocabulary: {" ".join(VOCAB[2:])}).')
  pick = np.arange(n) % len(prompts)
  return ids[pick], np.asarray(prompts, dtype=str)[pick]
