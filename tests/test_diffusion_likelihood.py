"""The DDPM bound in bits/dim against answers computed by hand and with scipy."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from genjax.diffusion import likelihood, schedules


def test_normal_kl_matches_numerical_integration():
  for m1, lv1, m2, lv2 in [(0.3, -1.0, -0.2, 0.5), (1.0, 0.0, 1.0, 0.0), (-2.0, 1.2, 0.5, -0.7)]:
    p, q = stats.norm(m1, math.exp(lv1 / 2)), stats.norm(m2, math.exp(lv2 / 2))
    numeric, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -30, 30, limit=200)
    np.testing.assert_allclose(likelihood.normal_kl(m1, lv1, m2, lv2), numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('mean,log_scale', [(0.0, -1.0), (0.93, -4.0), (-1.05, -3.0), (0.4, -7.0), (2.0, 0.0)])
def test_discretized_gaussian_is_a_distribution_over_256_bins(mean, log_scale):
  x = jnp.arange(256) / 127.5 - 1.0
  log_p = np.asarray(likelihood.discretized_gaussian_log_likelihood(x, mean, log_scale), np.float64)
  np.testing.assert_allclose(np.exp(log_p).sum(), 1.0, atol=1e-5)
  # Against CDF differences with scipy; the edge bins extend to -inf and +inf.
  xs = np.arange(256) / 127.5 - 1.0
  dist = stats.norm(mean, math.exp(log_scale))
  upper = np.where(xs > 0.999, np.inf, xs + 1 / 255)
  lower = np.where(xs < -0.999, -np.inf, xs - 1 / 255)
  expected = dist.cdf(upper) - dist.cdf(lower)
  seen = expected > 1e-6
  np.testing.assert_allclose(log_p[seen], np.log(expected[seen]), rtol=1e-4, atol=1e-4)


def _delta_data():
  """A data set that is a single 8-bit image, with the edge values -1 and 1 included."""
  levels = jnp.array([0, 1, 77, 128, 200, 254, 255, 13, 0, 255, 64, 190])
  return (levels / 127.5 - 1.0).reshape(1, 2, 2, 3)


def _exact_model(x0, schedule, parameterization):
  """The model that knows the data set is the single point x0."""
  log_abar = schedule.log_alphas_cumprod

  def model_fn(x_t, t, cond):
    idx = t.astype(jnp.int32)
    a = jnp.exp(0.5 * log_abar[idx]).reshape(-1, 1, 1, 1)
    s = jnp.sqrt(-jnp.expm1(log_abar[idx])).reshape(-1, 1, 1, 1)
    eps = (x_t - a * x0) / s
    return {'eps': eps, 'x0': jnp.broadcast_to(x0, x_t.shape), 'v': a * eps - s * x0}[parameterization]
  return model_fn


def _hand_computed_bpd(x0, schedule):
  """Prior KL + decoder NLL by hand: with the exact x0 every L_{t-1} KL is 0 (posterior variance)."""
  betas = np.asarray(schedule.betas, np.float64)
  abar = np.cumprod(1 - betas)
  x0 = np.asarray(x0, np.float64).ravel()
  mean_t, var_t = np.sqrt(abar[-1]) * x0, 1 - abar[-1]
  prior = np.sum(0.5 * (var_t + mean_t ** 2 - 1 - np.log(var_t)))
  # The decoder at t = 0: mean x0 (on its bin's center), variance that of the posterior at t = 1.
  std = math.sqrt(betas[1] * (1 - abar[0]) / (1 - abar[1]))
  inner = stats.norm.cdf(1 / 255 / std) - stats.norm.cdf(-1 / 255 / std)
  edge = stats.norm.cdf(1 / 255 / std)
  decoder = -np.sum(np.where(np.abs(x0) > 0.999, np.log(edge), np.log(inner)))
  return (prior + decoder) / (x0.size * math.log(2))


@pytest.mark.parametrize('parameterization', ['eps', 'x0', 'v'])
def test_bound_of_a_point_mass_is_prior_plus_decoder(parameterization):
  schedule = schedules.VPSchedule.create('linear', 1000)
  x0 = _delta_data()
  bpd = jax.jit(lambda x0, rng: likelihood.vlb_terms(_exact_model(x0, schedule, parameterization), schedule,
                                                     x0, rng, parameterization, chunk_size=100))(
      x0, jax.random.key(0))
  np.testing.assert_allclose(bpd, [_hand_computed_bpd(x0, schedule)], rtol=2e-3)


def test_chunking_does_not_change_the_bound_and_the_estimator_is_unbiased():
  # A short schedule and a poor model (eps = 0.5 x_t), so every term contributes.
  schedule = schedules.VPSchedule.create('linear', 20, beta_start=1e-3, beta_end=0.3)
  model_fn = lambda x_t, t, cond: 0.5 * x_t
  x0 = _delta_data()
  rng = jax.random.key(1)
  full = [likelihood.vlb_terms(model_fn, schedule, x0, rng, 'eps', chunk_size=c, variance='beta')
          for c in (3, 20)]
  np.testing.assert_allclose(full[0], full[1], rtol=1e-6)
  # The estimator averages to the bound (both also average over x_t; the data set is one point).
  many = jnp.broadcast_to(x0, (8192,) + x0.shape[1:])
  est = jax.jit(lambda r: likelihood.vlb_estimate(model_fn, schedule, many, r, 'eps', variance='beta'))(
      jax.random.key(2))
  exact = np.mean([likelihood.vlb_terms(model_fn, schedule, many[:512], jax.random.key(k), 'eps',
                                        variance='beta').mean() for k in range(2)])
  stderr = float(est.std()) / math.sqrt(est.shape[0])
  assert abs(float(est.mean()) - exact) < 5 * stderr, (float(est.mean()), exact, stderr)


def test_terms_are_nonnegative_kls_and_bad_input_is_refused():
  schedule = schedules.VPSchedule.create('cosine', 50)
  x0 = _delta_data()
  t = jnp.arange(1, 50)
  many = jnp.broadcast_to(x0, (49,) + x0.shape[1:])
  terms = likelihood.vlb_term(lambda x_t, t, c: jnp.zeros_like(x_t), schedule, many, t, jax.random.key(0))
  assert np.all(np.asarray(terms) >= -1e-6)
  short = schedules.VPSchedule.create('linear', 20, beta_start=1e-3, beta_end=0.3)
  abar_T = float(short.alphas_cumprod[-1])
  mean, var = math.sqrt(abar_T) * np.asarray(x0), 1 - abar_T  # KL(N(mean, var) || N(0, 1)) per dim
  expected = np.mean(0.5 * (var + mean ** 2 - 1 - math.log(var))) / math.log(2)
  np.testing.assert_allclose(likelihood.prior_bpd(short, x0), [expected], rtol=1e-4)
  with pytest.raises(ValueError, match="accepted: \\('eps', 'x0', 'v'\\)"):
    likelihood.vlb_term(lambda x, t, c: x, schedule, x0, jnp.zeros(1, jnp.int32), jax.random.key(0), 'mu')
  with pytest.raises(ValueError, match="accepted: \\('posterior', 'beta'\\)"):
    likelihood.vlb_terms(lambda x, t, c: x, schedule, x0, jax.random.key(0), variance='learned')
