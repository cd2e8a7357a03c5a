"""Samplers: pure functions `sample_NAME(denoise, x, sigmas, *, rng=None, **knobs) -> x`.

The contract (k-diffusion style, in JAX), shared by every sampler's Args:
  * denoise: `(x [B, ...], sigma [] or [B]) -> x0_hat [B, ...]` in sigma form,
    x = x0 + sigma * eps (`genjax.diffusion.denoisers`); samplers pass a scalar sigma.
  * x: [B, ...] (e.g. NHWC), starting as `sigmas[0] * noise`.
  * sigmas: [n + 1], strictly decreasing, ending with 0 (`genjax.diffusion.schedules`).
  * rng: ignored by deterministic samplers. Stochastic ones draw the noise of
    step i from `fold_in(rng, i)`; rng may also be a batch of keys [B], one
    per sample, so that a sample does not depend on the batch it is drawn in
    (EDM's per-sample seeds).
  * Returns: [B, ...] the sample at sigma = 0, dtype of x.
Steps loop with `lax.scan`; no parameters, configs or pmap inside: callers jit
and shard. The last step, to sigma = 0, returns the denoised output at
sigmas[n - 1] (an Euler step to 0), as in k-diffusion and EDM.

In sigma form the probability-flow ODE is dx/dsigma = (x - D(x, sigma)) / sigma
(Karras et al. 2022, eq. 3 with s = 1); with lambda = -log sigma it is
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

from genjax.diffusion.schedules import check_sigmas

Denoiser = Callable[[jax.Array, jax.Array], jax.Array]


# ----------------------------------------------------------------------------
# Shared pieces.


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


def _eta_split(eta):
  """(sigma, sigma_next) -> (sigma_down, sigma_up): eta times the posterior's noise.

  sigma_up^2 = eta^2 sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2 is eta^2
  times the variance of q(x_next | x, x0) in sigma form, and
  sigma_down^2 = sigma_next^2 - sigma_up^2 keeps the marginal variance.
  """
  def split(sigma, sigma_next):
    up = jnp.minimum(sigma_next, eta * sigma_next * jnp.sqrt(sigma ** 2 - sigma_next ** 2) / sigma)
    return jnp.sqrt(sigma_next ** 2 - up ** 2), up
  return split


def _ancestral(denoise, x, sigmas, rng, split_fn, s_noise=1.0):
  """x_next = x0_hat + sigma_down eps_hat + s_noise sigma_up z, eps_hat = (x - x0_hat) / sigma.

  In sigma form DDPM, DDIM and Euler ancestral are all this update; they
  differ in how a step's noise is split (`split_fn`). A split with
  sigma_up = 0 is deterministic and needs no rng.
  """
  sigmas = check_sigmas(sigmas)

  def body(x, i, sigma, sigma_next):
    x0 = denoise(x, sigma)
    down, up = split_fn(sigma, sigma_next)
    x = x0 + down * (x - x0) / sigma
    return x if rng is None else x + s_noise * up * _normal(rng, i, x)
  return _final(denoise, _steps(body, x, sigmas), sigmas)


def _final(denoise, x, sigmas):
  """The last step, to sigma = 0: the denoised output."""
  return denoise(x, sigmas[-2]).astype(x.dtype)


# ----------------------------------------------------------------------------
# First-order samplers.


def sample_euler(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None) -> jax.Array:
  """Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1; k-diffusion).

  x <- x + (sigma_next - sigma) (x - D(x, sigma)) / sigma. Order 1. NFE = n.
  Args and Returns: the module's contract.
  """
  sigmas = check_sigmas(sigmas)

  def body(x, i, sigma, sigma_next):
    return x + (sigma_next - sigma) * (x - denoise(x, sigma)) / sigma
  return _final(denoise, _steps(body, x, sigmas), sigmas)


def sample_ddim(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                eta: float = 0.0) -> jax.Array:
  """DDIM (Song, Meng & Ermon 2021, eq. 12) in sigma form. NFE = n.

  x_next = x0_hat + sigma_down eps_hat + sigma_up z with sigma_up = eta
  sqrt(posterior variance) (`_eta_split`): DDIM's VP update divided by
  sqrt(abar_{t-1}). eta = 0 is deterministic, order 1, and equals Euler;
  eta = 1 is DDPM with the posterior variance.

  Args:
    eta: >= 0; 0 deterministic, 1 DDPM-like. rng is required when eta != 0.
    denoise, x, sigmas, rng and Returns: the module's contract.
  """
  if isinstance(eta, (int, float)) and eta < 0:
    raise ValueError(f'DDIM eta must be >= 0, got {eta}.')
  if _is_zero(eta):
    rng = None
  else:
    _require_rng(rng, 'DDIM', f'eta={eta}')
  return _ancestral(denoise, x, sigmas, rng, _eta_split(eta))


DDPM_VARIANCES = ('posterior', 'beta')


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
    denoise, x, sigmas, rng (required) and Returns: the module's contract.
  """
  if variance not in DDPM_VARIANCES:
    raise ValueError(f'Unknown DDPM variance {variance!r}; accepted: {DDPM_VARIANCES}.')
  _require_rng(rng, 'DDPM', 'ancestral sampling')

  def beta_split(sigma, sigma_next):  # the posterior mean, with variance beta_t / abar_{t-1}
    var = (sigma ** 2 - sigma_next ** 2) * (1 + sigma_next ** 2) / (1 + sigma ** 2)
    return sigma_next ** 2 / sigma, jnp.sqrt(var)
  split = _eta_split(1.0) if variance == 'posterior' else beta_split
  return _ancestral(denoise, x, sigmas, rng, split)


def sample_euler_ancestral(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                           eta: float = 1.0, s_noise: float = 1.0) -> jax.Array:
  """Euler ancestral (k-diffusion; the ancestral step of Ho et al. 2020 / Song et al. 2021).

  An Euler step to sigma_down, then fresh noise of std s_noise sigma_up
  (`_eta_split`); with eta = s_noise = 1 each step samples the posterior
  q(x_next | x, x0_hat). NFE = n.

  Args:
    eta: scale of the ancestral noise, 0 .. 1.
    s_noise: extra factor on the added noise.
    denoise, x, sigmas, rng (required) and Returns: the module's contract.
  """
  _require_rng(rng, 'Euler ancestral', 'ancestral sampling')
  return _ancestral(denoise, x, sigmas, rng, _eta_split(eta), s_noise)


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
    denoise, x, sigmas, rng and Returns: the module's contract.
  """
  sigmas = check_sigmas(sigmas)
  n = sigmas.shape[0] - 1
  stochastic = not _is_zero(s_churn)
  if stochastic:
    _require_rng(rng, 'Heun', f's_churn={s_churn}')

  def churn(x, i, sigma):
    if not stochastic:
      return x, sigma
    in_range = (sigma >= s_tmin) & (sigma <= s_tmax)
    sigma_hat = sigma * (1.0 + jnp.where(in_range, jnp.minimum(s_churn / n, math.sqrt(2.0) - 1.0), 0.0))
    return x + s_noise * jnp.sqrt(sigma_hat ** 2 - sigma ** 2) * _normal(rng, i, x), sigma_hat

  def body(x, i, sigma, sigma_next):
    x, sigma_hat = churn(x, i, sigma)
    d = (x - denoise(x, sigma_hat)) / sigma_hat
    x_euler = x + (sigma_next - sigma_hat) * d
    d_next = (x_euler - denoise(x_euler, sigma_next)) / sigma_next
    return x + (sigma_next - sigma_hat) * 0.5 * (d + d_next)
  x, sigma_hat = churn(_steps(body, x, sigmas), n - 1, sigmas[-2])
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
    denoise, x, sigmas, rng (ignored) and Returns: the module's contract.
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
  return _final(denoise, _steps(body, x, sigmas), sigmas)


# ----------------------------------------------------------------------------
# Multistep exponential integrators (data prediction).


def _dpmpp_multistep(denoise, x, sigmas, order, eta=0.0, s_noise=1.0, rng=None,
                     lower_order_final=False):
  """DPM-Solver++ multistep, order 2 or 3, ODE (eta = 0) or SDE (Lu et al. 2022).

  In lambda = -log sigma the exact ODE step is
  x_next = e^{-h} x + integral_0^h e^{-(h - u)} D(lambda + u) du, with D
  replaced by its polynomial through the last `order` denoised values; step i
  uses order min(i + 1, order). The SDE variant (order 2 only) integrates the
  reverse SDE scaled by eta the same way and adds the exact noise.
  """
  sigmas = check_sigmas(sigmas)

  def body(carry, i, sigma, sigma_next):
    x, x0_prev1, x0_prev2, h_prev1, h_prev2 = carry
    x0 = denoise(x, sigma)
    h = jnp.log(sigma / sigma_next)
    c = -jnp.expm1(-(1 + eta) * h)  # 1 - e^{-(1 + eta) h}
    x_first = (sigma_next / sigma) * jnp.exp(-eta * h) * x + c * x0  # 1st order (DDIM for eta = 0)
    # Step ratios; before the history exists a placeholder (1) keeps unused branches finite.
    r0 = jnp.where(i >= 1, h_prev1, h) / h
    # 2M (Algorithm 2): x0_eff = (1 + 1/(2 r)) x0_i - 1/(2 r) x0_{i-1}.
    x_next = jnp.where(i >= 1, x_first + 0.5 * c * (x0 - x0_prev1) / r0, x_first)
    if order == 3:
      r1 = jnp.where(i >= 2, h_prev2, h) / h
      d1_0, d1_1 = (x0 - x0_prev1) / r0, (x0_prev1 - x0_prev2) / r1
      d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)  # ~ h D'
      d2 = 2 * (d1_0 - d1_1) / (r0 + r1)  # ~ h^2 D''
      phi2 = 1 - c / h  # integral_0^h e^{-(h-u)} u du / h
      phi3 = phi2 / h - 0.5  # -integral_0^h e^{-(h-u)} u^2 / 2 du / h^2
      third = (i >= 2) & ~(lower_order_final & (i == sigmas.shape[0] - 3))
      x_next = jnp.where(third, x_first + phi2 * d1 - phi3 * d2, x_next)
    if rng is not None:
      x_next = x_next + s_noise * sigma_next * jnp.sqrt(-jnp.expm1(-2 * eta * h)) * _normal(rng, i, x)
    return x_next, x0, x0_prev1, h, h_prev1

  zero = jnp.zeros((), sigmas.dtype)
  x = _steps(body, (x, jnp.zeros_like(x), jnp.zeros_like(x), zero, zero), sigmas)[0]
  return _final(denoise, x, sigmas)


def sample_dpmpp_2m(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None) -> jax.Array:
  """DPM-Solver++(2M), multistep 2nd order (Lu et al. 2022, Algorithm 2). NFE = n.

  x_next = (sigma_next / sigma) x - expm1(-h) ((1 + 1/(2r)) D_i - 1/(2r) D_{i-1}),
  h = log(sigma / sigma_next), r = h_{i-1} / h_i; the first step is DDIM.
  Args and Returns: the module's contract (rng ignored).
  """
  return _dpmpp_multistep(denoise, x, sigmas, order=2)


def sample_dpmpp_3m(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                    lower_order_final: bool | None = None) -> jax.Array:
  """DPM-Solver++(3M), multistep 3rd order (Lu et al. 2022, Appendix; multistep order 3). NFE = n.

  D extrapolated quadratically in lambda through the last three denoised
  values and integrated exactly against e^{-(h - u)}:
  x_next = e^{-h} x + (1 - e^{-h}) D_i + phi2 D1 - phi3 D2, D1 ~ h D', D2 ~ h^2 D''.
  Orders 1 and 2 on the first two steps. lower_order_final: 2nd order on the last step
  above 0, which keeps few-step sampling stable (Lu et al.'s `lower_order_final`); default:
  on below 15 steps. Args and Returns: the module's contract (rng ignored).
  """
  if lower_order_final is None:
    lower_order_final = sigmas.shape[0] - 1 < 15
  return _dpmpp_multistep(denoise, x, sigmas, order=3, lower_order_final=lower_order_final)


def sample_dpmpp_2m_sde(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                        eta: float = 1.0, s_noise: float = 1.0) -> jax.Array:
  """DPM-Solver++(2M) SDE (Lu et al. 2022, "DPM-Solver++", Appendix B). NFE = n.

  x_next = (sigma_next / sigma) e^{-eta h} x + c D_i + 0.5 c (D_i - D_{i-1}) / r
           + s_noise sigma_next sqrt(1 - e^{-2 eta h}) z,  c = 1 - e^{-(1 + eta) h}
  (midpoint form of the 2nd-order term). eta = 0 is DPM-Solver++(2M); eta = 1
  without the 2nd-order term is the DDPM posterior step.

  Args:
    eta: SDE noise scale (1: the reverse SDE); rng is required when eta != 0.
    s_noise: extra factor on the added noise.
    denoise, x, sigmas, rng and Returns: the module's contract.
  """
  if _is_zero(eta):
    rng = None
  else:
    _require_rng(rng, 'DPM-Solver++(2M) SDE', f'eta={eta}')
  return _dpmpp_multistep(denoise, x, sigmas, 2, eta, s_noise, rng)


def _solve_small(a, b):
  """Solves a k x k system (k <= 3) given as lists of scalars, by unrolled elimination.

  UniPC's matrices are Vandermonde in distinct nodes with a first row of
  ones, so no pivoting is needed; unrolled scalar code compiles much faster
  than a LAPACK solve inside the sampling loop.
  """
  k = len(b)
  rows = [list(a[i]) + [b[i]] for i in range(k)]
  for c in range(k):
    for r in range(c + 1, k):
      rows[r] = [rows[r][j] - rows[r][c] / rows[c][c] * rows[c][j] for j in range(k + 1)]
  x = [None] * k
  for r in reversed(range(k)):
    x[r] = (rows[r][k] - sum((rows[r][j] * x[j] for j in range(r + 1, k)), 0.0)) / rows[r][r]
  return x


def _unipc_coefficients(k: int, order: int, rks_hist: jax.Array, h: jax.Array):
  """UniPC-bh2 coefficients for step order k (static), padded to `order - 1` history slots.

  Solves R_k rho = g_k (Zhao et al. 2023, Algorithms 2-3), R_k[j, m] = r_m^j
  (r = 1 for the new point), g_k[j] = (j + 1)! phi_{j+2}(h) / B(h) with the
  bh2 choice B(h) = e^{-h} - 1. UniP-k uses the first k - 1 equations (rho =
  1/2 for k = 2, as in the paper), UniC-k all k.

  Returns:
    rks [order-1] (padded with 1), rhos_p and rhos_c [order-1] (padded with 0),
    and rho_new, the corrector's weight on the new model value.
  """
  one, hh = jnp.ones((), h.dtype), -h  # data prediction integrates e^{-h}
  b_h = jnp.expm1(hh)
  rks = [rks_hist[j] for j in range(k - 1)] + [one]
  g, h_phi, factorial = [], b_h / hh - 1, 1
  for j in range(1, k + 1):
    g.append(h_phi * factorial / b_h)
    factorial *= j + 1
    h_phi = h_phi / hh - 1 / factorial
  R = [[r ** j for r in rks] for j in range(k)]
  rhos_p = [] if k == 1 else [0.5 * one] if k == 2 else _solve_small([row[:-1] for row in R[:-1]], g[:-1])
  rhos_c = [0.5 * one] if k == 1 else _solve_small(R, g)
  pad = lambda v, fill: jnp.stack(v + [fill * one] * (order - k)) if order > 1 else jnp.zeros((0,), h.dtype)
  return pad(rks[:-1], 1), pad(rhos_p, 0), pad(rhos_c[:-1], 0), rhos_c[-1]


def sample_unipc(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                 order: int = 3) -> jax.Array:
  """UniPC (Zhao et al. 2023), bh2 variant, data prediction, multistep. NFE = n.

  Each step is a UniP-k predictor to sigma_next, one model call there, and the
  UniC corrector that reuses the call (it is also the next step's history,
  so the corrector costs nothing). k = min(order, i + 1, n - i): lower order
  while the history builds up and on the final steps, as in the paper's code.
  The last step returns that last model value.

  Args:
    order: predictor order 1 .. 3; the corrector makes UniPC-p of order p + 1.
      The paper advises 2 for guided sampling, 3 for unconditional.
    denoise, x, sigmas, rng (ignored) and Returns: the module's contract.
  """
  sigmas = check_sigmas(sigmas)
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
    return x_base - b_h * corr, (x0_new,) + x0s[:-1], jnp.concatenate([lam_next[None], lams[:-1]])

  x0s = (denoise(x, sigmas[0]).astype(x.dtype),) + (jnp.zeros_like(x),) * (order - 1)
  lams = jnp.concatenate([-jnp.log(sigmas[:1]), jnp.zeros((order - 1,), sigmas.dtype)])
  return _steps(body, (x, x0s, lams), sigmas)[1][0]  # last step, to 0: the last model value


_IPNDM_COEFFS = np.array([  # Adams-Bashforth coefficients of orders 1-4, newest first
    [1, 0, 0, 0], [3 / 2, -1 / 2, 0, 0], [23 / 12, -16 / 12, 5 / 12, 0],
    [55 / 24, -59 / 24, 37 / 24, -9 / 24]])


def sample_ipndm(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                 max_order: int = 4) -> jax.Array:
  """Improved PNDM (Zhang & Chen 2023, DEIS paper; as used by Zhou et al. 2024). NFE = n.

  Adams-Bashforth with fixed coefficients on d = (x - D) / sigma:
  x_next = x + (sigma_next - sigma) sum_j c_j d_{i-j}, order min(i + 1, max_order).
  On non-uniform (Karras) steps the fixed coefficients limit the asymptotic
  order to 2, but the error constant is small at few steps.

  Args:
    max_order: 1 .. 4.
    denoise, x, sigmas, rng (ignored) and Returns: the module's contract.
  """
  sigmas = check_sigmas(sigmas)
  if max_order not in (1, 2, 3, 4):
    raise ValueError(f'iPNDM max_order must be 1 .. 4, got {max_order!r}.')
  coeffs = jnp.asarray(_IPNDM_COEFFS[:max_order, :max_order], sigmas.dtype)

  def body(carry, i, sigma, sigma_next):
    x, ds = carry  # the previous max_order - 1 derivatives, newest first
    ds = ((x - denoise(x, sigma)) / sigma,) + ds
    c = coeffs[jnp.minimum(i, max_order - 1)]  # zeros beyond the current order
    return x + (sigma_next - sigma) * sum(c[j] * ds[j] for j in range(max_order)), ds[:-1]
  x = _steps(body, (x, (jnp.zeros_like(x),) * (max_order - 1)), sigmas)[0]
  return _final(denoise, x, sigmas)


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
      fold_in(rng, i (n_corrector_steps + 1) + j)) and Returns: the module's contract.
  """
  sigmas = check_sigmas(sigmas)
  _require_rng(rng, 'Predictor-corrector', 'Langevin and ancestral steps')
  if not isinstance(n_corrector_steps, int) or n_corrector_steps < 0:
    raise ValueError(f'n_corrector_steps must be a Python int >= 0, got {n_corrector_steps!r}.')
  m, n = n_corrector_steps, sigmas.shape[0] - 1
  norm = lambda v: jnp.mean(jnp.sqrt(jnp.sum(jnp.square(v), axis=tuple(range(1, v.ndim)))))

  def correct(x, i, sigma):
    def langevin(j, x):
      score = (denoise(x, sigma) - x) / sigma ** 2
      z = _normal(rng, i * (m + 1) + j, x)
      e = 2 * (snr * norm(z) / (norm(score) + 1e-20)) ** 2
      return (x + e * score + jnp.sqrt(2 * e) * z).astype(x.dtype)
    return jax.lax.fori_loop(0, m, langevin, x)

  def body(x, i, sigma, sigma_next):
    x = correct(x, i, sigma)
    x0 = denoise(x, sigma)
    std = sigma_next * jnp.sqrt(sigma ** 2 - sigma_next ** 2) / sigma
    return x0 + (sigma_next / sigma) ** 2 * (x - x0) + std * _normal(rng, i * (m + 1) + m, x)
  return _final(denoise, correct(_steps(body, x, sigmas), n - 1, sigmas[-2]), sigmas)


# ----------------------------------------------------------------------------
# Registry and function-evaluation counts.

SAMPLERS: dict[str, Callable[..., jax.Array]] = {
    'euler': sample_euler, 'euler_ancestral': sample_euler_ancestral, 'heun': sample_heun,
    'ddim': sample_ddim, 'ddpm': sample_ddpm, 'dpmpp_2s': sample_dpmpp_2s,
    'dpmpp_2m': sample_dpmpp_2m, 'dpmpp_3m': sample_dpmpp_3m,
    'dpmpp_2m_sde': sample_dpmpp_2m_sde, 'unipc': sample_unipc, 'ipndm': sample_ipndm,
    'pc_langevin': sample_pc_langevin,
}

# NFE for n steps (and the sampler's knobs); the tests check them against counted calls.
NFE: dict[str, Callable[..., int]] = {
    **{name: lambda n, **_: n for name in SAMPLERS},
    'heun': lambda n, **_: 2 * n - 1,
    'dpmpp_2s': lambda n, **_: 2 * n - 1,
    'pc_langevin': lambda n, n_corrector_steps=1, **_: n * (1 + n_corrector_steps),
}


def nfe(name: str, n: int, **knobs) -> int:
  """Number of denoiser calls sampler `name` makes for n steps (len(sigmas) - 1).

  Args:
    name: a key of SAMPLERS.
    n: number of steps.
    **knobs: the sampler's knobs where they matter (pc_langevin's n_corrector_steps).
  """
  if name not in NFE:
    raise ValueError(f'Unknown sampler {name!r}; accepted: {sorted(NFE)}.')
  return NFE[name](n, **knobs)


def count_nfe(denoise: Denoiser) -> tuple[Denoiser, Callable[[], int]]:
  """Wraps a denoiser so that its calls are counted when they run, not when traced.

  Each call fires a `jax.debug.callback`, so a call inside `lax.scan` counts
  once per iteration, under jit too. One batched call is one NFE.

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
