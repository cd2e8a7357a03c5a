"""Training losses: the denoising score-matching loss of VP-discrete (DDPM) and EDM models.

Both are pure functions of a network, the schedule's values, a batch and a key,
and return the per-example weighted loss [B] (the caller takes the mean). The
network is `network_fn(x [B, H, W, C], noise_label [B], labels [B] | None,
rng) -> [B, H, W, C]`, already bound to its parameters; `rng` drives its
dropout. The key is split the same way in both: `noise_rng, level_rng,
drop_rng = split(rng, 3)` (the noise, the noise level, the network's dropout).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from genjax.diffusion.denoisers import make_edm_denoiser
from genjax.diffusion.schedules import (VPSchedule, VP_PARAMETERIZATIONS, edm_loss_weight,
                                        edm_sample_sigma, min_snr_weight)

NetworkFn = Callable[[jax.Array, jax.Array, jax.Array | None, jax.Array], jax.Array]

VP_WEIGHTINGS = ('simple', 'min_snr')
WEIGHTINGS = VP_WEIGHTINGS + ('edm',)


def vp_loss(network_fn: NetworkFn, schedule: VPSchedule, x: jax.Array, labels: jax.Array | None,
            rng: jax.Array, *, parameterization: str = 'eps', weighting: str = 'simple',
            min_snr_gamma: float = 5.0) -> jax.Array:
  """The DDPM loss (Ho et al. 2020): MSE to the eps, x0 or v target at t ~ U{0, ..., T-1}.

  x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps; the network sees (x_t, t as a
  float) and predicts `parameterization`'s target; 'min_snr' weights each
  example by `min_snr_weight` (Hang et al. 2023), 'simple' by 1.

  Args:
    network_fn: see the module docstring; its noise label is the timestep t.
    schedule: the training chain (T = schedule.num_timesteps).
    x: [B, H, W, C] clean images.
    labels: [B] int conditions or None.
    rng: key (one noise draw and one timestep per example).
    parameterization: one of VP_PARAMETERIZATIONS.
    weighting: one of VP_WEIGHTINGS.
    min_snr_gamma: min-SNR's clamp.

  Returns:
    [B] weighted per-example MSE.
  """
  if parameterization not in VP_PARAMETERIZATIONS or weighting not in VP_WEIGHTINGS:
    raise ValueError(f'vp_loss takes parameterization in {VP_PARAMETERIZATIONS} and weighting '
                     f'in {VP_WEIGHTINGS}; got {parameterization!r}, {weighting!r}.')
  noise_rng, level_rng, drop_rng = jax.random.split(rng, 3)
  eps = jax.random.normal(noise_rng, x.shape)
  t = jax.random.randint(level_rng, (x.shape[0],), 0, schedule.num_timesteps)
  abar = schedule.alphas_cumprod[t][:, None, None, None]
  x_t = jnp.sqrt(abar) * x + jnp.sqrt(1.0 - abar) * eps
  out = network_fn(x_t, t.astype(jnp.float32), labels, drop_rng)
  target = {'eps': eps, 'x0': x, 'v': jnp.sqrt(abar) * eps - jnp.sqrt(1.0 - abar) * x}
  err = jnp.mean((out - target[parameterization])**2, axis=(1, 2, 3))
  if weighting == 'min_snr':
    return min_snr_weight(schedule.sigmas[t], min_snr_gamma, parameterization) * err
  return err


def edm_loss(network_fn: NetworkFn, x: jax.Array, labels: jax.Array | None, rng: jax.Array, *,
             sigma_data: float = 0.5, p_mean: float = -1.2, p_std: float = 1.2) -> jax.Array:
  """EDM's loss (Karras et al. 2022, eq. 8): lambda(sigma) ||D(x + sigma eps, sigma) - x||^2.

  ln(sigma) ~ N(p_mean, p_std^2) per example; D is the network under
  `make_edm_denoiser`'s preconditioning (the one that sampling uses), and
  lambda = `edm_loss_weight` gives the raw network output unit weight.

  Args:
    network_fn: see the module docstring; it gets c_in x and the noise label c_noise.
    x: [B, H, W, C] clean images.
    labels: [B] int conditions or None.
    rng: key (one noise draw and one noise level per example).
    sigma_data: the data's standard deviation.
    p_mean, p_std: the training noise levels' log-normal.

  Returns:
    [B] weighted per-example MSE.
  """
  noise_rng, level_rng, drop_rng = jax.random.split(rng, 3)
  eps = jax.random.normal(noise_rng, x.shape)
  sigma = edm_sample_sigma(level_rng, (x.shape[0],), p_mean, p_std)
  denoise = make_edm_denoiser(lambda x_in, c_noise, cond: network_fn(x_in, c_noise, cond, drop_rng),
                              sigma_data, cond=labels)
  denoised = denoise(x + sigma[:, None, None, None] * eps, sigma)
  err = jnp.mean((denoised - x)**2, axis=(1, 2, 3))
  return edm_loss_weight(sigma, sigma_data) * err
