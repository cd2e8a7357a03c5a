"""Samplers against closed forms.

* Gaussian data x0 ~ N(mu, diag(s^2)) have the exact denoiser
  mu + s^2 / (s^2 + sigma^2) (x - mu) and an exact probability-flow ODE
  solution, so every sampler must recover mean and variance, and the
  deterministic ones must converge to the exact flow at their order.
* On Gaussian data some solvers are super-convergent (DPM-Solver++(3M) shows
  order ~4 on logSNR-uniform steps, because D is so smooth in lambda there),
  so the orders are also measured on a two-component Gaussian mixture, whose
  exact denoiser is nonlinear; its reference flow comes from scipy's DOP853 at
  rtol 1e-13.
* Every solver takes the last step, to sigma = 0, as the denoised output at
  sigma_min; the reference is the exact flow to sigma_min, denoised, so a
  fixed O(sigma_min^2) gap to x(0) does not floor the measured error.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from genjax.diffusion import denoisers, samplers, schedules

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
DETERMINISTIC = ('euler', 'ddim', 'heun', 'dpmpp_2s', 'dpmpp_2m', 'dpmpp_3m', 'unipc', 'ipndm')
STOCHASTIC = {  # name -> knobs that make it stochastic
    'euler_ancestral': {}, 'ddpm': {}, 'dpmpp_2m_sde': {}, 'pc_langevin': {},
    'ddim': {'eta': 0.5}, 'heun': {'s_churn': 10.0},
}


def gaussian(dim=16, seed=0):
  rs = np.random.RandomState(seed)
  return jnp.asarray(rs.uniform(-1, 1, dim)), jnp.asarray(rs.uniform(0.5, 1.0, dim))


# ----------------------------------------------------------------------------
# Mean and variance of Gaussian data.

# Steps per sampler: enough that the discretization bias of the variance is
# at most ~1.1% (measured with 10^5 samples: first-order samplers on Karras
# steps need 500-1000 steps for that, 2nd/3rd-order ones 64).
MEANVAR_CASES = [
    ('euler', 512, {}), ('ddim', 512, {}), ('euler_ancestral', 1024, {}),
    ('heun', 64, {}), ('heun', 64, {'s_churn': 10.0}), ('dpmpp_2s', 64, {}), ('dpmpp_2m', 64, {}),
    ('dpmpp_3m', 64, {}), ('dpmpp_2m_sde', 256, {}), ('unipc', 64, {}), ('ipndm', 64, {}),
    # Unadjusted Langevin has a stationary-variance bias of about snr^2 (2.6% at
    # the default 0.16), so the corrector runs at snr = 0.1 here.
    ('pc_langevin', 512, {'snr': 0.1}),
    # The seed's DDPM: 1000 VP steps with variance beta_t.
    ('ddpm', 1000, {'variance': 'beta'}),
]


@pytest.mark.parametrize('name,n,knobs', MEANVAR_CASES,
                         ids=[f'{c[0]}-{c[1]}-{"-".join(c[2])}' for c in MEANVAR_CASES])
def test_recovers_gaussian_mean_and_variance(name, n, knobs):
  num, (mu, std) = 8192, gaussian()
  dim = mu.shape[0]
  if name == 'ddpm':
    sigmas = schedules.vp_uniform_time_sigmas(schedules.VPSchedule.create('linear', 1000), n)
  else:
    sigmas = schedules.karras_sigmas(n, SIGMA_MIN, SIGMA_MAX)
  # Start from the exact marginal at sigmas[0], so an exact sampler gives exactly N(mu, std^2).
  x = mu + jnp.sqrt(sigmas[0] ** 2 + std ** 2) * jax.random.normal(jax.random.key(0), (num, dim))
  sample_fn = jax.jit(lambda x: samplers.SAMPLERS[name](
      denoisers.make_gaussian_denoiser(mu, std), x, sigmas, rng=jax.random.key(1), **knobs))
  out = np.asarray(sample_fn(x), np.float64)
  mu, var = np.asarray(mu, np.float64), np.asarray(std, np.float64) ** 2
  # Standard errors: mean s / sqrt(N); sample variance s^2 sqrt(2 / N); 5 of them per
  # dimension (16 dims x 13 cases: a false alarm has odds below 1e-4). The pooled
  # variance over dims has sqrt(D) less noise; 1.5% more allow for the discretization bias.
  z_mean = (out.mean(0) - mu) / np.sqrt(var / num)
  rel_var = out.var(0) / var - 1
  assert np.all(np.abs(z_mean) < 5), z_mean
  assert np.all(np.abs(rel_var) < 5 * np.sqrt(2 / num) + 0.015), rel_var
  assert abs(rel_var.mean()) < 5 * np.sqrt(2 / (num * dim)) + 0.015, rel_var.mean()


# ----------------------------------------------------------------------------
# Observed order of convergence of the deterministic samplers.

ORDER_STEPS = (24, 48, 96)  # below ~24 Karras steps the 3rd/4th-order solvers are pre-asymptotic
ORDER_CASES = [  # (name, knobs, lowest and highest accepted order)
    ('euler', {}, 0.8, 1.3), ('ddim', {}, 0.8, 1.3),
    ('heun', {}, 1.7, 2.5), ('dpmpp_2s', {}, 1.7, 2.5), ('dpmpp_2m', {}, 1.7, 2.5),
    ('dpmpp_3m', {}, 2.5, 3.9),
    # UniC raises the order of the UniP-p predictor by one (Zhao et al. 2023, Thm 3.3).
    ('unipc', {'order': 2}, 2.5, 3.6), ('unipc', {'order': 3}, 3.5, 5.0),
    # Fixed Adams-Bashforth coefficients on non-uniform (Karras) steps: order 2.
    ('ipndm', {}, 1.7, 2.5),
]


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


@pytest.fixture(scope='module')
def flow_problems():
  """Gaussian and two-Gaussian-mixture data in 4-D, 16 starts at sigma_max, exact end points.

  Both are given as mixture parameters (the Gaussian as two equal components),
  so one compiled sampler serves both. The reference is the exact flow to
  sigma_min followed by the samplers' last (denoising) step.
  """
  with jax.enable_x64(True):
    rs = np.random.RandomState(0)
    dim, num = 4, 16
    x = SIGMA_MAX * jnp.asarray(rs.randn(num, dim))
    mu, std = jnp.asarray(rs.uniform(-1, 1, dim)), jnp.asarray(rs.uniform(0.5, 1.0, dim))
    gauss = (jnp.array([0.5, 0.5]), jnp.stack([mu, mu]), jnp.stack([std, std]))
    mixture = (jnp.array([0.3, 0.7]),
               jnp.asarray(np.stack([rs.randn(dim) * 0.3 + 0.6, rs.randn(dim) * 0.3 - 0.6])),
               jnp.asarray(rs.uniform(0.3, 0.6, (2, dim))))
    denoise = jax.jit(lambda params, x, sigma: denoisers.make_gaussian_mixture_denoiser(*params)(x, sigma))

    def rhs(lam, y):  # dx/dlambda = D(x, e^-lambda) - x, lambda = -log sigma
      x_ = jnp.asarray(y.reshape(num, dim))
      return np.asarray(denoise(mixture, x_, jnp.exp(-lam)) - x_).ravel()
    sol = solve_ivp(rhs, (-np.log(SIGMA_MAX), -np.log(SIGMA_MIN)), np.asarray(x).ravel(),
                    method='DOP853', rtol=1e-13, atol=1e-13)
    assert sol.success
    mixture_end = jnp.asarray(sol.y[:, -1].reshape(num, dim))
    gauss_end = denoisers.gaussian_pf_ode_solution(x, SIGMA_MAX, SIGMA_MIN, mu, std)
    return x, {'gaussian': (gauss, denoise(gauss, gauss_end, SIGMA_MIN)),
               'mixture': (mixture, denoise(mixture, mixture_end, SIGMA_MIN))}


@pytest.mark.parametrize('name,knobs,lo,hi', ORDER_CASES,
                         ids=[f'{c[0]}{c[1].get("order", "")}' for c in ORDER_CASES])
def test_observed_order_of_convergence(name, knobs, lo, hi, flow_problems, x64):
  x, problems = flow_problems
  all_sigmas = [schedules.karras_sigmas(n, SIGMA_MIN, SIGMA_MAX) for n in ORDER_STEPS]
  assert all(float(s[-2]) == pytest.approx(SIGMA_MIN) for s in all_sigmas)

  @jax.jit
  def run(params, x):  # all step counts in one program: one compile per sampler
    denoise = denoisers.make_gaussian_mixture_denoiser(*params)
    return [samplers.SAMPLERS[name](denoise, x, s, **knobs) for s in all_sigmas]
  for problem, (params, reference) in problems.items():
    errors = [float(jnp.sqrt(jnp.mean((out - reference) ** 2))) for out in run(params, x)]
    slope = -np.polyfit(np.log(ORDER_STEPS), np.log(errors), 1)[0]
    assert lo <= slope <= hi, (problem, slope, errors)


# ----------------------------------------------------------------------------
# Exact identities.


def test_ddim_eta0_equals_euler():
  mu, std = gaussian(8)
  denoise = denoisers.make_gaussian_denoiser(mu, std)
  sigmas = schedules.karras_sigmas(10, SIGMA_MIN, SIGMA_MAX)
  x = SIGMA_MAX * jax.random.normal(jax.random.key(0), (4, 8))
  ddim, euler = jax.jit(lambda x: (samplers.sample_ddim(denoise, x, sigmas, eta=0.0),
                                   samplers.sample_euler(denoise, x, sigmas)))(x)
  np.testing.assert_allclose(ddim, euler, rtol=1e-5, atol=1e-5)


def test_dpmpp_3m_lower_order_final_takes_a_second_order_last_step():
  # 4 steps: orders 1, 2, 3 above sigma = 0; with lower_order_final the 3rd is 2nd order,
  # which makes the whole path DPM-Solver++(2M)'s.
  denoise = denoisers.make_gaussian_mixture_denoiser(
      jnp.array([0.3, 0.7]), jnp.array([[0.5, -0.2], [-0.6, 0.4]]), 0.45)
  sigmas = schedules.karras_sigmas(4, SIGMA_MIN, SIGMA_MAX)
  x = SIGMA_MAX * jax.random.normal(jax.random.key(0), (16, 2))
  lof, plain, two = jax.jit(lambda x: (
      samplers.sample_dpmpp_3m(denoise, x, sigmas, lower_order_final=True),
      samplers.sample_dpmpp_3m(denoise, x, sigmas, lower_order_final=False),
      samplers.sample_dpmpp_2m(denoise, x, sigmas)))(x)
  np.testing.assert_allclose(lof, two, rtol=1e-6, atol=1e-6)
  assert float(jnp.max(jnp.abs(plain - two))) > 1e-4  # the 3rd-order step really differs
  # The default switches it on below 15 steps only.
  default = jax.jit(lambda x: samplers.sample_dpmpp_3m(denoise, x, sigmas))(x)
  np.testing.assert_array_equal(default, lof)


def test_ddpm_equals_seed_update(x64):
  """In sigma form with a VPSchedule's sigmas, DDPM is the seed's loop after x_vp = x / sqrt(1 + sigma^2)."""
  vp = schedules.VPSchedule.create('linear', 1000)

  def eps_fn(x_t, t, cond):  # any network; nonlinear in x_t and t
    return 0.5 * jnp.tanh(x_t) * (1.0 + _expand(t, x_t) / 1000.0) + 0.1 * jnp.sin(x_t)

  def _expand(t, x):
    return jnp.asarray(t, x.dtype).reshape(t.shape + (1,) * (x.ndim - 1))

  rng = jax.random.key(3)
  x_vp = jax.random.normal(jax.random.key(4), (4, 6))

  def seed_step(x, t):  # the seed's update, with the noise of sampler step i = T - 1 - t
    b = x.shape[0]
    alpha, abar, beta = vp.alphas[t], vp.alphas_cumprod[t], vp.betas[t]
    eps = eps_fn(x, jnp.full((b,), t, x.dtype), None)
    z = jax.random.normal(jax.random.fold_in(rng, 999 - t), x.shape, x.dtype) * (t > 0)
    return (x - (1 - alpha) / jnp.sqrt(1 - abar) * eps) / jnp.sqrt(alpha) + jnp.sqrt(beta) * z, None
  seed_out, _ = jax.lax.scan(seed_step, x_vp, jnp.arange(999, -1, -1))

  sigmas = schedules.vp_uniform_time_sigmas(vp, 1000)
  np.testing.assert_allclose(sigmas[:-1], vp.sigmas[::-1])
  denoise = denoisers.make_vp_denoiser(eps_fn, vp, 'eps')
  out = samplers.sample_ddpm(denoise, x_vp * jnp.sqrt(1 + sigmas[0] ** 2), sigmas, rng=rng,
                             variance='beta')
  np.testing.assert_allclose(out, seed_out, rtol=1e-7, atol=1e-7)


# ----------------------------------------------------------------------------
# Randomness, shapes, jit, NFE, bad input.


def _toy_vp_denoiser():
  vp = schedules.VPSchedule.create('cosine', 100)
  return denoisers.make_vp_denoiser(lambda x, t, c: 0.3 * jnp.tanh(x), vp, 'eps'), vp


@pytest.mark.parametrize('name', sorted(STOCHASTIC))
def test_stochastic_samplers_follow_their_rng(name):
  mu, std = gaussian(4)
  denoise = denoisers.make_gaussian_denoiser(mu, std)
  sigmas = schedules.karras_sigmas(5, SIGMA_MIN, SIGMA_MAX)
  x = SIGMA_MAX * jax.random.normal(jax.random.key(0), (6, 4))
  # One key per sample (a single key is exercised by the other tests).
  run = jax.jit(lambda x, keys: samplers.SAMPLERS[name](denoise, x, sigmas, rng=keys, **STOCHASTIC[name]))
  keys = jax.random.split(jax.random.key(1), 6)
  a, b, c = run(x, keys), run(x, keys), run(x, jax.random.split(jax.random.key(2), 6))
  np.testing.assert_array_equal(a, b)
  assert np.min(np.max(np.abs(a - c), axis=1)) > 1e-3
  with pytest.raises(ValueError, match='rng'):
    samplers.SAMPLERS[name](denoise, x, sigmas, **STOCHASTIC[name])
  if name == 'pc_langevin':
    return  # Its Langevin step size is a batch statistic (see its docstring).
  # A sample depends on its own key and start only: replace the other half of
  # the batch and reverse the order, and the kept samples do not change.
  x2 = jnp.concatenate([x[:3], -x[3:]])[::-1]
  keys2 = jnp.concatenate([keys[:3], jax.random.split(jax.random.key(8), 3)])[::-1]
  np.testing.assert_allclose(a[:3], run(x2, keys2)[::-1][:3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', sorted(samplers.SAMPLERS))
def test_every_sampler_jits_on_an_image_batch_and_counts_its_nfe(name):
  denoise, vp = _toy_vp_denoiser()
  counted, count = samplers.count_nfe(denoise)
  n = 7
  knobs = {'n_corrector_steps': 2} if name == 'pc_langevin' else {}
  # sigmas are a jit argument here (traced), so the checks that need their values are skipped.
  run = jax.jit(functools.partial(samplers.SAMPLERS[name], counted, rng=jax.random.key(1), **knobs))
  sigmas = schedules.get_sigmas('karras', n, schedule=vp)
  x = sigmas[0] * jax.random.normal(jax.random.key(0), (2, 4, 4, 3))  # [B, H, W, C]
  out = run(x, sigmas)
  assert out.shape == x.shape and out.dtype == x.dtype
  assert np.all(np.isfinite(out))
  assert count() == samplers.nfe(name, n, **knobs)
  run(x, sigmas)
  assert count() == 2 * samplers.nfe(name, n, **knobs)
  # One step is the denoised output (for pc_langevin: without corrector steps).
  knobs = {'n_corrector_steps': 0} if name == 'pc_langevin' else {}
  one = samplers.SAMPLERS[name](denoise, x, jnp.array([sigmas[0], 0.0]),
                                rng=jax.random.key(1), **knobs)
  np.testing.assert_allclose(one, denoise(x, sigmas[0]), rtol=1e-6)


def test_bad_input_is_refused_with_what_is_accepted():
  denoise, _ = _toy_vp_denoiser()
  x = jnp.zeros((2, 3))
  with pytest.raises(ValueError, match='end with 0'):
    samplers.sample_euler(denoise, x, jnp.array([2.0, 1.0, 0.5]))
  with pytest.raises(ValueError, match='strictly decreasing'):
    samplers.sample_euler(denoise, x, jnp.array([1.0, 2.0, 0.0]))
  with pytest.raises(ValueError, match='1-D'):
    samplers.sample_euler(denoise, x, jnp.zeros((2, 2)))
  with pytest.raises(ValueError, match="accepted: \\('posterior', 'beta'\\)"):
    samplers.sample_ddpm(denoise, x, jnp.array([1.0, 0.0]), rng=jax.random.key(0), variance='large')
  with pytest.raises(ValueError, match='order must be 1, 2 or 3'):
    samplers.sample_unipc(denoise, x, jnp.array([1.0, 0.0]), order=4)
  with pytest.raises(ValueError, match='Unknown sampler'):
    samplers.nfe('rk45', 10)
  assert set(samplers.NFE) == set(samplers.SAMPLERS)


def test_a_new_sampler_joins_an_extended_copy_of_the_registry():
  table = samplers.samplers_with({'mine': samplers.sample_euler})
  counts = samplers.nfe_with({'mine': lambda n, **_: n})
  assert 'mine' in table and 'mine' not in samplers.SAMPLERS and 'mine' not in samplers.NFE
  assert samplers.nfe('mine', 7, counts=counts) == 7
  with pytest.raises(ValueError, match='Unknown sampler'):
    samplers.nfe('mine', 7)
  with pytest.raises(ValueError, match="\\['heun'\\] already name library samplers"):
    samplers.samplers_with({'heun': samplers.sample_euler})


def test_the_new_sampler_example_registers_nothing_on_import():
  import importlib.util
  import os
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      'experiments', 'new_sampler', 'my_sampler.py')
  before, before_nfe = dict(samplers.SAMPLERS), dict(samplers.NFE)
  module_spec = importlib.util.spec_from_file_location('my_sampler', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  assert samplers.SAMPLERS == before and samplers.NFE == before_nfe
  # Its entries, passed on explicitly, run and make the calls they declare.
  table, counts = samplers.samplers_with(module.EXTRA_SAMPLERS), samplers.nfe_with(module.EXTRA_NFE)
  mu, std = gaussian(4)
  counted, count = samplers.count_nfe(denoisers.make_gaussian_denoiser(mu, std))
  sigmas = schedules.karras_sigmas(6, SIGMA_MIN, SIGMA_MAX)
  out = jax.jit(lambda x: table['mine'](counted, x, sigmas))(SIGMA_MAX * jnp.ones((3, 4)))
  assert np.all(np.isfinite(out)) and count() == samplers.nfe('mine', 6, counts=counts)
