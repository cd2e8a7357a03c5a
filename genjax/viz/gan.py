"""GAN pictures: latent interpolations, the truncation sweep and the style-mixing grids.

The method hands in its generator as callables (`from_z`, `from_ws`) bound to
the parameters to picture, and the latents (and StyleGAN's noise) to draw
from; this module lays the pictures out and writes them.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genjax.models import stylegan
from genjax.viz.grid import save_grid
from genjax.viz.latent import slerp

# z [n, Z], labels [n] or None, noise (StyleGAN: per layer [n, r, r, 1]) -> images [n, H, W, C].
FromZ = Callable[[np.ndarray, jax.Array | None, list], jax.Array]
# ws [n, num_ws, W], noise -> images [n, H, W, C] in [-1, 1] (StyleGAN's synthesis network).
FromWs = Callable[[jax.Array, list], jax.Array]


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


def save_z_interpolation(from_z: FromZ, za, zb, row_labels: np.ndarray | None,
                         noise: list, steps: int, path: str) -> str:
  """Rows of `steps` images along the slerp from za[r] to zb[r] ([R, Z] each).

  Args:
    from_z: the generator (see `FromZ`).
    za, zb: [R, Z] the ends of each row.
    row_labels: [R] the label of each row, or None.
    noise: StyleGAN's noise for the R * steps images (held along each row), or [].
    steps: images per row.
    path: PNG to write.
  """
  labels = None if row_labels is None else jnp.asarray(np.repeat(row_labels, steps))
  z_path = slerp_path(np.asarray(za), np.asarray(zb), steps)
  return save_rows(from_z(z_path, labels, noise), steps, path)


def save_w_interpolation(from_ws: FromWs, wa: jax.Array, wb: jax.Array, noise: list,
                         num_ws: int, steps: int, path: str) -> str:
  """Rows of `steps` images along the line from wa[r] to wb[r] ([R, W] each) in W."""
  t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
  w_path = (1 - t)[None, :, None] * wa[:, None] + t[None, :, None] * wb[:, None]  # Lerp in W.
  w_path = jnp.repeat(w_path.reshape(len(wa) * steps, 1, -1), num_ws, axis=1)
  return save_rows(from_ws(w_path, noise), steps, path)


def save_truncation_sweep(from_ws: FromWs, w: jax.Array, centers: jax.Array, noise: list,
                          num_ws: int, path: str, num_psis: int = 7) -> str:
  """Row r: w[r] truncated towards centers[r] ([R, W] each), psi from 1 (left) to 0 (right).

  Args:
    from_ws: the synthesis network (see `FromWs`).
    w, centers: [R, W].
    noise: StyleGAN's per-layer noise, at least R draws each (row r holds draw r).
    num_ws: layers the synthesis network reads.
    path: PNG to write.
    num_psis: images per row.
  """
  rows = len(w)
  psis = np.linspace(1.0, 0.0, num_psis, dtype=np.float32)
  trunc = stylegan.truncate(w[:, None], centers[:, None], psis[None, :, None])
  trunc = jnp.repeat(trunc.reshape(rows * len(psis), 1, -1), num_ws, axis=1)
  trunc_noise = [jnp.repeat(n[:rows], len(psis), axis=0) for n in noise]
  return save_rows(from_ws(trunc, trunc_noise), len(psis), path)


def save_style_mixing(from_ws: FromWs, wa: jax.Array, wb: jax.Array, noise: list, num_ws: int,
                      out_dir: str, num_sources: int = 5) -> list[str]:
  """StyleGAN fig. 3: row i is source A_i, column j source B_j.

  Cell (i, j) reads A_i's ws below the crossover and B_j's from it on. Crossing
  over at the block of resolution r, B gives the styles of r and finer: one
  picture `style_mixing_from{r}.png` per r (the middle and the finest).

  Args:
    from_ws: the synthesis network (see `FromWs`).
    wa, wb: [>= num_sources, W] the sources' ws.
    noise: StyleGAN's per-layer noise; every image uses its first draw.
    num_ws: layers the synthesis network reads.
    out_dir: where the pictures go.
    num_sources: sources per side.
  """
  n_a = n_b = num_sources
  wa_, wb_ = wa[:n_a], wb[:n_b]
  w_dim = wa.shape[-1]
  noise_one = [n[:1] for n in noise]
  num_res = num_ws // 2
  paths = []
  for i in sorted({max(num_res - 2, 1), num_res - 1}):
    crossover, name = 2 * i - 1, f'style_mixing_from{4 * 2 ** i}'
    w1 = jnp.repeat(jnp.repeat(wa_[:, None], n_b, 1).reshape(-1, 1, w_dim), num_ws, 1)
    w2 = jnp.repeat(jnp.repeat(wb_[None], n_a, 0).reshape(-1, 1, w_dim), num_ws, 1)
    mixed = stylegan.mix_styles(w1, w2, jnp.full((n_a * n_b,), crossover))
    batch_noise = [jnp.repeat(n, n_a * n_b, 0) for n in noise_one]
    img_a = from_ws(jnp.repeat(wa_[:, None], num_ws, 1), [jnp.repeat(n, n_a, 0) for n in noise_one])
    img_b = from_ws(jnp.repeat(wb_[:, None], num_ws, 1), [jnp.repeat(n, n_b, 0) for n in noise_one])
    grid = from_ws(mixed, batch_noise).reshape(n_a, n_b, *img_a.shape[1:])
    paths.append(save_mixing_grid(img_a, img_b, grid, os.path.join(out_dir, f'{name}.png')))
  return paths


def save_style_pictures(from_ws: FromWs, wa: jax.Array, wb: jax.Array, centers: jax.Array,
                        noise: Sequence[jax.Array], row_noise: list, num_ws: int, steps: int,
                        out_dir: str) -> list[str]:
  """StyleGAN's pictures: interpolation in W, truncation sweep and style mixing.

  Args:
    from_ws: the synthesis network (see `FromWs`).
    wa, wb: [R, W] the mapped ends of the R interpolation rows (the sweep's and mixing's
      sources too).
    centers: [R, W] each row's truncation centre (its class's w_avg, or the one w_avg).
    noise: per-layer noise [>= R, r, r, 1] (row r holds draw r).
    row_noise: the same held along each interpolation row ([R * steps, r, r, 1] per layer).
    num_ws: layers the synthesis network reads.
    steps: images per interpolation row.
    out_dir: where the pictures go.
  """
  return [
      save_w_interpolation(from_ws, wa, wb, row_noise, num_ws, steps,
                           os.path.join(out_dir, 'interpolation_w.png')),
      save_truncation_sweep(from_ws, wa, centers, list(noise), num_ws,
                            os.path.join(out_dir, 'truncation.png')),
  ] + save_style_mixing(from_ws, wa, wb, list(noise), num_ws, out_dir)
