"""Single-step samplers: Euler, DDIM, DDPM, Euler ancestral, Heun, DPM-Solver++(2S), and
predictor-corrector Langevin. Each step uses only the current x (no history).

Args and Returns of every sampler: the contract of `genjax.diffusion.samplers`.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from genjax.diffusion.samplers.base import (Denoiser, ancestral, eta_split, final_step, is_zero,
                                            require_rng, scan_steps, step_noise)
from genjax.diffusion.schedules import DDPM_VARIANCES, check_sigmas


# ----------------------------------------------------------------------------
# First-order samplers.


def sample_euler(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None) -> jax.Array:
  """Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1; k-diffusion).

  x <- x + (sigma_next - sigma) (x - D(x, sigma)) / sigma. Order 1. NFE = n.
  Args and Returns: the package's contract.
  """
  sigmas = check_sigmas(sigmas)

  def body(x, i, sigma, sigma_next):
    return x + (sigma_next - sigma) * (x - denoise(x, sigma)) / sigma
  return final_step(denoise, scan_steps(body, x, sigmas), sigmas)


def sample_ddim(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                eta: float = 0.0) -> jax.Array:
  """DDIM (Song, Meng & Ermon 2021, eq. 12) in sigma form. NFE = n.

  x_next = x0_hat + sigma_down eps_hat + sigma_up z with sigma_up = eta
  sqrt(posterior variance) (`eta_split`): DDIM's VP update divided by
  sqrt(abar_{t-1}). eta = 0 is deterministic, order 1, and equals Euler;
  eta = 1 is DDPM with the posterior variance.

  Args:
    eta: >= 0; 0 deterministic, 1 DDPM-like. rng is required when eta != 0.
    denoise, x, sigmas, rng and Returns: the package's contract.
  """
  if isinstance(eta, (int, float)) and eta < 0:
    raise ValueError(f'DDIM eta must be >= 0, got {eta}.')
  if is_zero(eta):
    rng = None
  else:
    require_rng(rng, 'DDIM', f'eta={eta}')
  return ancestral(denoise, x, sigmas, rng, eta_split(eta))


def sample_ddpm(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                variance: str = 'posterior') -> jax.Array:
  """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) in sigma form. NFE = n.

  x_next ~ N(x0_hat + (sigma_next / sigma)^2 (x - x0_hat), var), the mean of
  the posterior q(x_next | x, x0 = x0_hat), with var
    * 'posterior': sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2 (tilde-beta),
      schedule-agnostic; this is DDIM with eta = 1;
    * 'beta': (sigma^2 - sigma_next^2)(1 + sigma_next^2) / (1 + sigma^2) =
      beta_t / abar_{t-1} of a VP-discrete model. With a VPSchedule's sigmas
      this is the seed's x <- (x - beta / sqrt(1 - abar) eps) / sqrt(alpha)
      + sqrt(beta) z after the scaling x_vp = x / sqrt(1 + sigma^2).

  Args:
    variance: one of DDPM_VARIANCES.
    denoise, x, sigmas, rng (required) and Returns: the package's contract.
  """
  if variance not in DDPM_VARIANCES:
    raise ValueError(f'Unknown DDPM variance {variance!r}; accepted: {DDPM_VARIANCES}.')
  require_rng(rng, 'DDPM', 'ancestral sampling')

  def beta_split(sigma, sigma_next):  # the posterior mean, with variance beta_t / abar_{t-1}
    var = (sigma ** 2 - sigma_next ** 2) * (1 + sigma_next ** 2) / (1 + sigma ** 2)
    return sigma_next ** 2 / sigma, jnp.sqrt(var)
  split = eta_split(1.0) if variance == 'posterior' else beta_split
  return ancestral(denoise, x, sigmas, rng, split)


def sample_euler_ancestral(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                           eta: float = 1.0, s_noise: float = 1.0) -> jax.Array:
  """Euler ancestral (k-diffusion; the ancestral step of Ho et al. 2020 / Song et al. 2021).

  An Euler step to sigma_down, then fresh noise of std s_noise sigma_up
  (`eta_split`); with eta = s_noise = 1 each step samples the posterior
  q(x_next | x, x0_hat). NFE = n.

  Args:
    eta: scale of the ancestral noise, 0 .. 1.
    s_noise: extra factor on the added noise.
    denoise, x, sigmas, rng (required) and Returns: the package's contract.
  """
  require_rng(rng, 'Euler ancestral', 'ancestral sampling')
  return ancestral(denoise, x, sigmas, rng, eta_split(eta), s_noise)


# ----------------------------------------------------------------------------
# Second order, Runge-Kutta style.


def sample_heun(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float('inf'),
                s_noise: float = 1.0) -> jax.Array:
  """Heun's 2nd-order method with EDM's stochastic churn (Karras et al. 2022, Algorithm 2).

  Each step first raises the noise to sigma_hat = sigma (1 + gamma), gamma =
  min(s_churn / n, sqrt(2) - 1) for s_tmin <= sigma <= s_tmax, adding noise of
  std s_noise sqrt(sigma_hat^2 - sigma^2); then an Euler step and the
  trapezoidal correction (Euler alone for the last step, to 0). s_churn = 0 is
  the deterministic 2nd-order solver. NFE = 2n - 1.

  Args:
    s_churn, s_tmin, s_tmax, s_noise: EDM's stochasticity knobs (Table 5);
      rng is required when s_churn != 0.
    denoise, x, sigmas, rng and Returns: the package's contract.
  """
  sigmas = check_sigmas(sigmas)
  n = sigmas.shape[0] - 1
  stochastic = not is_zero(s_churn)
  if stochastic:
    require_rng(rng, 'Heun', f's_churn={s_churn}')

  def churn(x, i, sigma):
    if not stochastic:
      return x, sigma
    in_range = (sigma >= s_tmin) & (sigma <= s_tmax)
    sigma_hat = sigma * (1.0 + jnp.where(in_range, jnp.minimum(s_churn / n, math.sqrt(2.0) - 1.0), 0.0))
    return x + s_noise * jnp.sqrt(sigma_hat ** 2 - sigma ** 2) * step_noise(rng, i, x), sigma_hat

  def body(x, i, sigma, sigma_next):
    x, sigma_hat = churn(x, i, sigma)
    d = (x - denoise(x, sigma_hat)) / sigma_hat
    x_euler = x + (sigma_next - sigma_hat) * d
    d_next = (x_euler - denoise(x_euler, sigma_next)) / sigma_next
    return x + (sigma_next - sigma_hat) * 0.5 * (d + d_next)
  x, sigma_hat = churn(scan_steps(body, x, sigmas), n - 1, sigmas[-2])
  return denoise(x, sigma_hat).astype(x.dtype)


def sample_dpmpp_2s(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                    r: float = 0.5) -> jax.Array:
  """DPM-Solver++(2S), single-step 2nd order (Lu et al. 2022, "DPM-Solver++", Algorithm 1).

  With h = log(sigma / sigma_next) and an intermediate point at lambda + r h,
  u = (sigma_mid / sigma) x - expm1(-r h) D(x, sigma) and
  x_next = (sigma_next / sigma) x - expm1(-h) ((1 - 1/(2r)) D(x) + 1/(2r) D(u)).
  (k-diffusion's 2S ancestral with eta = 0.) NFE = 2n - 1.

  Args:
    r: position of the intermediate point in log sigma, 0 < r <= 1 (1/2: midpoint).
    denoise, x, sigmas, rng (ignored) and Returns: the package's contract.
  """
  sigmas = check_sigmas(sigmas)
  if isinstance(r, (int, float)) and not 0 < r <= 1:
    raise ValueError(f'DPM-Solver++(2S) needs 0 < r <= 1, got {r}.')

  def body(x, i, sigma, sigma_next):
    h = jnp.log(sigma / sigma_next)
    sigma_mid = sigma * jnp.exp(-r * h)
    x0 = denoise(x, sigma)
    x0_mid = denoise((sigma_mid / sigma) * x - jnp.expm1(-r * h) * x0, sigma_mid)
    return (sigma_next / sigma) * x - jnp.expm1(-h) * ((1 - 0.5 / r) * x0 + 0.5 / r * x0_mid)
  return final_step(denoise, scan_steps(body, x, sigmas), sigmas)


# ----------------------------------------------------------------------------
# Predictor-corrector.


def sample_pc_langevin(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                       snr: float = 0.16, n_corrector_steps: int = 1) -> jax.Array:
  """Predictor-corrector sampling (Song et al. 2021, score SDE, Algorithms 2 and 4).

  At each noise level, `n_corrector_steps` Langevin steps x <- x + e s + sqrt(2 e) z
  with the score s = (D(x, sigma) - x) / sigma^2 and e = 2 (snr mean_b ||z_b|| /
  mean_b ||s_b||)^2, then the ancestral (reverse diffusion) predictor, which
  in sigma form is `sample_ddpm`'s posterior step. NFE = n (1 + n_corrector_steps).

  The norms are averaged over the batch, as in Song et al.'s code: a
  per-sample ratio makes the step depend on the state, and unadjusted
  Langevin with a state-dependent step loses its target (+20-30% variance on
  16-D Gaussian data). So a sample depends slightly on its batch. With a
  constant step the stationary variance is v / (1 - e / (2 v)): a relative
  bias of about snr^2 (2.6% at snr = 0.16).

  Args:
    snr: the corrector's signal-to-noise ratio (0.16 for VE on CIFAR-10).
    n_corrector_steps: Langevin steps per level, a Python int >= 0.
    denoise, x, sigmas, rng (required; level i, draw j uses
      fold_in(rng, i (n_corrector_steps + 1) + j)) and Returns: the package's contract.
  """
  sigmas = check_sigmas(sigmas)
  require_rng(rng, 'Predictor-corrector', 'Langevin and ancestral steps')
  if not isinstance(n_corrector_steps, int) or n_corrector_steps < 0:
    raise ValueError(f'n_corrector_steps must be a Python int >= 0, got {n_corrector_steps!r}.')
  m, n = n_corrector_steps, sigmas.shape[0] - 1
  norm = lambda v: jnp.mean(jnp.sqrt(jnp.sum(jnp.square(v), axis=tuple(range(1, v.ndim)))))

  def correct(x, i, sigma):
    def langevin(j, x):
      score = (denoise(x, sigma) - x) / sigma ** 2
      z = step_noise(rng, i * (m + 1) + j, x)
      e = 2 * (snr * norm(z) / (norm(score) + 1e-20)) ** 2
      return (x + e * score + jnp.sqrt(2 * e) * z).astype(x.dtype)
    return jax.lax.fori_loop(0, m, langevin, x)

  def body(x, i, sigma, sigma_next):
    x = correct(x, i, sigma)
    x0 = denoise(x, sigma)
    std = sigma_next * jnp.sqrt(sigma ** 2 - sigma_next ** 2) / sigma
    return x0 + (sigma_next / sigma) ** 2 * (x - x0) + std * step_noise(rng, i * (m + 1) + m, x)
  return final_step(denoise, correct(scan_steps(body, x, sigmas), n - 1, sigmas[-2]), sigmas)
