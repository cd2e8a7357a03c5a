"""Noise schedules, EDM / min-SNR weighting and the denoiser wrappers, against closed forms."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.diffusion import denoisers, schedules
from genjax.diffusion.schedules import VPSchedule

# ----------------------------------------------------------------------------
# Beta schedules.


def test_linear_betas_are_the_seeds_linspace():
  beta_fn = schedules.linear_beta_schedule(1000)
  betas = jax.jit(beta_fn)(jnp.arange(1000))
  np.testing.assert_allclose(betas, np.linspace(1e-4, 0.02, 1000), rtol=1e-5)
  vp = VPSchedule.create('linear', 1000)
  np.testing.assert_allclose(vp.alphas_cumprod, np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)), rtol=1e-4)


def test_cosine_betas_follow_nichol_dhariwal():
  T, s = 1000, 0.008
  f = lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2
  u = np.arange(T + 1) / T
  expected = np.minimum(1 - f(u[1:]) / f(u[:-1]), 0.999)
  np.testing.assert_allclose(schedules.cosine_beta_schedule(T)(jnp.arange(T)), expected, rtol=1e-4, atol=1e-7)
  vp = VPSchedule.create('cosine', T)
  # abar tracks f(t/T)/f(0) except near t = T, where the beta clip at 0.999 bites.
  np.testing.assert_allclose(vp.alphas_cumprod[:900], (f(u[1:]) / f(0))[:900], rtol=1e-3, atol=1e-6)


def test_sigmoid_betas_follow_chen():
  T, start, end, tau = 1000, -3.0, 3.0, 1.0
  sig = lambda z: 1 / (1 + np.exp(-z))
  abar = lambda u: (sig(end / tau) - sig((u * (end - start) + start) / tau)) / (sig(end / tau) - sig(start / tau))
  u = np.arange(T + 1) / T
  expected = np.minimum(1 - abar(u[1:]) / abar(u[:-1]), 0.999)
  np.testing.assert_allclose(schedules.sigmoid_beta_schedule(T)(jnp.arange(T)), expected, rtol=1e-4)
  vp = VPSchedule.create('sigmoid', T)
  abar = np.asarray(vp.alphas_cumprod)
  assert np.all(np.diff(abar) < 0) and abar[0] > 0.999 and abar[-1] < 1e-3
  assert np.all((np.asarray(vp.betas) > 0) & (np.asarray(vp.betas) <= 0.999))


def test_beta_registry_and_bad_names():
  assert set(schedules.BETA_SCHEDULES) == {'linear', 'cosine', 'sigmoid'}
  with pytest.raises(ValueError, match="accepted: \\['cosine', 'linear', 'sigmoid'\\]"):
    VPSchedule.create('quadratic')


def test_vp_sigma_form_and_time_conversion():
  vp = VPSchedule.create('linear', 1000)
  abar = np.asarray(vp.alphas_cumprod, np.float64)
  np.testing.assert_allclose(vp.sigmas, np.sqrt((1 - abar) / abar), rtol=2e-3)
  np.testing.assert_allclose(vp.sigma_to_t(vp.sigmas), np.arange(1000), atol=2e-3)
  # Linear in log sigma between grid points, and t_to_sigma inverts it.
  mid = np.sqrt(vp.sigmas[10] * vp.sigmas[11])
  np.testing.assert_allclose(vp.sigma_to_t(mid), 10.5, atol=1e-3)
  sig = jnp.exp(jnp.linspace(jnp.log(vp.sigma_min), jnp.log(vp.sigma_max), 37))
  np.testing.assert_allclose(vp.t_to_sigma(vp.sigma_to_t(sig)), sig, rtol=1e-4)
  # Out of range clamps; VPSchedule is a pytree that jit accepts.
  np.testing.assert_allclose(vp.sigma_to_t(jnp.array([1e-6, 1e6])), [0, 999])
  np.testing.assert_allclose(jax.jit(lambda s, x: s.sigma_to_t(x))(vp, vp.sigmas[5]), 5, atol=1e-3)


# ----------------------------------------------------------------------------
# Sigma schedules for sampling.


@pytest.mark.parametrize('name', ['karras', 'logsnr', 'exponential', 'polyexponential'])
def test_sigma_schedules_are_decreasing_and_end_with_zero(name):
  sigmas = np.asarray(schedules.get_sigmas(name, 10, sigma_min=0.002, sigma_max=80.0))
  assert sigmas.shape == (11,) and sigmas[-1] == 0
  assert np.all(np.diff(sigmas) < 0)
  np.testing.assert_allclose([sigmas[0], sigmas[-2]], [80.0, 0.002], rtol=1e-5)


def test_karras_and_logsnr_formulas():
  n, lo, hi, rho = 6, 0.002, 80.0, 7.0
  i = np.arange(n)
  expected = (hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
  np.testing.assert_allclose(schedules.karras_sigmas(n, lo, hi, rho)[:-1], expected, rtol=1e-5)
  logsnr = -2 * np.log(np.asarray(schedules.logsnr_uniform_sigmas(n, lo, hi)[:-1]))
  np.testing.assert_allclose(np.diff(logsnr), np.full(n - 1, np.diff(logsnr)[0]), rtol=1e-4)
  np.testing.assert_allclose(schedules.polyexponential_sigmas(n, lo, hi, rho=1.0),
                             schedules.logsnr_uniform_sigmas(n, lo, hi), rtol=1e-5)


def test_vp_uniform_time_spacings():
  vp = VPSchedule.create('linear', 1000)
  full = schedules.vp_uniform_time_sigmas(vp, 1000)  # every step, T-1 down to 0, as DDPM
  np.testing.assert_allclose(full[:-1], vp.sigmas[::-1])
  np.testing.assert_allclose(schedules.vp_uniform_time_sigmas(vp, 4, 'trailing')[:-1],
                             vp.sigmas[np.array([999, 749, 499, 249])])
  np.testing.assert_allclose(schedules.vp_uniform_time_sigmas(vp, 4, 'leading')[:-1],
                             vp.sigmas[np.array([750, 500, 250, 0])])
  np.testing.assert_allclose(schedules.vp_uniform_time_sigmas(vp, 4, 'linspace')[:-1],
                             vp.sigmas[np.array([999, 666, 333, 0])])
  np.testing.assert_allclose(schedules.get_sigmas('vp_uniform', 4, schedule=vp),
                             schedules.vp_uniform_time_sigmas(vp, 4))
  with pytest.raises(ValueError, match="accepted: \\('trailing', 'leading', 'linspace'\\)"):
    schedules.vp_uniform_time_sigmas(vp, 4, 'uniform')
  with pytest.raises(ValueError, match='n=2000'):
    schedules.vp_uniform_time_sigmas(vp, 2000)


def test_get_sigmas_defaults_and_errors():
  vp = VPSchedule.create('cosine', 1000)
  sig = schedules.get_sigmas('karras', 5, schedule=vp)
  np.testing.assert_allclose([sig[0], sig[-2]], [vp.sigma_max, vp.sigma_min], rtol=1e-5)
  with pytest.raises(ValueError, match='Unknown sigma schedule'):
    schedules.get_sigmas('cosine', 5, schedule=vp)
  with pytest.raises(ValueError, match='needs the model'):
    schedules.get_sigmas('vp_uniform', 5)
  with pytest.raises(ValueError, match='0 < sigma_min < sigma_max'):
    schedules.get_sigmas('karras', 5, sigma_min=1.0, sigma_max=0.5)
  with pytest.raises(ValueError, match='int >= 1'):
    schedules.karras_sigmas(0, 0.1, 1.0)


# ----------------------------------------------------------------------------
# EDM and min-SNR weighting.


def test_edm_preconditioning_gives_unit_variance_input_and_target():
  sigma_data = 0.5
  sigma = jnp.array([0.002, 0.1, 0.5, 3.0, 80.0])
  c_skip, c_out, c_in, c_noise = schedules.edm_precond(sigma, sigma_data)
  # x = x0 + sigma n with Var x0 = sigma_data^2: Var(c_in x) = 1 and
  # Var((x0 - c_skip x) / c_out) = ((1 - c_skip)^2 sd^2 + c_skip^2 sigma^2) / c_out^2 = 1.
  np.testing.assert_allclose(c_in ** 2 * (sigma_data ** 2 + sigma ** 2), 1, rtol=1e-5)
  target_var = ((1 - c_skip) ** 2 * sigma_data ** 2 + c_skip ** 2 * sigma ** 2) / c_out ** 2
  np.testing.assert_allclose(target_var, 1, rtol=1e-4)
  np.testing.assert_allclose(c_noise, np.log(sigma) / 4, rtol=1e-6)
  np.testing.assert_allclose(schedules.edm_loss_weight(sigma, sigma_data), 1 / c_out ** 2, rtol=1e-5)
  log_sigma = jnp.log(schedules.edm_sample_sigma(jax.random.key(0), (20000,)))
  assert abs(float(log_sigma.mean()) + 1.2) < 0.05 and abs(float(log_sigma.std()) - 1.2) < 0.05


def test_min_snr_weights_agree_across_parameterizations():
  """The same x0 error, expressed as eps and v errors, gets the same weighted loss."""
  sigma = jnp.array([0.05, 0.3, 1.0, 4.0])
  delta = 0.1  # x0_hat - x0, with x fixed
  alpha = 1 / jnp.sqrt(1 + sigma ** 2)  # sqrt(abar)
  err_x0 = delta ** 2
  err_eps = (delta / sigma) ** 2  # eps = (x - x0) / sigma
  err_v = (alpha * delta / sigma + sigma * alpha * delta) ** 2  # v = alpha eps - sigma alpha x0
  losses = [schedules.min_snr_weight(sigma, 5.0, p) * e
            for p, e in [('x0', err_x0), ('eps', err_eps), ('v', err_v)]]
  np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
  np.testing.assert_allclose(losses[2], losses[0], rtol=1e-5)
  np.testing.assert_allclose(losses[0], jnp.minimum(1 / sigma ** 2, 5.0) * err_x0, rtol=1e-6)
  with pytest.raises(ValueError, match="accepted: \\('eps', 'x0', 'v'\\)"):
    schedules.min_snr_weight(sigma, 5.0, 'score')


# ----------------------------------------------------------------------------
# Denoiser wrappers: exact predictions of Gaussian data in every parameterization.

MU = jnp.array([0.3, -0.5, 0.0])
STD = jnp.array([0.8, 0.4, 1.1])


def _exact_vp_model(vp, parameterization):
  """The optimal VP network for x0 ~ N(MU, STD^2): what a perfectly trained model predicts."""
  gaussian = denoisers.make_gaussian_denoiser(MU, STD)

  def model_fn(x_t, t, cond):
    sigma = vp.t_to_sigma(t)[:, None]  # [B, 1]
    alpha = 1 / jnp.sqrt(1 + sigma ** 2)  # sqrt(abar)
    x = x_t / alpha
    x0 = gaussian(x, sigma[:, 0])
    eps = (x - x0) / sigma
    return {'eps': eps, 'x0': x0, 'v': alpha * eps - sigma * alpha * x0}[parameterization]
  return model_fn


@pytest.mark.parametrize('parameterization', ['eps', 'x0', 'v'])
def test_vp_denoiser_recovers_the_exact_denoiser(parameterization):
  vp = VPSchedule.create('cosine', 1000)
  exact = denoisers.make_gaussian_denoiser(MU, STD)
  denoise = denoisers.make_vp_denoiser(_exact_vp_model(vp, parameterization), vp, parameterization)
  sigma = jnp.array([0.01, 0.2, 1.0, 5.0, 50.0])  # [B]
  x = MU + jnp.sqrt(STD ** 2 + sigma[:, None] ** 2) * jax.random.normal(jax.random.key(0), (5, 3))
  np.testing.assert_allclose(denoise(x, sigma), exact(x, sigma), rtol=2e-4, atol=2e-4)
  np.testing.assert_allclose(jax.jit(denoise)(x, 1.0), exact(x, 1.0), rtol=2e-4, atol=2e-4)


def test_vp_denoiser_refuses_unknown_parameterization():
  with pytest.raises(ValueError, match="accepted: \\('eps', 'x0', 'v'\\)"):
    denoisers.make_vp_denoiser(lambda x, t, c: x, VPSchedule.create(), 'score')


def test_classifier_free_guidance_is_one_batched_call():
  vp = VPSchedule.create('linear', 100)
  calls = []

  def model_fn(x_t, t, cond):  # an x0-predictor that outputs its label
    calls.append(x_t.shape[0])
    return jnp.broadcast_to(cond[:, None, None, None].astype(x_t.dtype), x_t.shape)

  x = jnp.zeros((3, 2, 2, 1))
  cond, uncond = jnp.array([1.0, 2.0, 3.0]), jnp.array([10.0])  # a single null label, broadcast
  for w, expected in [(1.0, cond), (0.0, jnp.full(3, 10.0)), (3.0, 10.0 + 3.0 * (cond - 10.0))]:
    denoise = denoisers.make_vp_denoiser(model_fn, vp, 'x0', cond=cond, guidance_scale=w, uncond=uncond)
    np.testing.assert_allclose(denoise(x, 0.5)[:, 0, 0, 0], expected, rtol=1e-6)
  # w = 1 and w = 0 are one half of the pair (one call on the batch); other w one call on the
  # doubled batch.
  assert calls == [3, 3, 6]
  unguided = denoisers.make_vp_denoiser(model_fn, vp, 'x0', cond=cond)
  np.testing.assert_allclose(unguided(x, 0.5)[:, 0, 0, 0], cond)
  with pytest.raises(ValueError, match='needs both `cond` and `uncond`'):
    denoisers.make_vp_denoiser(model_fn, vp, 'x0', cond=cond, guidance_scale=2.0)


def test_edm_denoiser_recovers_the_exact_denoiser():
  sigma_data = 0.5
  exact = denoisers.make_gaussian_denoiser(MU, STD)

  def model_fn(x_in, c_noise, cond):  # F such that c_skip x + c_out F = the exact D
    sigma = jnp.exp(4 * c_noise)
    c_skip, c_out, c_in, _ = schedules.edm_precond(sigma[:, None], sigma_data)
    x = x_in / c_in
    return (exact(x, sigma) - c_skip * x) / c_out

  denoise = denoisers.make_edm_denoiser(model_fn, sigma_data)
  sigma = jnp.array([0.002, 0.3, 2.0, 80.0])
  x = MU + jnp.sqrt(STD ** 2 + sigma[:, None] ** 2) * jax.random.normal(jax.random.key(1), (4, 3))
  np.testing.assert_allclose(denoise(x, sigma), exact(x, sigma), rtol=1e-4, atol=1e-5)


def test_mixture_denoiser_is_tweedies_formula():
  """E[x0 | x] = x + sigma^2 grad log p_sigma(x) (Tweedie), with p_sigma the noised mixture."""
  weights = jnp.array([0.25, 0.75])
  means = jnp.array([[1.0, -0.5], [-0.7, 0.4]])
  stds = jnp.array([[0.3, 0.5], [0.6, 0.2]])
  denoise = denoisers.make_gaussian_mixture_denoiser(weights, means, stds)

  def log_p(x, sigma):  # x [2]
    var = stds ** 2 + sigma ** 2
    comp = -0.5 * jnp.sum((x - means) ** 2 / var + jnp.log(2 * math.pi * var), axis=1)
    return jax.nn.logsumexp(jnp.log(weights) + comp)

  x = jax.random.normal(jax.random.key(2), (5, 2))
  for sigma in [0.1, 0.7, 3.0]:
    tweedie = x + sigma ** 2 * jax.vmap(jax.grad(log_p), (0, None))(x, sigma)
    np.testing.assert_allclose(denoise(x, sigma), tweedie, rtol=1e-4, atol=1e-5)
  one = denoisers.make_gaussian_mixture_denoiser(jnp.ones(1), MU[None], STD[None])
  np.testing.assert_allclose(one(x[:, :1] * jnp.ones(3), 0.4),
                             denoisers.make_gaussian_denoiser(MU, STD)(x[:, :1] * jnp.ones(3), 0.4), rtol=1e-5)
