"""Denoisers: the one place where a network becomes `denoise(x, sigma) -> x0_hat`.

Every sampler sees the "sigma form" (variance exploding): `x = x0 + sigma * eps`,
`denoise(x, sigma)` returns an estimate of E[x0 | x], and `sigma` is a scalar
or `[B]`. The wrappers here convert from how networks are trained
(VP-discrete with eps / x0 / v targets, or EDM preconditioning), and apply
classifier-free guidance. Closed-form denoisers of Gaussian data (and
mixtures) serve as exact references for testing samplers.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from genjax.diffusion.schedules import VP_PARAMETERIZATIONS, VPSchedule, edm_precond

Denoiser = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, ...], sigma [] or [B]) -> x0_hat


def _per_example(sigma: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """sigma as [B] and as [B, 1, ..., 1] (broadcastable against x)."""
  sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
  return sigma, sigma.reshape(sigma.shape + (1,) * (x.ndim - 1))


def _make_guided_fn(model_fn: Callable[..., jax.Array], cond: Any, guidance_scale: Any,
                    uncond: Any) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """(x, t) -> output, with classifier-free guidance (Ho & Salimans 2022) when asked.

  out = uncond_out + w (cond_out - uncond_out): w = 1 is the plain conditional
  model, w = 0 the unconditional one, w > 1 extrapolates away from it. Both
  halves come from one batched call on [x; x] with [cond; uncond].
  """
  if guidance_scale is None:
    return lambda x, t: model_fn(x, t, cond)
  if isinstance(guidance_scale, (int, float)) and guidance_scale in (0, 1):
    # w = 1 and w = 0 need only one half of the pair: one model call per step, not two.
    if guidance_scale == 1:
      return lambda x, t: model_fn(x, t, cond)
    if uncond is None:
      raise ValueError('guidance_scale=0 (the unconditional model) needs `uncond`, the null condition.')
    return lambda x, t: model_fn(x, t, jax.tree.map(
        lambda c, u: jnp.broadcast_to(u, c.shape).astype(c.dtype), cond, uncond))
  if cond is None or uncond is None:
    raise ValueError('Classifier-free guidance (guidance_scale set) needs both `cond` and '
                     '`uncond` (the null condition, e.g. the "no label" class).')

  def guided(x, t):
    b = x.shape[0]
    # uncond may be a single null condition: broadcast it to cond's batch.
    both = jax.tree.map(lambda c, u: jnp.concatenate([c, jnp.broadcast_to(u, c.shape).astype(c.dtype)]),
                        cond, uncond)
    out = model_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]), both)  # [2B, ...]
    out_cond, out_uncond = out[:b], out[b:]
    return out_uncond + guidance_scale * (out_cond - out_uncond)
  return guided


def make_vp_denoiser(model_fn: Callable[[jax.Array, jax.Array, Any], jax.Array],
                     schedule: VPSchedule, parameterization: str = 'eps', *, cond: Any = None,
                     guidance_scale: float | jax.Array | None = None, uncond: Any = None) -> Denoiser:
  """Wraps a VP-discrete network as a sigma-form denoiser.

  The network sees x_t = sqrt(abar) x0 + sqrt(1 - abar) eps at a float
  timestep t in [0, T-1]. In sigma form abar = 1 / (1 + sigma^2), so
  x_t = x / sqrt(1 + sigma^2) and t = schedule.sigma_to_t(sigma) (interpolated
  in log sigma, so any sampler's noise levels are accepted).

  Args:
    model_fn: (x_t [B, H, W, C], t [B] float, cond) -> output [B, H, W, C].
    schedule: the schedule the network was trained with.
    parameterization: what the network predicts: 'eps' (Ho et al. 2020),
      'x0', or 'v' = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022).
    cond: conditioning passed to model_fn (any pytree with leading batch
      axis B), or None.
    guidance_scale: classifier-free guidance weight w, or None for none.
      out = uncond_out + w (cond_out - uncond_out): w = 1 is the conditional
      model, w = 0 the unconditional one. Costs one call on a doubled batch.
    uncond: the null condition for guidance, shaped like `cond` or with
      batch size 1 (broadcast).

  Returns:
    denoise(x [B, H, W, C], sigma [] or [B]) -> x0_hat [B, H, W, C].

  Raises:
    ValueError: unknown parameterization, or guidance without cond/uncond.
  """
  if parameterization not in VP_PARAMETERIZATIONS:
    raise ValueError(f'Unknown parameterization {parameterization!r}; '
                     f'accepted: {VP_PARAMETERIZATIONS}.')
  apply_fn = _make_guided_fn(model_fn, cond, guidance_scale, uncond)

  def denoise(x, sigma):
    sigma, s = _per_example(sigma, x)
    signal = jax.lax.rsqrt(1.0 + s ** 2)  # sqrt(abar)
    out = apply_fn(x * signal, schedule.sigma_to_t(sigma))
    if parameterization == 'eps':
      return x - s * out
    if parameterization == 'x0':
      return out
    # v: x0 = sqrt(abar) x_t - sqrt(1 - abar) v, with x_t = signal x and sqrt(1 - abar) = s signal.
    return signal * (signal * x - s * out)
  return denoise


def make_edm_denoiser(model_fn: Callable[[jax.Array, jax.Array, Any], jax.Array],
                      sigma_data: float = 0.5, *, cond: Any = None,
                      guidance_scale: float | jax.Array | None = None, uncond: Any = None) -> Denoiser:
  """Wraps an EDM-preconditioned network F (Karras et al. 2022, eq. 7).

  D(x, sigma) = c_skip x + c_out F(c_in x, c_noise, cond), with the
  coefficients of `edm_precond`. Guidance is applied to F (equivalently to D,
  which is affine in F).

  Args:
    model_fn: (c_in x [B, H, W, C], c_noise [B], cond) -> F [B, H, W, C].
    sigma_data: the data's standard deviation.
    cond, guidance_scale, uncond: as in `make_vp_denoiser`.

  Returns:
    denoise(x [B, H, W, C], sigma [] or [B]) -> x0_hat [B, H, W, C].
  """
  apply_fn = _make_guided_fn(model_fn, cond, guidance_scale, uncond)

  def denoise(x, sigma):
    sigma, s = _per_example(sigma, x)
    c_skip, c_out, c_in, c_noise = edm_precond(sigma, sigma_data)  # each [B]
    c_skip, c_out, c_in = (c.reshape(s.shape) for c in (c_skip, c_out, c_in))
    return c_skip * x + c_out * apply_fn(c_in * x, c_noise)
  return denoise


# ----------------------------------------------------------------------------
# Closed-form references: data sets whose exact denoiser is known.


def make_gaussian_denoiser(mean: jax.Array, std: jax.Array) -> Denoiser:
  """The exact denoiser of Gaussian data x0 ~ N(mean, diag(std^2)).

  E[x0 | x0 + sigma eps = x] = mean + std^2 / (std^2 + sigma^2) (x - mean).

  Args:
    mean, std: per-dimension, broadcastable to one sample's shape (e.g. [H, W, C]).

  Returns:
    denoise(x [B, ...], sigma [] or [B]) -> x0_hat [B, ...].
  """
  def denoise(x, sigma):
    _, s = _per_example(sigma, x)
    var = jnp.square(std)
    return mean + var / (var + s ** 2) * (x - mean)
  return denoise


def gaussian_pf_ode_solution(x: jax.Array, sigma_from: jax.Array, sigma_to: jax.Array,
                             mean: jax.Array, std: jax.Array) -> jax.Array:
  """Exact probability-flow ODE (dx/dsigma = (x - D(x, sigma)) / sigma) for Gaussian data.

  x(sigma_to) = mean + sqrt(std^2 + sigma_to^2) / sqrt(std^2 + sigma_from^2) (x - mean).

  Args:
    x: [B, ...] at noise level sigma_from (scalars).
    mean, std: as in `make_gaussian_denoiser`.

  Returns:
    [B, ...] at noise level sigma_to.
  """
  var = jnp.square(std)
  return mean + jnp.sqrt((var + sigma_to ** 2) / (var + sigma_from ** 2)) * (x - mean)


def make_gaussian_mixture_denoiser(weights: jax.Array, means: jax.Array, stds: jax.Array) -> Denoiser:
  """The exact denoiser of a mixture of K diagonal Gaussians.

  With responsibilities r_k(x) proportional to w_k N(x; m_k, s_k^2 + sigma^2),
  E[x0 | x] = sum_k r_k (m_k + s_k^2 / (s_k^2 + sigma^2) (x - m_k)). Its
  probability-flow ODE is nonlinear, so solvers meet their asymptotic order
  without the special structure of the single-Gaussian case.

  Args:
    weights: [K] mixture weights (summing to 1).
    means: [K, *event] component means.
    stds: [K, *event] (or broadcastable) component standard deviations.

  Returns:
    denoise(x [B, *event], sigma [] or [B]) -> x0_hat [B, *event].
  """
  log_w = jnp.log(jnp.asarray(weights))
  means = jnp.asarray(means)
  var = jnp.broadcast_to(jnp.square(stds), means.shape)  # [K, *event]

  def denoise(x, sigma):
    _, s = _per_example(sigma, x)
    s2 = (s ** 2)[:, None]  # [B, 1, 1...]
    diff = x[:, None] - means[None]  # [B, K, *event]
    total = var[None] + s2
    event_axes = tuple(range(2, diff.ndim))
    log_lik = -0.5 * jnp.sum(diff ** 2 / total + jnp.log(total), axis=event_axes)  # [B, K]
    resp = jax.nn.softmax(log_w + log_lik, axis=1).reshape(log_lik.shape + (1,) * len(event_axes))
    return jnp.sum(resp * (means[None] + var[None] / total * diff), axis=1)
  return denoise
