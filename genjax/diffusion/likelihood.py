"""The DDPM variational bound in bits/dim (Ho et al. 2020, eq. 5).

  -log p(x0) <= L_T + sum_{t >= 1} L_{t-1} + L_0, with
  L_T     = KL(q(x_T | x0) || N(0, I)),
  L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)),  x_t ~ q(x_t | x0),
  L_0     = -log p(x0 | x_1), a discretized Gaussian over the 256 bins of 8-bit data.

Timesteps are 0-based here as in the code of Ho et al. and Nichol & Dhariwal:
step t = 0 .. T-1, and the term at t = 0 is the decoder L_0. Data are 8-bit
images scaled to [-1, 1]; bits/dim divide nats by (number of dimensions x ln 2).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr, ndtr

from genjax.diffusion.schedules import DDPM_VARIANCES, VP_PARAMETERIZATIONS, VPSchedule


def normal_kl(mean1: jax.Array, logvar1: jax.Array, mean2: jax.Array, logvar2: jax.Array) -> jax.Array:
  """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) elementwise, in nats.

  Args: broadcastable arrays. Returns: their broadcast shape.
  """
  return 0.5 * (logvar2 - logvar1 + jnp.exp(logvar1 - logvar2)
                + jnp.square(mean1 - mean2) * jnp.exp(-logvar2) - 1.0)


def discretized_gaussian_log_likelihood(x: jax.Array, means: jax.Array, log_scales: jax.Array) -> jax.Array:
  """log P(x) of 8-bit data under a Gaussian integrated over each bin (Ho et al. 2020, eq. 13).

  Bins have width 2/255 around x; the edge bins extend to -inf (x = -1) and
  +inf (x = 1), as in PixelCNN++ (Salimans et al. 2017), so the 256 bin
  probabilities sum to 1. The interior difference of CDFs is taken on the
  side of the mean where it does not cancel (the reference code subtracts
  two numbers near 1 for bins far above the mean).

  Args:
    x: data in [-1, 1] on the grid k / 127.5 - 1, any shape.
    means, log_scales: broadcastable to x; log_scales = log std.

  Returns:
    log-probabilities in nats, x's shape.
  """
  centered = x - means
  inv_std = jnp.exp(-log_scales)
  upper = inv_std * (centered + 1.0 / 255.0)
  lower = inv_std * (centered - 1.0 / 255.0)
  log_cdf_upper = log_ndtr(upper)  # the bin at -1: P(X < -1 + 1/255)
  log_sf_lower = log_ndtr(-lower)  # the bin at 1: P(X > 1 - 1/255)
  # P(lower < Z < upper), computed in the tail where it is small and exact.
  delta = jnp.where(lower > 0, ndtr(-lower) - ndtr(-upper), ndtr(upper) - ndtr(lower))
  log_delta = jnp.log(jnp.maximum(delta, 1e-12))
  return jnp.where(x < -0.999, log_cdf_upper, jnp.where(x > 0.999, log_sf_lower, log_delta))


def _mean_flat_bits(v: jax.Array) -> jax.Array:
  """Sum over all but the batch axis, as bits per dimension: [B, ...] -> [B]."""
  return jnp.sum(v, axis=tuple(range(1, v.ndim))) / (math.prod(v.shape[1:]) * math.log(2.0))


def _expand(v: jax.Array, x: jax.Array) -> jax.Array:
  return v.reshape(v.shape + (1,) * (x.ndim - 1))


def _posterior_tables(schedule: VPSchedule) -> dict[str, jax.Array]:
  """[T] tables of q(x_{t-1} | x_t, x0) (Ho et al. 2020, eqs. 6-7), computed in log space."""
  betas = schedule.betas
  log_abar = schedule.log_alphas_cumprod
  log_abar_prev = jnp.concatenate([jnp.zeros((1,), log_abar.dtype), log_abar[:-1]])
  one_minus_abar = -jnp.expm1(log_abar)
  one_minus_abar_prev = -jnp.expm1(log_abar_prev)
  var = betas * one_minus_abar_prev / one_minus_abar  # tilde-beta_t; 0 at t = 0
  # At t = 0 the posterior variance is 0; the decoder uses that of t = 1 (Ho et al.'s "clipped").
  log_var_clipped = jnp.log(jnp.concatenate([var[1:2], var[1:]]))
  return {
      'sqrt_abar': jnp.exp(0.5 * log_abar),
      'sqrt_one_minus_abar': jnp.sqrt(one_minus_abar),
      'coef_x0': betas * jnp.exp(0.5 * log_abar_prev) / one_minus_abar,
      'coef_xt': one_minus_abar_prev * jnp.sqrt(1.0 - betas) / one_minus_abar,
      'log_var_posterior': log_var_clipped,
      'log_var_beta': jnp.log(jnp.concatenate([var[1:2], betas[1:]])),
  }


def prior_bpd(schedule: VPSchedule, x0: jax.Array) -> jax.Array:
  """L_T = KL(q(x_T | x0) || N(0, I)) in bits/dim.

  Args:
    schedule: the VP schedule.
    x0: [B, H, W, C] data in [-1, 1].

  Returns:
    [B].
  """
  tab = _posterior_tables(schedule)
  mean = tab['sqrt_abar'][-1] * x0
  logvar = 2.0 * jnp.log(tab['sqrt_one_minus_abar'][-1])
  return _mean_flat_bits(normal_kl(mean, logvar, 0.0, 0.0))


def vlb_term(model_fn: Callable[[jax.Array, jax.Array, Any], jax.Array], schedule: VPSchedule,
             x0: jax.Array, t: jax.Array, rng: jax.Array, parameterization: str = 'eps', *,
             cond: Any = None, variance: str = 'posterior', clip_denoised: bool = True) -> jax.Array:
  """One term of the bound at timesteps t, in bits/dim: L_{t-1} for t >= 1, the decoder L_0 at t = 0.

  The model's p(x_{t-1} | x_t) has the posterior mean with x0 replaced by
  the network's estimate, and a fixed variance.

  Args:
    model_fn: (x_t [B, H, W, C], t [B] float, cond) -> eps, x0 or v prediction.
    schedule: the schedule the model was trained with.
    x0: [B, H, W, C] 8-bit data scaled to [-1, 1].
    t: [B] int timesteps in [0, T-1].
    rng: key for x_t ~ q(x_t | x0).
    parameterization: one of VP_PARAMETERIZATIONS ('eps', 'x0' or 'v').
    cond: passed to model_fn.
    variance: one of DDPM_VARIANCES: 'posterior' (tilde-beta_t, "fixedsmall") or 'beta'
      (beta_t, "fixedlarge").
    clip_denoised: clip the x0 estimate to [-1, 1], as Ho et al. do when evaluating.

  Returns:
    [B] bits/dim.
  """
  if parameterization not in VP_PARAMETERIZATIONS:
    raise ValueError(f'Unknown parameterization {parameterization!r}; '
                     f'accepted: {VP_PARAMETERIZATIONS}.')
  if variance not in DDPM_VARIANCES:
    raise ValueError(f'Unknown model variance {variance!r}; accepted: {DDPM_VARIANCES}.')
  tab = {k: _expand(v[t], x0) for k, v in _posterior_tables(schedule).items()}
  noise = jax.random.normal(rng, x0.shape, x0.dtype)
  x_t = tab['sqrt_abar'] * x0 + tab['sqrt_one_minus_abar'] * noise
  out = model_fn(x_t, t.astype(schedule.betas.dtype), cond)
  if parameterization == 'eps':
    x0_hat = (x_t - tab['sqrt_one_minus_abar'] * out) / tab['sqrt_abar']
  elif parameterization == 'x0':
    x0_hat = out
  else:
    x0_hat = tab['sqrt_abar'] * x_t - tab['sqrt_one_minus_abar'] * out
  if clip_denoised:
    x0_hat = jnp.clip(x0_hat, -1.0, 1.0)
  true_mean = tab['coef_x0'] * x0 + tab['coef_xt'] * x_t
  model_mean = tab['coef_x0'] * x0_hat + tab['coef_xt'] * x_t
  model_logvar = tab[f'log_var_{variance}']
  kl = _mean_flat_bits(normal_kl(true_mean, tab['log_var_posterior'], model_mean, model_logvar))
  nll = -_mean_flat_bits(discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_logvar))
  return jnp.where(t == 0, nll, kl)


def vlb_terms(model_fn: Callable[[jax.Array, jax.Array, Any], jax.Array], schedule: VPSchedule,
              x0: jax.Array, rng: jax.Array, parameterization: str = 'eps', *, cond: Any = None,
              variance: str = 'posterior', clip_denoised: bool = True, chunk_size: int = 8) -> jax.Array:
  """The full bound in bits/dim: L_T plus all T terms (Ho et al. 2020, eq. 5).

  The T terms run through `lax.map` in chunks of `chunk_size` timesteps, so
  memory holds chunk_size x B images whatever T is. Term t draws its x_t
  from fold_in(rng, t), so the result does not depend on chunk_size.

  Args:
    model_fn, schedule, x0, parameterization, cond, variance, clip_denoised: as in `vlb_term`.
    rng: PRNG key.
    chunk_size: timesteps evaluated together (vmapped).

  Returns:
    [B] bits/dim, an upper bound on -log2 p(x0) / dims for each example.
  """
  b = x0.shape[0]

  def term(t):
    return vlb_term(model_fn, schedule, x0, jnp.full((b,), t), jax.random.fold_in(rng, t),
                    parameterization, cond=cond, variance=variance, clip_denoised=clip_denoised)
  terms = jax.lax.map(term, jnp.arange(schedule.num_timesteps), batch_size=chunk_size)  # [T, B]
  return prior_bpd(schedule, x0) + jnp.sum(terms, axis=0)


def vlb_estimate(model_fn: Callable[[jax.Array, jax.Array, Any], jax.Array], schedule: VPSchedule,
                 x0: jax.Array, rng: jax.Array, parameterization: str = 'eps', *, cond: Any = None,
                 variance: str = 'posterior', clip_denoised: bool = True) -> jax.Array:
  """Unbiased one-call estimate of `vlb_terms`: L_T + T L_t with t ~ U{0, ..., T-1} per example.

  Args: as in `vlb_terms`.

  Returns:
    [B] bits/dim whose expectation over rng equals the full bound.
  """
  t_rng, noise_rng = jax.random.split(rng)
  num_timesteps = schedule.num_timesteps
  t = jax.random.randint(t_rng, (x0.shape[0],), 0, num_timesteps)
  term = vlb_term(model_fn, schedule, x0, t, noise_rng, parameterization, cond=cond,
                  variance=variance, clip_denoised=clip_denoised)
  return prior_bpd(schedule, x0) + num_timesteps * term
