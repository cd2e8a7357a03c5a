"""Upscaling with a trained SR run: the networks' forward passes, diffusion SR sampling,
network interpolation, overlapping tiles for large images, and reading a run's generator."""
from __future__ import annotations

import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from genjax.data import resize
from genjax.diffusion import schedules
from genjax.diffusion.denoisers import make_edm_denoiser
from genjax.methods.sr import steps
from genjax.methods.sr.spec import SRSpec

@functools.partial(jax.jit, static_argnums=0)
def rrdb_upscale(spec: SRSpec, params, lr: jax.Array) -> jax.Array:
  """The RRDB generator `params` on lr [B, h, w, C] -> [B, s h, s w, C], clipped to [-1, 1]."""
  return jnp.clip(steps.generator_apply(spec, params, lr), -1.0, 1.0)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def diffusion_upscale(spec: SRSpec, sampler: Callable[..., jax.Array], num_steps: int, params,
                      lr: jax.Array, keys: jax.Array) -> jax.Array:
  """SR3 sampling: [B, h, w, C] LR and keys [B] -> SR [B, s h, s w, C] in [-1, 1].

  Each image runs the sampler (a function of genjax.diffusion.SAMPLERS) alone
  under vmap from its own key, so results do not depend on the batch; Karras
  sigmas (rho 7) over [sigma_min, sigma_max], `num_steps` steps.
  """
  sigmas = schedules.get_sigmas('karras', num_steps, sigma_min=spec.sigma_min,
                                sigma_max=spec.sigma_max, rho=7.0)
  network_fn = steps.unet_network_fn(spec, params)

  def one(x_lr, key):
    cond = resize.upsample_bicubic(x_lr[None], spec.scale)
    denoise = make_edm_denoiser(network_fn, spec.sigma_data, cond=cond)
    x = sigmas[0] * jax.random.normal(jax.random.fold_in(key, 0), cond.shape)
    return jnp.clip(sampler(denoise, x, sigmas, rng=jax.random.fold_in(key, 1))[0], -1.0, 1.0)
  return jax.vmap(one)(lr, keys)


def self_ensemble(fn: Callable[[jax.Array, jax.Array], jax.Array]
                  ) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """fn(lr [B, h, w, C], keys [B]) -> SR, averaged over the 8 symmetries of the square (EDSR's
  self-ensemble): each transformed input is upscaled and transformed back before the mean."""
  def ensembled(lr, keys):
    total = 0.0
    for transpose in (False, True):
      for flip_rows in (False, True):
        for flip_cols in (False, True):
          x = jnp.swapaxes(lr, 1, 2) if transpose else lr
          x = x[:, ::-1] if flip_rows else x
          x = x[:, :, ::-1] if flip_cols else x
          y = fn(x, keys)
          y = y[:, :, ::-1] if flip_cols else y
          y = y[:, ::-1] if flip_rows else y
          total = total + (jnp.swapaxes(y, 1, 2) if transpose else y)
    return total / 8
  return ensembled


def interpolate(psnr_params, gan_params, alpha: float):
  """Network interpolation (ESRGAN, sec. 3.4): alpha * PSNR + (1 - alpha) * GAN, leaf by leaf."""
  if not 0.0 <= alpha <= 1.0:
    raise ValueError(f'alpha must be in [0, 1] (1: the PSNR network, 0: the GAN); got {alpha}.')
  return jax.tree.map(lambda p, g: alpha * p + (1.0 - alpha) * g, psnr_params, gan_params)


def tile_starts(size: int, tile: int) -> list[int]:
  """Starts of the tiles [start, start + tile) covering [0, size); the last one ends at size."""
  if size <= tile:
    return [0]
  starts = list(range(0, size - tile, tile)) + [size - tile]
  return sorted(set(starts))


def upscale_tiled(fn: Callable[[np.ndarray], np.ndarray], lr: np.ndarray, scale: int, tile: int,
                  overlap: int) -> np.ndarray:
  """`fn` on overlapping tiles of one image lr [h, w, C] -> [s h, s w, C].

  Each tile of side `tile` is run with `overlap` more LR pixels of context per
  side (fewer at the image's border, where the window is shifted inward so
  every window has the same shape: one compiled shape), and only its own
  part of the output is kept. Away from the seams' context (when `overlap`
  covers the network's receptive field: everywhere) the result is the
  untiled one.

  Args:
    fn: batch [1, H, W, C] -> [1, s H, s W, C].
    lr: [h, w, C].
    scale: s.
    tile: LR tile side.
    overlap: LR context pixels per side.
  """
  h, w, c = lr.shape
  th, tw = min(tile, h), min(tile, w)
  wh, ww = min(h, th + 2 * overlap), min(w, tw + 2 * overlap)
  out = np.zeros((h * scale, w * scale, c), np.float32)
  for top in tile_starts(h, th):
    wtop = int(np.clip(top - overlap, 0, h - wh))
    for left in tile_starts(w, tw):
      wleft = int(np.clip(left - overlap, 0, w - ww))
      window = lr[wtop:wtop + wh, wleft:wleft + ww][None]
      sr = np.asarray(fn(window))[0]
      dy, dx = (top - wtop) * scale, (left - wleft) * scale
      out[top * scale:(top + th) * scale, left * scale:(left + tw) * scale] = (
          sr[dy:dy + th * scale, dx:dx + tw * scale])
  return out


def load_run_params(workdir: str) -> dict:
  """The eval parameters (the EMA where kept) of the latest checkpoint in `workdir`, as numpy.

  Read without a target structure, so a run of any SR arch works.

  Raises:
    FileNotFoundError: no checkpoint there.
  """
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
  steps_found = sorted(int(d) for d in os.listdir(directory) if d.isdigit()) if os.path.isdir(
      directory) else []
  if not steps_found:
    raise FileNotFoundError(f'No checkpoint in {directory}: sr.init_from must be a finished '
                            'rrdb_psnr run (genjax train --config=configs/rrdb_psnr_*.py ...).')
  with ocp.StandardCheckpointer() as ckpt:
    path = os.path.join(directory, str(steps_found[-1]), 'default')
    if not os.path.isdir(path):
      path = os.path.join(directory, str(steps_found[-1]))
    restored = ckpt.restore(path)
  params = restored['params']
  ema = restored.get('ema_params')
  if ema:
    params = {**params, **ema} if set(ema) <= set(params) else ema
  return jax.tree.map(np.asarray, params)
