"""Latent-space pictures: reconstructions, 2-D latent grid, interpolations, traversals."""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import norm

from genjax.viz.grid import save_grid

Decode = Callable[[np.ndarray], np.ndarray]  # z [n, Z] -> images [n, H, W, C] in [-1, 1].


def save_pairs(originals: np.ndarray, reconstructions: np.ndarray, path: str) -> str:
  """Originals (odd columns) beside their reconstructions (even columns), [N, H, W, C] each."""
  pairs = np.stack([originals, reconstructions], 1).reshape(-1, *originals.shape[1:])
  return save_grid(pairs, path, ncol=8)


def save_rows(images: np.ndarray, ncol: int, path: str) -> str:
  """Images [rows * ncol, H, W, C] laid out row by row."""
  return save_grid(images, path, ncol=ncol)


def latent_grid(decode: Decode, path: str, n: int = 20) -> str:
  """The seed's 2-D latent map: decodes an n x n grid of Gaussian quantiles in (0.05, 0.95).

  Quantiles rather than a uniform [-2, 2] grid spread the grid over the prior's mass
  (Kingma & Welling 2014, fig. 4).
  """
  q = norm.ppf(np.linspace(0.05, 0.95, n))
  zx, zy = np.meshgrid(q, q[::-1])
  z = np.stack([zx.ravel(), zy.ravel()], -1).astype(np.float32)
  return save_grid(decode(z), path, ncol=n, scale=1)


def slerp(za: np.ndarray, zb: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Spherical interpolation [T, Z] between za and zb [Z] at t [T] in [0, 1] (Shoemake 1985)."""
  cos = np.dot(za, zb) / (np.linalg.norm(za) * np.linalg.norm(zb) + 1e-12)
  omega = np.arccos(np.clip(cos, -1.0, 1.0))
  if omega < 1e-6:
    return (1 - t)[:, None] * za + t[:, None] * zb
  return (np.sin((1 - t) * omega)[:, None] * za + np.sin(t * omega)[:, None] * zb) / np.sin(omega)


def interpolation(decode: Decode, za: np.ndarray, zb: np.ndarray, path: str, steps: int = 10) -> str:
  """Two rows between two codes [Z]: linear (top) and spherical (bottom) interpolation."""
  t = np.linspace(0.0, 1.0, steps)
  linear = (1 - t)[:, None] * za + t[:, None] * zb
  z = np.concatenate([linear, slerp(za, zb, t)]).astype(np.float32)
  return save_grid(decode(z), path, ncol=steps)


def traversal(decode: Decode, z0: np.ndarray, kl_per_dim: np.ndarray, path: str,
              max_rows: int = 10, span: float = 3.0, steps: int = 11) -> str:
  """One row per latent dimension (most informative first, by average KL): z0 with that
  dimension swept over [-span, span] (Higgins et al. 2017)."""
  dims = np.argsort(kl_per_dim)[::-1][:max_rows]
  values = np.linspace(-span, span, steps)
  z = np.repeat(z0[None], len(dims) * steps, 0).reshape(len(dims), steps, -1)
  for row, d in enumerate(dims):
    z[row, :, d] = values
  return save_grid(decode(z.reshape(-1, z0.shape[-1]).astype(np.float32)), path, ncol=steps)
