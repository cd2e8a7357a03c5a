"""GAN pictures: latent interpolation paths, row layouts and the style-mixing grid."""
from __future__ import annotations

import numpy as np

from genjax.viz.grid import save_grid
from genjax.viz.latent import slerp


def slerp_path(za: np.ndarray, zb: np.ndarray, steps: int) -> np.ndarray:
  """Spherical interpolation rows: za, zb [R, Z] -> [R * steps, Z], row r from za[r] to zb[r].

  Slerp keeps Gaussian latents at the typical radius along the path (White 2016).
  """
  t = np.linspace(0.0, 1.0, steps)
  return np.concatenate([slerp(a, b, t) for a, b in zip(za, zb)]).astype(np.float32)


def save_rows(images, ncol: int, path: str) -> str:
  """Images [rows * ncol, H, W, C] in [-1, 1] laid out row by row; returns `path`."""
  return save_grid(np.asarray(images), path, ncol=ncol)


def save_mixing_grid(sources_a, sources_b, mixed, path: str) -> str:
  """The style-mixing table of StyleGAN fig. 3.

  Top row: the B sources (after a blank corner); left column: the A sources;
  cell (i, j): mixed[i, j].

  Args:
    sources_a: [nA, H, W, C] in [-1, 1].
    sources_b: [nB, H, W, C].
    mixed: [nA, nB, H, W, C].
    path: PNG to write.

  Returns:
    `path`.
  """
  a, b, m = (np.asarray(x) for x in (sources_a, sources_b, mixed))
  blank = np.zeros_like(a[:1])  # Mid grey in [-1, 1]: the corner is visibly not a sample.
  top = np.concatenate([blank, b])
  rows = [np.concatenate([a[i:i + 1], m[i]]) for i in range(len(a))]
  return save_grid(np.concatenate([top] + rows), path, ncol=len(b) + 1)
