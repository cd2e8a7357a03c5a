"""Image grids written as PNG."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Float images in [-1, 1] -> uint8 in [0, 255] (same shape), rounding to nearest."""
  return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray, ncol: int | None = None, pad: int = 2) -> np.ndarray:
  """Tiles images [N, H, W, C] in [-1, 1] into one uint8 picture [rows*(H+pad)+pad, ..., C].

  Args:
    images: [N, H, W, C] with C in {1, 3}.
    ncol: images per row; default ceil(sqrt(N)).
    pad: pixels of grey between tiles.
  """
  images = to_uint8(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f'images must be [N, H, W, 1|3], got shape {images.shape}.')
  n, h, w, c = images.shape
  ncol = ncol or int(np.ceil(np.sqrt(n)))
  nrow = int(np.ceil(n / ncol))
  grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 128, np.uint8)
  for i in range(n):
    r, q = divmod(i, ncol)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = images[i]
  return grid


def save_grid(images: np.ndarray, path: str, ncol: int | None = None, scale: int = 2) -> str:
  """Writes `image_grid(images, ncol)` to `path` as PNG, enlarged `scale` times (nearest)."""
  grid = image_grid(images, ncol)
  pil = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if scale > 1:
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  pil.save(path)
  return path
