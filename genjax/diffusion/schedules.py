"""Noise schedules: VP-discrete beta schedules, sampling sigma schedules, EDM weighting.

Two kinds of schedule live here.

* Beta schedules (training noise): optax-style functions `step -> beta`
  (`optax.Schedule`), jittable on an int array. `VPSchedule` tabulates one
  over `T` steps and converts between the discrete time `t` and the
  "sigma form" of the samplers, where `x = x0 + sigma * eps`:
  `x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps = sqrt(abar_t) (x0 + sigma_t eps)`
  with `sigma_t = sqrt((1 - abar_t) / abar_t)`.
* Sigma schedules (sampling steps, k-diffusion style): decreasing arrays
  `[n + 1]` of noise levels that end with 0, one entry per solver step
  boundary.
"""
from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax


# ----------------------------------------------------------------------------
# Beta schedules: step -> beta_step, for steps 0 .. T-1.


def linear_beta_schedule(num_timesteps: int = 1000, beta_start: float = 1e-4,
                         beta_end: float = 0.02) -> optax.Schedule:
  """Linearly increasing betas (Ho et al. 2020; the DDPM seed: 1e-4 to 0.02, T = 1000).

  Args:
    num_timesteps: T; step `T - 1` gets `beta_end` (as `np.linspace(start, end, T)`).
    beta_start: beta at step 0.
    beta_end: beta at step T - 1.

  Returns:
    `step -> beta` on int or float arrays of any shape.
  """
  return optax.linear_schedule(beta_start, beta_end, max(num_timesteps - 1, 1))


def cosine_beta_schedule(num_timesteps: int = 1000, s: float = 0.008,
                         max_beta: float = 0.999) -> optax.Schedule:
  """Cosine schedule of Nichol & Dhariwal 2021, eq. 17: abar(u) = f(u)/f(0).

  f(u) = cos(theta(u))^2, theta(u) = ((u + s) / (1 + s)) pi / 2. The offset `s`
  keeps beta_0 from being vanishingly small; the clip at 0.999 avoids the
  singularity at u = 1. beta_t = 1 - f((t+1)/T) / f(t/T) is computed as
  sin(b - a) sin(b + a) / cos(a)^2 (a, b = theta(t/T), theta((t+1)/T)),
  which does not cancel in float32.

  Returns:
    `step -> beta` for steps 0 .. T-1.
  """
  def schedule(step):
    t = jnp.asarray(step, jnp.result_type(float))
    a = (t / num_timesteps + s) / (1 + s) * (math.pi / 2)
    b = ((t + 1) / num_timesteps + s) / (1 + s) * (math.pi / 2)
    return jnp.minimum(jnp.sin(b - a) * jnp.sin(b + a) / jnp.cos(a) ** 2, max_beta)
  return schedule


def sigmoid_beta_schedule(num_timesteps: int = 1000, start: float = -3.0, end: float = 3.0,
                          tau: float = 1.0, max_beta: float = 0.999) -> optax.Schedule:
  """Sigmoid schedule (Jabri et al. 2023, RIN; Chen 2023, "On the importance of noise scheduling").

  abar(u) = (sigmoid(end/tau) - sigmoid(z(u))) / (sigmoid(end/tau) - sigmoid(start/tau)),
  z(u) = (u (end - start) + start) / tau, which falls from 1 to 0 as u goes
  from 0 to 1; a larger `tau` gives more weight to high noise. With
  sigmoid(x) - sigmoid(y) = sinh((x - y)/2) / (2 cosh(x/2) cosh(y/2)),
  beta_t = 1 - abar((t+1)/T) / abar(t/T) has a form that does not cancel.

  Returns:
    `step -> beta` for steps 0 .. T-1.
  """
  z_end = end / tau

  def schedule(step):
    t = jnp.asarray(step, jnp.result_type(float))
    z0 = (t / num_timesteps * (end - start) + start) / tau
    z1 = ((t + 1) / num_timesteps * (end - start) + start) / tau
    beta = (jnp.sinh((z1 - z0) / 2) / jnp.cosh(z1 / 2)) / (jnp.sinh((z_end - z0) / 2) / jnp.cosh(z_end / 2))
    return jnp.minimum(beta, max_beta)
  return schedule


# name -> (num_timesteps, **knobs) -> optax.Schedule
BETA_SCHEDULES = {
    'linear': linear_beta_schedule,
    'cosine': cosine_beta_schedule,
    'sigmoid': sigmoid_beta_schedule,
}

# What a network predicts. VP-discrete (DDPM-style) networks predict eps, x0 or
# v = sqrt(abar) eps - sqrt(1 - abar) x0; 'edm' is Karras et al.'s preconditioned F.
VP_PARAMETERIZATIONS = ('eps', 'x0', 'v')
PARAMETERIZATIONS = VP_PARAMETERIZATIONS + ('edm',)

# The variance of a VP reverse step p(x_{t-1} | x_t): 'posterior' (tilde-beta_t, Ho et
# al.'s "fixedsmall") or 'beta' (beta_t, "fixedlarge"); DDPM sampling and the bound.
DDPM_VARIANCES = ('posterior', 'beta')


class VPSchedule(flax.struct.PyTreeNode):
  """A discrete variance-preserving schedule tabulated over T steps.

  A pytree, so it can be passed into jitted functions; `T` is static (a shape).

  Attributes:
    betas: [T] float (float32, or float64 when x64 is on), beta_t for t = 0 .. T-1.
    alphas_cumprod: [T] float, abar_t = prod_{s <= t} (1 - beta_s).
  """
  betas: jax.Array
  alphas_cumprod: jax.Array

  @classmethod
  def from_beta_fn(cls, beta_fn: optax.Schedule, num_timesteps: int) -> 'VPSchedule':
    """Tabulates any `step -> beta` schedule over steps 0 .. T-1."""
    betas = jnp.asarray(beta_fn(jnp.arange(num_timesteps)), jnp.result_type(float))
    # A sum of logs keeps abar accurate in float32 over T = 1000 factors.
    alphas_cumprod = jnp.exp(jnp.cumsum(jnp.log1p(-betas)))  # = exp(log_alphas_cumprod)
    return cls(betas=betas, alphas_cumprod=alphas_cumprod)

  @classmethod
  def create(cls, name: str = 'linear', num_timesteps: int = 1000, **knobs) -> 'VPSchedule':
    """The schedule `BETA_SCHEDULES[name](num_timesteps, **knobs)`, tabulated.

    Raises:
      ValueError: for an unknown name.
    """
    if name not in BETA_SCHEDULES:
      raise ValueError(f'Unknown beta schedule {name!r}; accepted: {sorted(BETA_SCHEDULES)}.')
    return cls.from_beta_fn(BETA_SCHEDULES[name](num_timesteps, **knobs), num_timesteps)

  @property
  def num_timesteps(self) -> int:
    return self.betas.shape[0]

  @property
  def alphas(self) -> jax.Array:
    """[T] alpha_t = 1 - beta_t."""
    return 1.0 - self.betas

  @property
  def log_alphas_cumprod(self) -> jax.Array:
    """[T] log abar_t, summed from the betas (so 1 - abar = -expm1(log abar) stays accurate at t = 0)."""
    return jnp.cumsum(jnp.log1p(-self.betas))

  @property
  def sigmas(self) -> jax.Array:
    """[T] increasing sigma_t = sqrt((1 - abar_t) / abar_t), the sigma form of step t."""
    return jnp.exp(self.log_sigmas)

  @property
  def log_sigmas(self) -> jax.Array:
    """[T] log sigma_t = 0.5 (log(1 - abar) - log abar), without cancellation at small t."""
    log_abar = self.log_alphas_cumprod
    return 0.5 * (jnp.log(-jnp.expm1(log_abar)) - log_abar)

  @property
  def sigma_min(self) -> jax.Array:
    return self.sigmas[0]

  @property
  def sigma_max(self) -> jax.Array:
    return self.sigmas[-1]

  def sigma_to_t(self, sigma: jax.Array) -> jax.Array:
    """Continuous timestep of a noise level, linear in log sigma between the T grid points.

    Noise levels outside [sigma_min, sigma_max] clamp to t = 0 or T - 1.

    Args:
      sigma: any shape, > 0.

    Returns:
      t in [0, T - 1], float, same shape.
    """
    log_sigmas = self.log_sigmas  # [T] increasing
    log_sigma = jnp.log(jnp.asarray(sigma, log_sigmas.dtype))
    log_sigma = jnp.clip(log_sigma, log_sigmas[0], log_sigmas[-1])
    # Bracketing interval by comparing against all T nodes: a [..., T] compare is cheap
    # for the [B] noise levels of a sampler step and, unlike a binary search, adds no loop.
    idx = jnp.clip(jnp.sum(log_sigmas <= log_sigma[..., None], axis=-1) - 1, 0, self.num_timesteps - 2)
    lo, hi = log_sigmas[idx], log_sigmas[idx + 1]
    frac = jnp.where(hi > lo, (log_sigma - lo) / jnp.where(hi > lo, hi - lo, 1.0), 0.0)
    return idx.astype(log_sigmas.dtype) + frac

  def t_to_sigma(self, t: jax.Array) -> jax.Array:
    """Noise level of a (continuous) timestep in [0, T - 1]; the inverse of `sigma_to_t`."""
    log_sigmas = self.log_sigmas
    t = jnp.clip(jnp.asarray(t, log_sigmas.dtype), 0, self.num_timesteps - 1)
    idx = jnp.clip(jnp.floor(t).astype(jnp.int32), 0, self.num_timesteps - 2)
    frac = t - idx
    return jnp.exp((1 - frac) * log_sigmas[idx] + frac * log_sigmas[idx + 1])


# ----------------------------------------------------------------------------
# Sampling step schedules: decreasing sigmas [n + 1] ending with 0.


def _append_zero(sigmas: jax.Array) -> jax.Array:
  return jnp.concatenate([sigmas, jnp.zeros((1,), sigmas.dtype)])


def _check_n(n: int) -> None:
  if not isinstance(n, int) or n < 1:
    raise ValueError(f'The number of sampling steps must be a Python int >= 1, got {n!r}.')


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> jax.Array:
  """Karras et al. 2022 (EDM), eq. 5: uniform steps in sigma^(1/rho).

  Args:
    n: number of steps.
    sigma_min, sigma_max: the last and first nonzero noise level.
    rho: 7 in EDM; larger concentrates steps at low noise.

  Returns:
    [n + 1] decreasing, sigmas[0] = sigma_max, sigmas[n - 1] = sigma_min, sigmas[n] = 0.
  """
  _check_n(n)
  ramp = jnp.linspace(0.0, 1.0, n)
  lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
  return _append_zero((hi + ramp * (lo - hi)) ** rho)


def logsnr_uniform_sigmas(n: int, sigma_min: float, sigma_max: float) -> jax.Array:
  """Uniform steps in log-SNR = -2 log sigma (Lu et al. 2022, DPM-Solver's "logSNR" spacing).

  This is also k-diffusion's "exponential" schedule.

  Returns:
    [n + 1] decreasing from sigma_max to sigma_min, then 0.
  """
  _check_n(n)
  return _append_zero(jnp.exp(jnp.linspace(math.log(sigma_max), math.log(sigma_min), n)))


def polyexponential_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> jax.Array:
  """log sigma = log sigma_min + ramp^rho (log sigma_max - log sigma_min), ramp 1 -> 0.

  rho = 1 is `logsnr_uniform_sigmas`; rho > 1 puts more steps at low noise.

  Returns:
    [n + 1] decreasing, ending with 0.
  """
  _check_n(n)
  ramp = jnp.linspace(1.0, 0.0, n) ** rho
  return _append_zero(jnp.exp(math.log(sigma_min) + ramp * (math.log(sigma_max) - math.log(sigma_min))))


VP_SPACINGS = ('trailing', 'leading', 'linspace')


def vp_uniform_time_sigmas(schedule: VPSchedule, n: int, spacing: str = 'trailing') -> jax.Array:
  """Noise levels of n integer timesteps of a VP-discrete model, uniform in t (DDIM style).

  Spacings (T = schedule.num_timesteps, c = T // n):
    * 'trailing' (Lin et al. 2024, "Common diffusion noise schedules and sample
      steps are flawed"): t = round(T - k T / n) - 1 for k = 0 .. n-1, so the
      first step starts at t = T - 1 (pure noise). The default; with n = T it
      visits every step T-1, ..., 0 like the DDPM sampler.
    * 'leading' (Song et al. 2021, DDIM's original): t = k c for k = n-1 .. 0.
      It never starts from t = T - 1 unless c = 1.
    * 'linspace': t = round(linspace(T - 1, 0, n)).

  Args:
    schedule: the model's VP schedule.
    n: number of steps, 1 <= n <= T.
    spacing: one of VP_SPACINGS.

  Returns:
    [n + 1] sigmas of the chosen timesteps, decreasing, then 0.
  """
  _check_n(n)
  T = schedule.num_timesteps
  if n > T:
    raise ValueError(f'Cannot take n={n} distinct steps of a schedule with T={T} timesteps.')
  if spacing == 'trailing':
    ts = jnp.round(T - jnp.arange(n) * (T / n)).astype(jnp.int32) - 1
  elif spacing == 'leading':
    ts = (jnp.arange(n)[::-1] * (T // n)).astype(jnp.int32)
  elif spacing == 'linspace':
    ts = jnp.round(jnp.linspace(T - 1, 0, n)).astype(jnp.int32)
  else:
    raise ValueError(f'Unknown spacing {spacing!r}; accepted: {VP_SPACINGS}.')
  return _append_zero(schedule.sigmas[ts])


def check_sigmas(sigmas) -> jax.Array:
  """Validates a sampling schedule: [n + 1], n >= 1, finite, strictly decreasing, ending with 0.

  Values are checked where they are known at trace time; traced sigmas (a
  caller that jits over them) are returned as they are.

  Returns:
    sigmas as a jax array.

  Raises:
    ValueError: saying what is wrong and what is accepted.
  """
  sigmas = jnp.asarray(sigmas)
  if sigmas.ndim != 1 or sigmas.shape[0] < 2:
    raise ValueError(f'sigmas must be a 1-D array [n + 1] with n >= 1, got shape {sigmas.shape}.')
  try:
    s = np.asarray(sigmas)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return sigmas  # Traced (the caller jitted over sigmas): checked by whoever built them.
  if not np.all(np.isfinite(s)):
    raise ValueError(f'sigmas must be finite, got {s}.')
  if s[-1] != 0:
    raise ValueError(f'sigmas must end with 0 (the clean sample), got last entry {s[-1]}; '
                     'build them with genjax.diffusion.schedules (e.g. karras_sigmas).')
  if not np.all(np.diff(s) < 0):
    raise ValueError(f'sigmas must be strictly decreasing, got {s}.')
  return sigmas



# name -> fn(n, sigma_min, sigma_max, **knobs), except 'vp_uniform': fn(schedule, n, **knobs).
SIGMA_SCHEDULES = {
    'karras': karras_sigmas,
    'logsnr': logsnr_uniform_sigmas,
    'exponential': logsnr_uniform_sigmas,
    'polyexponential': polyexponential_sigmas,
    'vp_uniform': vp_uniform_time_sigmas,
}


def get_sigmas(name: str, n: int, *, schedule: VPSchedule | None = None,
               sigma_min: float | None = None, sigma_max: float | None = None, **knobs) -> jax.Array:
  """One entry point for all sigma schedules.

  Args:
    name: a key of SIGMA_SCHEDULES.
    n: number of steps.
    schedule: a VP model's schedule; required for 'vp_uniform', and the
      default sigma range [schedule.sigma_min, schedule.sigma_max] for the others.
    sigma_min, sigma_max: the range, overriding the schedule's.
    **knobs: passed on (rho, spacing).

  Returns:
    [n + 1] decreasing sigmas ending with 0.
  """
  if name not in SIGMA_SCHEDULES:
    raise ValueError(f'Unknown sigma schedule {name!r}; accepted: {sorted(SIGMA_SCHEDULES)}.')
  if name == 'vp_uniform':
    if schedule is None:
      raise ValueError("Sigma schedule 'vp_uniform' needs the model's VPSchedule (schedule=...).")
    return vp_uniform_time_sigmas(schedule, n, **knobs)
  if schedule is not None:
    sigma_min = float(schedule.sigma_min) if sigma_min is None else sigma_min
    sigma_max = float(schedule.sigma_max) if sigma_max is None else sigma_max
  if sigma_min is None or sigma_max is None or not 0 < sigma_min < sigma_max:
    raise ValueError(f'Sigma schedule {name!r} needs 0 < sigma_min < sigma_max (or a schedule), '
                     f'got sigma_min={sigma_min}, sigma_max={sigma_max}.')
  return SIGMA_SCHEDULES[name](n, sigma_min, sigma_max, **knobs)


# ----------------------------------------------------------------------------
# Continuous-sigma training utilities (EDM, min-SNR).


def edm_precond(sigma: jax.Array, sigma_data: float = 0.5
                ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """EDM preconditioning (Karras et al. 2022, Table 1): D(x) = c_skip x + c_out F(c_in x, c_noise).

  The network input `c_in x` and its target `(x0 - c_skip x) / c_out` both
  have unit variance when the data have standard deviation `sigma_data`.

  Args:
    sigma: noise levels, any shape (typically [B] or [B, 1, 1, 1]).
    sigma_data: the data's standard deviation (0.5 for images in [-1, 1]).

  Returns:
    (c_skip, c_out, c_in, c_noise), each shaped like `sigma`; c_noise = log(sigma) / 4.
  """
  sigma = jnp.asarray(sigma)
  total = sigma ** 2 + sigma_data ** 2
  c_skip = sigma_data ** 2 / total
  c_out = sigma * sigma_data * jax.lax.rsqrt(total)
  c_in = jax.lax.rsqrt(total)
  c_noise = 0.25 * jnp.log(sigma)
  return c_skip, c_out, c_in, c_noise


def edm_loss_weight(sigma: jax.Array, sigma_data: float = 0.5) -> jax.Array:
  """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out^2 (EDM eq. 8).

  Weights ||D(x) - x0||^2 so that the loss on the raw network output F has unit weight.

  Args:
    sigma: any shape. Returns: same shape.
  """
  sigma = jnp.asarray(sigma)
  return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def edm_sample_sigma(rng: jax.Array, shape: tuple[int, ...], p_mean: float = -1.2,
                     p_std: float = 1.2) -> jax.Array:
  """Training noise levels of EDM: ln(sigma) ~ N(p_mean, p_std^2) (Karras et al. 2022, Table 1).

  Returns:
    sigmas of `shape`, float32.
  """
  return jnp.exp(p_mean + p_std * jax.random.normal(rng, shape))


def snr(sigma: jax.Array) -> jax.Array:
  """Signal-to-noise ratio abar / (1 - abar) = 1 / sigma^2 of the sigma form. Same shape."""
  return 1.0 / jnp.square(sigma)


def min_snr_weight(sigma: jax.Array, gamma: float = 5.0, parameterization: str = 'eps') -> jax.Array:
  """Min-SNR-gamma loss weight (Hang et al. 2023) for the MSE of each parameterization.

  The target weighting on the x0 error is min(SNR, gamma). Because
  ||eps - eps_hat||^2 = SNR ||x0 - x0_hat||^2 and
  ||v - v_hat||^2 = (SNR + 1) ||x0 - x0_hat||^2, the weight on each loss is:
    'x0': min(SNR, gamma);  'eps': min(SNR, gamma) / SNR;  'v': min(SNR, gamma) / (SNR + 1).

  Args:
    sigma: noise levels (sigma form; for VP step t use schedule.sigmas[t]), any shape.
    gamma: the clamp, 5 in the paper.
    parameterization: one of VP_PARAMETERIZATIONS.

  Returns:
    weights shaped like `sigma`.
  """
  s = snr(sigma)
  clamped = jnp.minimum(s, gamma)
  if parameterization == 'x0':
    return clamped
  if parameterization == 'eps':
    return clamped / s
  if parameterization == 'v':
    return clamped / (s + 1.0)
  raise ValueError(f'Unknown parameterization {parameterization!r}; '
                   f'accepted: {VP_PARAMETERIZATIONS}.')
