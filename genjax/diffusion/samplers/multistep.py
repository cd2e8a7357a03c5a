"""Multistep samplers: DPM-Solver++(2M), (3M) and (2M) SDE, UniPC, iPNDM. Each step reuses
the denoised values of earlier steps, so it costs one model call.

Args and Returns of every sampler: the contract of `genjax.diffusion.samplers`.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from genjax.diffusion.samplers.base import (Denoiser, final_step, is_zero, require_rng, scan_steps,
                                            step_noise)
from genjax.diffusion.schedules import check_sigmas


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
      x_next = x_next + s_noise * sigma_next * jnp.sqrt(-jnp.expm1(-2 * eta * h)) * step_noise(rng, i, x)
    return x_next, x0, x0_prev1, h, h_prev1

  zero = jnp.zeros((), sigmas.dtype)
  x = scan_steps(body, (x, jnp.zeros_like(x), jnp.zeros_like(x), zero, zero), sigmas)[0]
  return final_step(denoise, x, sigmas)


def sample_dpmpp_2m(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None) -> jax.Array:
  """DPM-Solver++(2M), multistep 2nd order (Lu et al. 2022, Algorithm 2). NFE = n.

  x_next = (sigma_next / sigma) x - expm1(-h) ((1 + 1/(2r)) D_i - 1/(2r) D_{i-1}),
  h = log(sigma / sigma_next), r = h_{i-1} / h_i; the first step is DDIM.
  Args and Returns: the package's contract (rng ignored).
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
  on below 15 steps. Args and Returns: the package's contract (rng ignored).
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
    denoise, x, sigmas, rng and Returns: the package's contract.
  """
  if is_zero(eta):
    rng = None
  else:
    require_rng(rng, 'DPM-Solver++(2M) SDE', f'eta={eta}')
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
    denoise, x, sigmas, rng (ignored) and Returns: the package's contract.
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
  return scan_steps(body, (x, x0s, lams), sigmas)[1][0]  # last step, to 0: the last model value


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
    denoise, x, sigmas, rng (ignored) and Returns: the package's contract.
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
  x = scan_steps(body, (x, (jnp.zeros_like(x),) * (max_order - 1)), sigmas)[0]
  return final_step(denoise, x, sigmas)
