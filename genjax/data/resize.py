"""Bicubic resizing as MATLAB's `imresize` (and BasicSR's `imresize`) computes it, and x4 pairs.

Super-resolution papers make their low-resolution inputs with MATLAB's
`imresize(hr, 1/4, 'bicubic')`: Keys' cubic kernel with a = -0.5, applied
separably; when shrinking by s < 1 the kernel is stretched to h(s x) s
(support 4/s pixels: antialiasing); pixel centres are aligned
(u = x / s + 0.5 (1 - 1 / s), 1-based); rows of weights are normalised to 1;
the border is extended by mirror symmetry (`[1:n, n:-1:1]`). BasicSR's
`calculate_weights_indices` copies this. Each resize is a linear map, so it is
built once as a dense matrix [out, in] per axis (`resize_matrix`) and applied
as two matrix products (`imresize`), in numpy or under jit.

PIL's `Image.resize(..., BICUBIC)` in float mode 'F' uses the same kernel,
widening and centring but renormalises at the border instead of mirroring;
tests/test_sr.py checks that both agree away from the border.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
  """Keys' cubic convolution kernel (MATLAB's and PIL's bicubic: a = -0.5), any shape."""
  x = np.abs(x)
  inner = (a + 2) * x**3 - (a + 3) * x**2 + 1
  outer = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
  return np.where(x <= 1, inner, np.where(x < 2, outer, 0.0))


@functools.lru_cache(maxsize=256)
def resize_matrix(in_size: int, out_size: int) -> np.ndarray:
  """The [out_size, in_size] float32 matrix of MATLAB's bicubic `imresize` along one axis.

  Scale s = out_size / in_size; antialiased when s < 1.

  Raises:
    ValueError: a size below 1.
  """
  if in_size < 1 or out_size < 1:
    raise ValueError(f'resize sizes must be >= 1; got {in_size} -> {out_size}.')
  scale = out_size / in_size
  width = 4.0 / scale if scale < 1 else 4.0  # Support of the (stretched) kernel, in input pixels.
  x = np.arange(1, out_size + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate of each output centre.
  left = np.floor(u - width / 2)
  taps = int(np.ceil(width)) + 2
  idx = left[:, None] + np.arange(taps)[None, :]  # [out, taps], 1-based.
  dist = u[:, None] - idx
  w = scale * cubic(dist * scale) if scale < 1 else cubic(dist)
  w = w / w.sum(axis=1, keepdims=True)
  mirror = np.concatenate([np.arange(in_size), np.arange(in_size)[::-1]])  # MATLAB's symmetric.
  cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_size)]
  m = np.zeros((out_size, in_size), np.float64)
  np.add.at(m, (np.repeat(np.arange(out_size), taps), cols.ravel()), w.ravel())
  return m.astype(np.float32)


def imresize(images, out_hw: tuple[int, int]):
  """MATLAB bicubic resize of images [..., H, W, C] to [..., H', W', C] (numpy or jax).

  jax inputs (also under jit: the matrices are constants of the static
  shapes) give jax outputs; numpy inputs numpy outputs. No clipping: bicubic
  overshoots, as MATLAB's before its uint8 rounding.
  """
  h, w = images.shape[-3], images.shape[-2]
  mh, mw = resize_matrix(h, out_hw[0]), resize_matrix(w, out_hw[1])
  xp = np if isinstance(images, np.ndarray) else jnp
  out = xp.einsum('oh,...hwc->...owc', mh, images)
  return xp.einsum('pw,...owc->...opc', mw, out)


def random_crops(images: jax.Array, size: int, rng: jax.Array) -> jax.Array:
  """[B, size, size, C]: a crop of each image of [B, H, W, C] at a uniform random position
  (top from `rng`, left from fold_in(rng, 1)); jit-friendly (dynamic slices)."""
  b, h, w, c = images.shape
  tops = jax.random.randint(rng, (b,), 0, h - size + 1)
  lefts = jax.random.randint(jax.random.fold_in(rng, 1), (b,), 0, w - size + 1)
  crop = lambda im, t, l: jax.lax.dynamic_slice(im, (t, l, 0), (size, size, c))
  return jax.vmap(crop)(images, tops, lefts)


def modcrop(images, scale: int):
  """Crops [..., H, W, C] to sides that divide by `scale` (bottom and right rows dropped)."""
  h, w = images.shape[-3], images.shape[-2]
  return images[..., :h - h % scale, :w - w % scale, :]


def quantize(images, levels: int = 255):
  """Rounds images in [-1, 1] to 8-bit levels (an LR image as a PNG file stores it), clipped."""
  xp = np if isinstance(images, np.ndarray) else jnp
  return xp.round((xp.clip(images, -1.0, 1.0) + 1.0) * (levels / 2.0)) / (levels / 2.0) - 1.0


def downsample(hr, scale: int = 4, *, round8: bool = True):
  """The LR input of an SR pair: bicubic 1/scale of `hr` [..., H, W, C] in [-1, 1].

  Args:
    hr: [..., H, W, C], H and W divisible by `scale` (see `modcrop`).
    scale: integer factor.
    round8: quantise to 8 bits, as benchmark LR files are.

  Returns:
    [..., H / scale, W / scale, C].

  Raises:
    ValueError: sides that do not divide by `scale`.
  """
  h, w = hr.shape[-3], hr.shape[-2]
  if h % scale or w % scale:
    raise ValueError(f'HR sides {h}x{w} must divide by the scale {scale}; modcrop them first.')
  lr = imresize(hr, (h // scale, w // scale))
  return quantize(lr) if round8 else lr


def upsample_bicubic(lr, scale: int = 4):
  """The bicubic baseline: [..., h, w, C] -> [..., scale h, scale w, C] (MATLAB's, unclipped)."""
  return imresize(lr, (lr.shape[-3] * scale, lr.shape[-2] * scale))


def upsample_nearest(lr, scale: int = 4):
  """The nearest-neighbour baseline: each pixel repeated scale x scale times."""
  xp = np if isinstance(lr, np.ndarray) else jnp
  return xp.repeat(xp.repeat(lr, scale, axis=-3), scale, axis=-2)


def make_pairs(hr, scale: int = 4, *, round8: bool = True):
  """(lr [..., H/s, W/s, C], hr [..., H, W, C]) from HR images, modcropped to multiples of s."""
  hr = modcrop(hr, scale)
  return downsample(hr, scale, round8=round8), hr
