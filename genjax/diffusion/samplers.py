"""Samplers: pure functions `sample_NAME(denoise, x, sigmas, *, rng=None, **knobs) -> x`.

The contract (k-diffusion style, in JAX):
  * `denoise(x, sigma) -> x0_hat` in sigma form, x = x0 + sigma * eps (see
    `genjax.diffusion.denoisers`); samplers call it with a scalar sigma.
  * `x` [B, ...] starts as `sigmas[0] * noise`; `sigmas` [n + 1] is strictly
    decreasing and ends with 0 (`genjax.diffusion.schedules`).
  * Steps loop with `lax.scan`; no parameters, configs or pmap inside:
    callers jit and shard. The last step, to sigma = 0, returns the denoised
    output at sigmas[n - 1] (an Euler step to 0), as in k-diffusion and EDM.
  * Stochastic samplers draw the noise of step i from `fold_in(rng, i)`.
    `rng` may also be a batch of keys [B], one per sample; then sample b's
    noise comes from `fold_in(rng[b], i)` only, so it does not depend on the
    batch it is drawn in (EDM's per-sample seeds).

In sigma form the probability-flow ODE is dx/dsigma = (x - D(x, sigma)) / sigma
(Karras et al. 2022, eq. 3 with s = 1), and with lambda = -log sigma it is
dx/dlambda = D - x, which the exponential integrators (DPM-Solver++, UniPC)
solve exactly for constant D.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Denoiser = Callable[[jax.Array, jax.Array], jax.Array]


# ----------------------------------------------------------------------------
# Shared pieces.


def _check_sigmas(sigmas) -> jax.Array:
  """Validates the step schedule where its values are known at trace time."""
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


def _is_zero(value) -> bool:
  return isinstance(value, (int, float)) and value == 0


def _require_rng(rng, name: str, why: str) -> None:
  if rng is None:
    raise ValueError(f'{name} is stochastic ({why}) and needs rng=<a PRNG key or a batch of keys [B]>.')


def _normal(rng: jax.Array, i: jax.Array, x: jax.Array) -> jax.Array:
  """Noise of step i: normal(fold_in(rng, i)), or per sample for a batch of keys."""
  typed = jnp.issubdtype(rng.dtype, jax.dtypes.prng_key)
  if rng.ndim == (1 if typed else 2):  # a batch of keys, one per sample
    return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, i), x.shape[1:], x.dtype))(rng)
  return jax.random.normal(jax.random.fold_in(rng, i), x.shape, x.dtype)


def _per_sample_norm(v: jax.Array) -> jax.Array:
  """||v_b|| over all but the batch axis: [B]."""
  return jnp.sqrt(jnp.sum(jnp.square(v), axis=tuple(range(1, v.ndim))))


def _steps(body: Callable, carry, sigmas: jax.Array):
  """Runs `carry = body(carry, i, sigmas[i], sigmas[i + 1])` for i = 0 .. n-2 with lax.scan.

  These are the steps that end at a nonzero noise level; each sampler then
  takes the last step, to 0, itself. The carry keeps its dtypes (e.g.
  bfloat16 samples under float32 sigmas).
  """
  n = sigmas.shape[0] - 1

  def step(c, xs):
    new = body(c, *xs)
    return jax.tree.map(lambda old, upd: upd.astype(old.dtype), c, new), None
  carry, _ = jax.lax.scan(step, carry, (jnp.arange(n - 1), sigmas[:-2], sigmas[1:-1]))
  return carry


def _ancestral_sigmas(sigma, sigma_next, eta):
  """Splits a step into a deterministic part to sigma_down and fresh noise sigma_up.

  sigma_up^2 = eta^2 sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2 is eta^2
  times the variance of the posterior q(x_next | x, x0) in sigma form; eta = 1
  is DDPM's ancestral step, eta = 0 the deterministic DDIM/Euler step.
  """
  up = jnp.minimum(sigma_next, eta * sigma_next * jnp.sqrt(sigma ** 2 - sigma_next ** 2) / sigma)
  down = jnp.sqrt(sigma_next ** 2 - up ** 2)
  return down, up


def _final(denoise, x, sigmas):
  """The last step, to sigma = 0: the denoised output."""
  return denoise(x, sigmas[-2]).astype(x.dtype)


# ----------------------------------------------------------------------------
# First-order samplers.


def sample_euler(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None) -> jax.Array:
  """Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1 / k-diffusion).

  x <- x + (sigma_next - sigma) (x - D(x, sigma)) / sigma. Order 1. NFE = n.

  Args:
    denoise: (x [B, ...], sigma) -> x0_hat [B, ...].
    x: [B, ...] initial sample, sigmas[0] * noise.
    sigmas: [n + 1] decreasing, ending with 0.
    rng: ignored (deterministic).

  Returns:
    [B, ...] the sample at sigma = 0.
  """
  sigmas = _check_sigmas(sigmas)

  def body(x, i, sigma, sigma_next):
    return x + (sigma_next - sigma) * (x - denoise(x, sigma)) / sigma
  return _final(denoise, _steps(body, x, sigmas), sigmas)


def sample_ddim(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                eta: float = 0.0) -> jax.Array:
  """DDIM (Song, Meng & Ermon 2021, eq. 12) in sigma form.

  With eps_hat = (x - x0_hat) / sigma: x_next = x0_hat + sigma_down eps_hat + sigma_up z,
  where sigma_up = eta sqrt(posterior variance) (see `_ancestral_sigmas`) and
  sigma_down^2 = sigma_next^2 - sigma_up^2. Dividing DDIM's VP update by
  sqrt(abar_{t-1}) gives exactly this. eta = 0 is deterministic and equals
  Euler in sigma form; eta = 1 is DDPM with the posterior variance. Order 1 for eta = 0.
  NFE = n.

  Args:
    denoise, x, sigmas: the sampler contract.
    rng: PRNG key (or [B] keys); needed when eta != 0. Step i uses fold_in(rng, i).
    eta: 0 (deterministic) to 1 (DDPM-like); >= 0.

  Returns:
    [B, ...] the sample at sigma = 0.
  """
  sigmas = _check_sigmas(sigmas)
  if isinstance(eta, (int, float)) and eta < 0:
    raise ValueError(f'DDIM eta must be >= 0, got {eta}.')
  stochastic = not _is_zero(eta)
  if stochastic:
    _require_rng(rng, 'DDIM', f'eta={eta}')

  def body(x, i, sigma, sigma_next):
    x0 = denoise(x, sigma)
    eps = (x - x0) / sigma
    down, up = _ancestral_sigmas(sigma, sigma_next, eta)
    x = x0 + down * eps
    return x + up * _normal(rng, i, x) if stochastic else x
  return _final(denoise, _steps(body, x, sigmas), sigmas)


DDPM_VARIANCES = ('posterior', 'beta')


def sample_ddpm(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                variance: str = 'posterior') -> jax.Array:
  """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) in sigma form.

  x_next ~ N(mean, var) with the posterior mean of q(x_next | x, x0 = x0_hat),
  mean = x0_hat + (sigma_next / sigma)^2 (x - x0_hat), and var either
    * 'posterior': sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2, the
      posterior variance (tilde-beta); schedule-agnostic, = DDIM with eta = 1;
    * 'beta': (sigma^2 - sigma_next^2)(1 + sigma_next^2) / (1 + sigma^2),
      which is beta_t / abar_{t-1} for a VP-discrete model. With the sigmas of
      a VPSchedule this reproduces the seed's update
      x <- (x - beta / sqrt(1 - abar) eps) / sqrt(alpha) + sqrt(beta) z after
      the scaling x_vp = x / sqrt(1 + sigma^2).
  NFE = n.

  Args:
    denoise, x, sigmas: the sampler contract.
    rng: PRNG key (or [B] keys), required. Step i uses fold_in(rng, i).
    variance: one of DDPM_VARIANCES.

  Returns:
    [B, ...] the sample at sigma = 0 (the last step adds no noise).
  """
  sigmas = _check_sigmas(sigmas)
  if variance not in DDPM_VARIANCES:
    raise ValueError(f'Unknown DDPM variance {variance!r}; accepted: {DDPM_VARIANCES}.')
  _require_rng(rng, 'DDPM', 'ancestral sampling')

  def body(x, i, sigma, sigma_next):
    x0 = denoise(x, sigma)
    mean = x0 + (sigma_next / sigma) ** 2 * (x - x0)
    if variance == 'posterior':
      var = sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2
    else:
      var = (sigma ** 2 - sigma_next ** 2) * (1 + sigma_next ** 2) / (1 + sigma ** 2)
    return mean + jnp.sqrt(var) * _normal(rng, i, x)
  return _final(denoise, _steps(body, x, sigmas), sigmas)


def sample_euler_ancestral(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                           eta: float = 1.0, s_noise: float = 1.0) -> jax.Array:
  """Euler ancestral (k-diffusion; ancestral step of Song et al. 2021 / Ho et al. 2020).

  An Euler step to sigma_down, then fresh noise of std s_noise * sigma_up
  (`_ancestral_sigmas`); with eta = 1 and s_noise = 1 each step samples the
  posterior q(x_next | x, x0_hat). NFE = n.

  Args:
    denoise, x, sigmas: the sampler contract.
    rng: PRNG key (or [B] keys), required. Step i uses fold_in(rng, i).
    eta: scale of the ancestral noise, 0 .. 1.
    s_noise: extra factor on the added noise.

  Returns:
    [B, ...] the sample at sigma = 0.
  """
  sigmas = _check_sigmas(sigmas)
  _require_rng(rng, 'Euler ancestral', 'ancestral sampling')

  def body(x, i, sigma, sigma_next):
    down, up = _ancestral_sigmas(sigma, sigma_next, eta)
    x = x + (down - sigma) * (x - denoise(x, sigma)) / sigma
    return x + s_noise * up * _normal(rng, i, x)
  return _final(denoise, _steps(body, x, sigmas), sigmas)


# ----------------------------------------------------------------------------
# Second-order Runge-Kutta style.


def sample_heun(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float('inf'),
                s_noise: float = 1.0) -> jax.Array:
  """Heun's 2nd-order method with EDM's stochastic churn (Karras et al. 2022, Algorithm 2).

  Each step first raises the noise level to sigma_hat = sigma (1 + gamma),
  gamma = min(s_churn / n, sqrt(2) - 1) for s_tmin <= sigma <= s_tmax, by
  adding noise of std s_noise sqrt(sigma_hat^2 - sigma^2); then an Euler step
  and a trapezoidal correction. The last step (to 0) is Euler. With
  s_churn = 0 it is the deterministic 2nd-order solver. NFE = 2n - 1.

  Args:
    denoise, x, sigmas: the sampler contract.
    rng: PRNG key (or [B] keys); needed when s_churn != 0. Step i uses fold_in(rng, i).
    s_churn, s_tmin, s_tmax, s_noise: EDM's stochasticity knobs (Table 5).

  Returns:
    [B, ...] the sample at sigma = 0.
  """
  sigmas = _check_sigmas(sigmas)
  n = sigmas.shape[0] - 1
  stochastic = not _is_zero(s_churn)
  if stochastic:
    _require_rng(rng, 'Heun', f's_churn={s_churn}')

  def churn(x, i, sigma):
    if not stochastic:
      return x, sigma
    in_range = (sigma >= s_tmin) & (sigma <= s_tmax)
    gamma = jnp.where(in_range, jnp.minimum(s_churn / n, math.sqrt(2.0) - 1.0), 0.0)
    sigma_hat = sigma * (1.0 + gamma)
    x = x + s_noise * jnp.sqrt(sigma_hat ** 2 - sigma ** 2) * _normal(rng, i, x)
    return x, sigma_hat

  def body(x, i, sigma, sigma_next):
    x, sigma_hat = churn(x, i, sigma)
    d = (x - denoise(x, sigma_hat)) / sigma_hat
    x_euler = x + (sigma_next - sigma_hat) * d
    d_next = (x_euler - denoise(x_euler, sigma_next)) / sigma_next
    return x + (sigma_next - sigma_hat) * 0.5 * (d + d_next)
  x = _steps(body, x, sigmas)
  x, sigma_hat = churn(x, n - 1, sigmas[-2])
  return denoise(x, sigma_hat).astype(x.dtype)


def sample_dpmpp_2s(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                    r: float = 0.5) -> jax.Array:
  """DPM-Solver++(2S), single-step 2nd order (Lu et al. 2022, "DPM-Solver++", Algorithm 1).

  With h = log(sigma / sigma_next), an intermediate point at lambda + r h:
  u = (sigma_mid / sigma) x - expm1(-r h) D(x, sigma), then
  x_next = (sigma_next / sigma) x - expm1(-h) ((1 - 1/(2r)) D(x) + 1/(2r) D(u)).
  Deterministic (k-diffusion's 2S ancestral with eta = 0). The last step is
  the denoised output. NFE = 2n - 1.

  Args:
    denoise, x, sigmas: the sampler contract.
    rng: ignored.
    r: position of the intermediate point in log sigma, 0 < r <= 1 (1/2: midpoint).

  Returns:
    [B, ...] the sample at sigma = 0.
  """
  sigmas = _check_sigmas(sigmas)
  if isinstance(r, (int, float)) and not 0 < r <= 1:
    raise ValueError(f'DPM-Solver++(2S) needs 0 < r <= 1, got {r}.')

  def body(x, i, sigma, sigma_next):
    h = jnp.log(sigma / sigma_next)
    sigma_mid = sigma * jnp.exp(-r * h)
    x0 = denoise(x, sigma)
    u = (sigma_mid / sigma) * x - jnp.expm1(-r * h) * x0
    x0_mid = denoise(u, sigma_mid)
    x0_eff = (1 - 1 / (2 * r)) * x0 + 1 / (2 * r) * x0_mid
    return (sigma_next / sigma) * x - jnp.expm1(-h) * x0_eff
  return _final(denoise, _steps(body, x, sigmas), sigmas)


# ----------------------------------------------------------------------------
# Multistep exponential integrators (data prediction).


def _dpmpp_multistep(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, order: int) -> jax.Array:
  """DPM-Solver++ multistep of order 2 or 3 with lower-order warm-up (Lu et al. 2022).

  In lambda = -log sigma the exact step is
  x_next = e^{-h} x + integral_0^h e^{-(h - u)} D(lambda + u) du; D is
  replaced by its polynomial through the last `order` denoised values. Step
  i uses order min(i + 1, order).
  """
  sigmas = _check_sigmas(sigmas)

  def body(carry, i, sigma, sigma_next):
    x, x0_prev1, x0_prev2, h_prev1, h_prev2 = carry
    x0 = denoise(x, sigma)
    h = jnp.log(sigma / sigma_next)
    phi1 = jnp.expm1(-h)  # e^{-h} - 1 < 0
    x_first = (sigma_next / sigma) * x - phi1 * x0  # DPM-Solver++(1) = DDIM
    # Step ratios; placeholders (=1) before the history exists keep the unused branches finite.
    r0 = jnp.where(i >= 1, h_prev1, h) / h
    # 2M (Algorithm 2): x0_eff = (1 + 1/(2 r)) x0_i - 1/(2 r) x0_{i-1}.
    x_next = jnp.where(i >= 1, x_first - phi1 * (x0 - x0_prev1) / (2 * r0), x_first)
    if order == 3:
      r1 = jnp.where(i >= 2, h_prev2, h) / h
      d1_0 = (x0 - x0_prev1) / r0
      d1_1 = (x0_prev1 - x0_prev2) / r1
      d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)  # ~ h D'
      d2 = 2 * (d1_0 - d1_1) / (r0 + r1)  # ~ h^2 D''
      phi2 = phi1 / h + 1  # (integral of e^{-(h-u)} u du) / h
      phi3 = phi2 / h - 0.5  # -(integral of e^{-(h-u)} u^2 / 2 du) / h^2
      x_next = jnp.where(i >= 2, x_first + phi2 * d1 - phi3 * d2, x_next)
    return x_next, x0, x0_prev1, h, h_prev1

  zero = jnp.zeros((), sigmas.dtype)
  carry = (x, jnp.zeros_like(x), jnp.zeros_like(x), zero, zero)
  x = _steps(body, carry, sigmas)[0]
  return _final(denoise, x, sigmas)


def sample_dpmpp_2m(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None) -> jax.Array:
  """DPM-Solver++(2M), multistep 2nd order (Lu et al. 2022, Algorithm 2).

  x_next = (sigma_next / sigma) x - expm1(-h) ((1 + 1/(2r)) D_i - 1/(2r) D_{i-1}),
  r = h_{i-1} / h_i, h = log(sigma / sigma_next); the first step is
  first order (DDIM), the last the denoised output. NFE = n.

  Args:
    denoise, x, sigmas: the sampler contract. rng: ignored.

  Returns:
    [B, ...] the sample at sigma = 0.
  """
  return _dpmpp_multistep(denoise, x, sigmas, order=2)


def sample_dpmpp_3m(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None) -> jax.Array:
  """DPM-Solver++(3M), multistep 3rd order (Lu et al. 2022; Appendix, multistep order 3).

  Quadratic extrapolation of D in lambda through the last three denoised
  values, integrated exactly against e^{-(h - u)}:
  x_next = e^{-h} x - phi1 D_i + phi2 D1 - phi3 D2 with D1 ~ h D', D2 ~ h^2 D''.
  Warm-up: orders 1 and 2 on the first two steps; the last step is the
  denoised output. NFE = n.

  Args:
    denoise, x, sigmas: the sampler contract. rng: ignored.

  Returns:
    [B, ...] the sample at sigma = 0.
  """
  return _dpmpp_multistep(denoise, x, sigmas, order=3)


def sample_dpmpp_2m_sde(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                        eta: float = 1.0, s_noise: float = 1.0) -> jax.Array:
  """DPM-Solver++(2M) SDE (Lu et al. 2022, "DPM-Solver++", SDE solver of Appendix B).

  First-order part, exact for constant D on the reverse SDE with noise scale eta:
  x_next = (sigma_next / sigma) e^{-eta h} x + (1 - e^{-(1+eta) h}) D_i
           + s_noise sigma_next sqrt(1 - e^{-2 eta h}) z,
  plus the 2nd-order multistep correction
  0.5 (1 - e^{-(1+eta) h}) (D_i - D_{i-1}) / r (midpoint form), r = h_{i-1} / h_i.
  eta = 0 is DPM-Solver++(2M); eta = 1 with the correction dropped is the
  DDPM posterior step. The last step is the denoised output. NFE = n.

  Args:
    denoise, x, sigmas: the sampler contract.
    rng: PRNG key (or [B] keys), required when eta != 0. Step i uses fold_in(rng, i).
    eta: SDE noise scale (1: the reverse SDE).
    s_noise: extra factor on the added noise.

  Returns:
    [B, ...] the sample at sigma = 0.
  """
  sigmas = _check_sigmas(sigmas)
  stochastic = not _is_zero(eta)
  if stochastic:
    _require_rng(rng, 'DPM-Solver++(2M) SDE', f'eta={eta}')

  def body(carry, i, sigma, sigma_next):
    x, x0_prev, h_prev = carry
    x0 = denoise(x, sigma)
    h = jnp.log(sigma / sigma_next)
    c = -jnp.expm1(-(1 + eta) * h)  # 1 - e^{-(1 + eta) h}
    x_next = (sigma_next / sigma) * jnp.exp(-eta * h) * x + c * x0
    r = jnp.where(i >= 1, h_prev, h) / h
    x_next = jnp.where(i >= 1, x_next + 0.5 * c * (x0 - x0_prev) / r, x_next)
    if stochastic:
      std = sigma_next * jnp.sqrt(-jnp.expm1(-2 * eta * h))
      x_next = x_next + s_noise * std * _normal(rng, i, x)
    return x_next, x0, h

  x = _steps(body, (x, jnp.zeros_like(x), jnp.zeros((), sigmas.dtype)), sigmas)[0]
  return _final(denoise, x, sigmas)


def _unipc_coefficients(k: int, order: int, rks_hist: jax.Array, h: jax.Array):
  """UniPC-bh2 coefficients for step order k (static), padded to `order - 1` history slots.

  Solves R_k rho = g_k (Zhao et al. 2023, eqs. 8-9 / Algorithms 2-3) with
  R_k[j, m] = r_m^j, g_k[j] = j! phi_{j+2}(-h) h-moments / B(h), B(h) = e^{-h} - 1 (bh2).

  Returns:
    rks [order-1] (padded with 1), rhos_p [order-1], rhos_c [order-1] (padded
    with 0), and rho_c_new (the weight of the new model value).
  """
  dtype = h.dtype
  hh = -h  # data prediction integrates e^{-h}
  h_phi_1 = jnp.expm1(hh)
  b_h = h_phi_1  # the bh2 choice of B(h)
  rks = jnp.concatenate([rks_hist[:k - 1], jnp.ones((1,), dtype)])  # [k]
  b, h_phi_k, factorial = [], h_phi_1 / hh - 1, 1
  for j in range(1, k + 1):
    b.append(h_phi_k * factorial / b_h)
    factorial *= j + 1
    h_phi_k = h_phi_k / hh - 1 / factorial
  b = jnp.stack(b)  # [k]
  R = jnp.stack([rks ** j for j in range(k)])  # [k, k]
  if k == 1:
    rhos_p, rhos_c = jnp.zeros((0,), dtype), jnp.full((1,), 0.5, dtype)
  elif k == 2:
    # The paper's simplified UniP-2 (rho = 1/2) and the full UniC-2 solve.
    rhos_p, rhos_c = jnp.full((1,), 0.5, dtype), jnp.linalg.solve(R, b)
  else:
    rhos_p, rhos_c = jnp.linalg.solve(R[:-1, :-1], b[:-1]), jnp.linalg.solve(R, b)
  pad = order - k
  rks_pad = jnp.concatenate([rks[:-1], jnp.ones((pad,), dtype)])
  rhos_p = jnp.concatenate([rhos_p, jnp.zeros((pad,), dtype)])
  rhos_c_hist = jnp.concatenate([rhos_c[:-1], jnp.zeros((pad,), dtype)])
  return rks_pad, rhos_p, rhos_c_hist, rhos_c[-1]


def sample_unipc(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                 order: int = 3) -> jax.Array:
  """UniPC (Zhao et al. 2023), bh2 variant, data prediction, multistep.

  Each step is a UniP-k predictor (order k) to sigma_next, one model call
  there, and the UniC corrector that reuses that call (raising the order by
  one; the call is also the history for the next step, so the corrector is
  free). k = min(order, i + 1, n - i): lower order while history builds up
  and on the final steps, as the paper's implementation does. The last step
  is the denoised output. NFE = n.

  Args:
    denoise, x, sigmas: the sampler contract. rng: ignored.
    order: predictor order, 1 .. 3 (UniPC-2 for guided sampling, UniPC-3 unconditional).

  Returns:
    [B, ...] the sample at sigma = 0.
  """
  sigmas = _check_sigmas(sigmas)
  if order not in (1, 2, 3):
    raise ValueError(f'UniPC order must be 1, 2 or 3, got {order!r}.')
  n = sigmas.shape[0] - 1
  branches = [functools.partial(_unipc_coefficients, k, order) for k in range(1, order + 1)]

  def body(carry, i, sigma, sigma_next):
    x, x0s, lams = carry  # x0s: `order` model values, newest first; lams [order]: their -log sigma
    lam, lam_next = -jnp.log(sigma), -jnp.log(sigma_next)
    h = lam_next - lam
    k = jnp.minimum(jnp.minimum(order, i + 1), n - i)
    rks, rhos_p, rhos_c, rho_new = jax.lax.switch(k - 1, branches, (lams[1:] - lam) / h, h)
    d1s = [(x0s[j + 1] - x0s[0]) / rks[j] for j in range(order - 1)]
    b_h = jnp.expm1(-h)
    x_base = (sigma_next / sigma) * x - b_h * x0s[0]
    x_pred = x_base - b_h * sum((rhos_p[j] * d1s[j] for j in range(order - 1)), jnp.zeros_like(x))
    x0_new = denoise(x_pred, sigma_next)
    corr = sum((rhos_c[j] * d1s[j] for j in range(order - 1)), rho_new * (x0_new - x0s[0]))
    x_corr = x_base - b_h * corr
    return x_corr, (x0_new,) + x0s[:-1], jnp.concatenate([lam_next[None], lams[:-1]])

  x0 = denoise(x, sigmas[0]).astype(x.dtype)
  x0s = (x0,) + (jnp.zeros_like(x),) * (order - 1)
  lams = jnp.concatenate([-jnp.log(sigmas[:1]), jnp.zeros((order - 1,), sigmas.dtype)])
  _, x0s, _ = _steps(body, (x, x0s, lams), sigmas)
  # The final step (order 1, to sigma = 0) is the last model value: no extra call.
  return x0s[0]


_IPNDM_COEFFS = np.array([  # Adams-Bashforth coefficients of orders 1-4, newest first
    [1, 0, 0, 0],
    [3 / 2, -1 / 2, 0, 0],
    [23 / 12, -16 / 12, 5 / 12, 0],
    [55 / 24, -59 / 24, 37 / 24, -9 / 24],
])


def sample_ipndm(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                 max_order: int = 4) -> jax.Array:
  """Improved PNDM (Zhang & Chen 2023, DEIS paper; as used by Zhou et al. 2024).

  Adams-Bashforth with fixed coefficients on the Euler derivative
  d = (x - D) / sigma: x_next = x + (sigma_next - sigma) sum_j c_j d_{i-j},
  order min(i + 1, max_order). On smooth non-uniform grids (Karras)
  the fixed coefficients limit the asymptotic order to 2, yet its error
  constant is small at few steps. The last step is the denoised output. NFE = n.

  Args:
    denoise, x, sigmas: the sampler contract. rng: ignored.
    max_order: 1 .. 4.

  Returns:
    [B, ...] the sample at sigma = 0.
  """
  sigmas = _check_sigmas(sigmas)
  if max_order not in (1, 2, 3, 4):
    raise ValueError(f'iPNDM max_order must be 1 .. 4, got {max_order!r}.')
  coeffs = jnp.asarray(_IPNDM_COEFFS[:max_order, :max_order], sigmas.dtype)

  def body(carry, i, sigma, sigma_next):
    x, ds = carry  # the previous max_order - 1 derivatives, newest first
    ds = ((x - denoise(x, sigma)) / sigma,) + ds
    c = coeffs[jnp.minimum(i, max_order - 1)]  # zeros beyond the current order
    d_eff = sum(c[j] * ds[j] for j in range(max_order))
    return x + (sigma_next - sigma) * d_eff, ds[:-1]

  x = _steps(body, (x, (jnp.zeros_like(x),) * (max_order - 1)), sigmas)[0]
  return _final(denoise, x, sigmas)


# ----------------------------------------------------------------------------
# Predictor-corrector.


def sample_pc_langevin(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                       snr: float = 0.16, n_corrector_steps: int = 1) -> jax.Array:
  """Predictor-corrector sampling (Song et al. 2021, score SDE, Algorithms 2 and 4).

  At each noise level: `n_corrector_steps` Langevin steps
  x <- x + e s + sqrt(2 e) z with the score s = (D(x, sigma) - x) / sigma^2 and
  step e = 2 (snr mean_b ||z_b|| / mean_b ||s_b||)^2, then the ancestral
  (reverse diffusion) predictor to the next level, which in sigma form is the
  posterior step of `sample_ddpm`. NFE = n (1 + n_corrector_steps).

  The norms are averaged over the batch, as in Song et al.'s code: a
  per-sample ratio would make the step depend on the state, and unadjusted
  Langevin with a state-dependent step does not keep its target (on 16-D
  Gaussian data it inflates the variance by 20-30%). So, unlike the other
  samplers, a sample depends slightly on its batch through e. With a
  constant step the stationary variance is v / (1 - e / (2 v)), a relative
  bias of about snr^2 (2.6% at snr = 0.16).

  Args:
    denoise, x, sigmas: the sampler contract.
    rng: PRNG key (or [B] keys), required. Level i, draw j uses
      fold_in(rng, i (n_corrector_steps + 1) + j).
    snr: the corrector's signal-to-noise ratio (0.16 for VE on CIFAR-10).
    n_corrector_steps: Langevin steps per level, a Python int >= 0.

  Returns:
    [B, ...] the sample at sigma = 0.
  """
  sigmas = _check_sigmas(sigmas)
  _require_rng(rng, 'Predictor-corrector', 'Langevin and ancestral steps')
  if not isinstance(n_corrector_steps, int) or n_corrector_steps < 0:
    raise ValueError(f'n_corrector_steps must be a Python int >= 0, got {n_corrector_steps!r}.')
  m = n_corrector_steps
  n = sigmas.shape[0] - 1

  def correct(x, i, sigma):
    def langevin(j, x):
      score = (denoise(x, sigma) - x) / sigma ** 2
      z = _normal(rng, i * (m + 1) + j, x)
      step = 2 * (snr * jnp.mean(_per_sample_norm(z)) / (jnp.mean(_per_sample_norm(score)) + 1e-20)) ** 2
      return (x + step * score + jnp.sqrt(2 * step) * z).astype(x.dtype)
    return jax.lax.fori_loop(0, m, langevin, x)

  def body(x, i, sigma, sigma_next):
    x = correct(x, i, sigma)
    x0 = denoise(x, sigma)
    mean = x0 + (sigma_next / sigma) ** 2 * (x - x0)
    std = sigma_next * jnp.sqrt(sigma ** 2 - sigma_next ** 2) / sigma
    return mean + std * _normal(rng, i * (m + 1) + m, x)
  x = _steps(body, x, sigmas)
  x = correct(x, n - 1, sigmas[-2])
  return _final(denoise, x, sigmas)


# ----------------------------------------------------------------------------
# Registry and function-evaluation counts.

SAMPLERS: dict[str, Callable[..., jax.Array]] = {
    'euler': sample_euler,
    'euler_ancestral': sample_euler_ancestral,
    'heun': sample_heun,
    'ddim': sample_ddim,
    'ddpm': sample_ddpm,
    'dpmpp_2s': sample_dpmpp_2s,
    'dpmpp_2m': sample_dpmpp_2m,
    'dpmpp_3m': sample_dpmpp_3m,
    'dpmpp_2m_sde': sample_dpmpp_2m_sde,
    'unipc': sample_unipc,
    'ipndm': sample_ipndm,
    'pc_langevin': sample_pc_langevin,
}

# NFE for n steps (and the sampler's knobs); checked against counted calls in the tests.
NFE: dict[str, Callable[..., int]] = {
    'euler': lambda n, **_: n,
    'euler_ancestral': lambda n, **_: n,
    'heun': lambda n, **_: 2 * n - 1,
    'ddim': lambda n, **_: n,
    'ddpm': lambda n, **_: n,
    'dpmpp_2s': lambda n, **_: 2 * n - 1,
    'dpmpp_2m': lambda n, **_: n,
    'dpmpp_3m': lambda n, **_: n,
    'dpmpp_2m_sde': lambda n, **_: n,
    'unipc': lambda n, **_: n,
    'ipndm': lambda n, **_: n,
    'pc_langevin': lambda n, n_corrector_steps=1, **_: n * (1 + n_corrector_steps),
}


def nfe(name: str, n: int, **knobs) -> int:
  """Number of denoiser calls that sampler `name` makes for n steps.

  Args:
    name: a key of SAMPLERS.
    n: number of steps (len(sigmas) - 1).
    **knobs: the sampler's knobs where they matter (pc_langevin's n_corrector_steps).
  """
  if name not in NFE:
    raise ValueError(f'Unknown sampler {name!r}; accepted: {sorted(NFE)}.')
  return NFE[name](n, **knobs)


def count_nfe(denoise: Denoiser) -> tuple[Denoiser, Callable[[], int]]:
  """Wraps a denoiser so that its calls are counted when they run (not when traced).

  Each call fires a `jax.debug.callback`, so calls inside `lax.scan` count
  once per iteration, under jit too. One batched call counts as one NFE.

  Returns:
    (counted_denoise, count): count() waits for pending calls and returns the total so far.
  """
  calls = [0]

  def increment():
    calls[0] += 1

  def counted(x, sigma):
    jax.debug.callback(increment)
    return denoise(x, sigma)

  def count() -> int:
    jax.effects_barrier()
    return calls[0]
  return counted, count
