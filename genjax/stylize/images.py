"""Image files for `genjax stylize`: any PIL-readable file as RGB in [0, 1], PNG out."""
from __future__ import annotations

import os

import numpy as np


class ImageError(ValueError):
  """A file that cannot be used as an image (missing, unreadable, empty)."""


def read_rgb(path: str) -> np.ndarray:
  """Reads `path` (PNG, JPEG, ...; grayscale, palette, RGBA, 16-bit) as [H, W, 3] in [0, 1].

  Transparency is composited over white; grayscale is repeated to three channels.

  Raises:
    FileNotFoundError: no such file.
    ImageError: not an image PIL can read.
  """
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top

  if not os.path.isfile(path):
    raise FileNotFoundError(f'image file {path} does not exist.')
  try:
    with Image.open(path) as im:
      im.load()
      if im.mode in ('RGBA', 'LA', 'PA') or (im.mode == 'P' and 'transparency' in im.info):
        rgba = im.convert('RGBA')
        white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, rgba).convert('RGB')
      elif im.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
        arr = np.asarray(im, np.float64)
        arr = arr / max(arr.max(), 1.0)
        return np.repeat(arr[..., None], 3, -1).astype(np.float32)
      else:
        rgb = im.convert('RGB')
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise ImageError(f'{path} is not an image file PIL can read ({" ".join(str(e).split())}).'
                     ) from e
  arr = np.asarray(rgb, np.float32) / 255.0
  if arr.size == 0:
    raise ImageError(f'{path} is an empty image.')
  return arr


def write_png(path: str, image: np.ndarray) -> None:
  """Writes [H, W, 3] floats in [0, 1] as an 8-bit PNG (other extensions: PIL's format)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)).save(path)
