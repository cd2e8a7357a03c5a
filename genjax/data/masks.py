"""Inpainting masks: the seed's random rectangles, free-form strokes, fixed evaluation sets.

Convention everywhere in genjax: a mask is [H, W] (or [N, H, W]) of 0/1, **1 = known pixel**
(as in the seed's `create_random_mask`, whose holes are set to 0), 0 = hole to fill. The hole
ratio of a mask is the fraction of zeros. `check_masks` enforces the convention at every
entry point (method, sampler wrapper, command line) and names what was wrong.

  random_rectangles  the seed's `create_random_mask`: int(10 ratio) rectangles whose sides
                     (10..49 pixels at 256x256) are scaled to the image.
  free_form          random strokes of varying width (Liu et al. 2018; Yu et al. 2019)
                     painted until exactly round(ratio H W) pixels are holes.
  eval_masks         fixed free-form masks per hole-ratio bin (the partial-conv paper's
                     0.01-0.1, 0.1-0.2, ..., 0.5-0.6), mask i of bin b a pure function of
                     (seed, b, i): every method sees the same holes, whatever N.
"""
from __future__ import annotations

import numpy as np

# Liu et al. (2018), Table 1: hole-to-image area ratio bins.
BINS = ((0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6))


class MaskError(ValueError):
  """A mask that breaks the convention: wrong shape, or values other than 0 and 1."""


def bin_name(low: float, high: float) -> str:
  """'0.01-0.1' for the bin (0.01, 0.1)."""
  return f'{low:g}-{high:g}'


def check_masks(masks, image_shape: tuple[int, ...], what: str = 'mask') -> np.ndarray:
  """Checks masks against images and returns them as float32 0/1.

  Args:
    masks: [H, W] or [N, H, W] (a trailing channel axis of 1 is accepted), 1 = known pixel.
    image_shape: the images' shape, [H, W, C] or [N, H, W, C] (the batch size is checked
      when both have one).
    what: how the error names the masks (e.g. '--mask').

  Returns:
    float32 masks of shape [H, W] or [N, H, W].

  Raises:
    MaskError: a size that does not match the images, or values other than 0 and 1.
  """
  m = np.asarray(masks)
  if m.ndim >= 3 and m.shape[-1] == 1 and m.ndim == len(image_shape):
    m = m[..., 0]
  spatial = tuple(image_shape[-3:-1])
  want = (tuple(image_shape[:1]) if len(image_shape) == 4 else ()) + spatial
  if m.shape[-2:] != spatial or m.ndim not in (2, 3) or (m.ndim == 3 and len(want) == 3
                                                         and m.shape[0] != want[0]):
    raise MaskError(f'{what} has shape {m.shape}; the images need {want} (H x W = '
                    f'{spatial[0]}x{spatial[1]}, 1 = known pixel, 0 = hole).')
  values = np.unique(m)
  bad = values[(values != 0) & (values != 1)]
  if bad.size:
    raise MaskError(f'{what} holds values {bad[:5].tolist()} besides 0 and 1; a mask is 0/1 '
                    '(1 = known pixel, 0 = hole).')
  return m.astype(np.float32)


def hole_ratio(masks) -> np.ndarray:
  """Fraction of hole pixels (zeros) of masks [..., H, W]: [...]."""
  return 1.0 - np.asarray(masks, np.float32).mean(axis=(-2, -1))


def _check_ratio(ratio: float) -> None:
  if not 0.0 <= ratio <= 1.0:
    raise MaskError(f'hole ratio {ratio!r} must be in [0, 1].')


def random_rectangles(rng: np.random.Generator, h: int, w: int, mask_ratio: float = 0.5
                      ) -> np.ndarray:
  """The seed's `create_random_mask`, its rectangle sizes scaled from 256 pixels to (h, w).

  int(10 mask_ratio) rectangles with top-left corners uniform over the image and sides
  uniform in [10, 50) * side / 256 (at least 1 pixel); `mask_ratio` sets their number, not
  the hole ratio (the seed's semantics).

  Returns:
    [h, w] float32, 1 = known.
  """
  _check_ratio(mask_ratio)
  mask = np.ones((h, w), np.float32)
  for _ in range(int(10 * mask_ratio)):
    x, y = rng.integers(0, w), rng.integers(0, h)
    mw = max(1, int(round(rng.integers(10, 50) * w / 256)))
    mh = max(1, int(round(rng.integers(10, 50) * h / 256)))
    mask[y:y + mh, x:x + mw] = 0
  return mask


def _segment(h: int, w: int, p0, p1, width: int) -> np.ndarray:
  """Flat indices of a segment p0 -> p1 ((x, y) points) of `width` pixels with round caps,
  ordered by distance from p0 (so a stroke cut short ends where its pen stopped)."""
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top

  canvas = Image.new('L', (w, h), 0)
  draw = ImageDraw.Draw(canvas)
  draw.line([p0, p1], fill=1, width=width)
  r = width / 2
  for x, y in (p0, p1):
    draw.ellipse([x - r, y - r, x + r, y + r], fill=1)
  flat = np.flatnonzero(np.asarray(canvas).reshape(-1))
  d2 = (flat // w - p0[1]) ** 2 + (flat % w - p0[0]) ** 2
  return flat[np.argsort(d2, kind='stable')]


def free_form(rng: np.random.Generator, h: int, w: int, hole_ratio: float) -> np.ndarray:
  """A free-form mask of random strokes with exactly round(hole_ratio h w) hole pixels.

  Strokes as in Yu et al. (2019, Algorithm 1): a start point, then 4-12 vertices joined
  by segments of random angle and length (1/10 to 1/3 of the side), each stroke with its
  own width (1/40 to 1/10 of the side, at least 1 pixel); a stroke bounces off the
  borders. Painting stops at the pixel that reaches the target, so the ratio is exact.

  Returns:
    [h, w] float32, 1 = known.
  """
  _check_ratio(hole_ratio)
  target = int(round(hole_ratio * h * w))
  hole = np.zeros(h * w, bool)
  count, side = 0, min(h, w)
  while count < target:
    width = max(1, int(round(rng.uniform(side / 40, side / 10))))
    x, y = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
    angle = rng.uniform(0, 2 * np.pi)
    for _ in range(rng.integers(4, 13)):
      angle += rng.uniform(-np.pi / 2, np.pi / 2)
      length = rng.uniform(side / 10, side / 3)
      nx, ny = x + np.cos(angle) * length, y + np.sin(angle) * length
      if not 0 <= nx <= w - 1:  # Bounce: mirror the end point and the direction.
        nx, angle = float(np.clip(2 * np.clip(nx, 0, w - 1) - nx, 0, w - 1)), np.pi - angle
      if not 0 <= ny <= h - 1:
        ny, angle = float(np.clip(2 * np.clip(ny, 0, h - 1) - ny, 0, h - 1)), -angle
      new = _segment(h, w, (x, y), (nx, ny), width)
      new = new[~hole[new]][:target - count]
      hole[new] = True
      count += len(new)
      x, y = nx, ny
      if count >= target:
        break
  return (~hole).reshape(h, w).astype(np.float32)


def masks_in_range(seed, n: int, h: int, w: int, low: float, high: float,
                   kind: str = 'free_form') -> np.ndarray:
  """n masks, mask i from default_rng([*seed, i]) with a hole ratio uniform in [low, high).

  Args:
    seed: an int or a tuple of ints (the rng's entropy before the index).
    kind: 'free_form' (the hole ratio is met exactly) or 'rectangles' (the seed's
      rectangles, whose count is set by the drawn ratio).

  Returns:
    [n, h, w] float32, 1 = known.
  """
  if kind not in ('free_form', 'rectangles'):
    raise MaskError(f"mask kind {kind!r} unknown; accepted: 'free_form', 'rectangles'.")
  seed = tuple(np.atleast_1d(seed).tolist())
  out = np.empty((n, h, w), np.float32)
  for i in range(n):
    rng = np.random.default_rng((*seed, i))
    ratio = rng.uniform(low, high)
    out[i] = (free_form(rng, h, w, ratio) if kind == 'free_form'
              else random_rectangles(rng, h, w, ratio))
  return out


def eval_masks(seed: int, n: int, h: int, w: int, bins=BINS) -> dict[str, np.ndarray]:
  """The fixed evaluation masks: bin name -> [n, h, w] free-form masks in that bin.

  Mask i of bin b comes from default_rng((seed, b, i)) alone, so the first n masks are
  the same for any larger n, and every method is scored on the same holes.
  """
  return {bin_name(lo, hi): masks_in_range((seed, b), n, h, w, lo, hi)
          for b, (lo, hi) in enumerate(bins)}


def parse_mask_spec(spec: str) -> float | None:
  """'random:0.3' -> 0.3 (a free-form mask of that hole ratio to draw); a path -> None.

  Raises:
    MaskError: 'random:' followed by anything but a ratio in [0, 1].
  """
  if not spec.startswith('random:'):
    return None
  try:
    ratio = float(spec.split(':', 1)[1])
  except ValueError as e:
    raise MaskError(f"--mask={spec!r}: 'random:' takes a hole ratio in [0, 1], e.g. "
                    "'random:0.3'.") from e
  if not 0.0 <= ratio <= 1.0:
    raise MaskError(f"--mask={spec!r}: the hole ratio must be in [0, 1], e.g. 'random:0.3'.")
  return ratio
