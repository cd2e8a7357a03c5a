"""IWAE bound on a linear-Gaussian latent model, whose marginal likelihood is exact."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from genjax.metrics import likelihood as lk

LATENT, DATA, NOISE = 2, 5, 0.5


@pytest.fixture(scope='module')
def model():
  """z ~ N(0, I), x | z ~ N(Wz + b, s^2 I): log p(x) = log N(x; b, W W^T + s^2 I)."""
  rng = np.random.default_rng(0)
  w = rng.normal(size=(DATA, LATENT)).astype(np.float32)
  b = rng.normal(size=DATA).astype(np.float32)
  z = rng.normal(size=(2048, LATENT))
  x = (z @ w.T + b + NOISE * rng.normal(size=(2048, DATA))).astype(np.float32)
  log_px = scipy.stats.multivariate_normal(b, w @ w.T + NOISE**2 * np.eye(DATA)).logpdf(x)
  # Exact posterior: covariance S = (I + W^T W / s^2)^-1, mean S W^T (x - b) / s^2.
  post_cov = np.linalg.inv(np.eye(LATENT) + w.T @ w / NOISE**2)
  post_mean = (x - b) @ w @ post_cov.T / NOISE**2  # [B, L]

  def log_joint_fn(x, z):  # [B, D], [n, B, L] -> [n, B]
    prior = lk.gaussian_log_likelihood(z, 0.0, 0.0, event_ndim=1)
    return prior + lk.gaussian_log_likelihood(x, z @ w.T + b, np.log(NOISE), event_ndim=1)

  return dict(x=x, log_px=log_px, post_mean=post_mean, post_cov=post_cov, log_joint_fn=log_joint_fn)


def _gaussian_proposal(mean, cov):
  """sample_q_fn and log_q_fn of q(z|x) = N(mean[x], cov) (mean precomputed per example)."""
  chol = np.linalg.cholesky(cov).astype(np.float32)
  mean = jnp.asarray(mean, jnp.float32)
  prec = jnp.asarray(np.linalg.inv(cov), jnp.float32)
  logdet = float(np.linalg.slogdet(cov)[1])

  def sample_q_fn(rng, x, n):
    del x
    return mean + jax.random.normal(rng, (n,) + mean.shape) @ chol.T  # [n, B, L]

  def log_q_fn(z, x):
    del x
    d = z - mean
    return -0.5 * (jnp.einsum('nbi,ij,nbj->nb', d, prec, d) + logdet + LATENT * np.log(2 * np.pi))

  return sample_q_fn, log_q_fn


@pytest.mark.parametrize('k,chunk', [(1, 100), (13, 5)])
def test_exact_posterior_gives_log_px_for_any_k(model, k, chunk):
  sample_q_fn, log_q_fn = _gaussian_proposal(model['post_mean'], model['post_cov'])
  bound = lk.iwae_log_likelihood(model['log_joint_fn'], sample_q_fn, log_q_fn, model['x'], k,
                                 jax.random.key(0), chunk)
  assert bound.shape == (2048,)
  np.testing.assert_allclose(bound, model['log_px'], atol=2e-4)


def test_poor_proposal_bound_rises_towards_log_px(model):
  # A shifted, too-wide proposal: the ELBO (k=1) is loose and L_k climbs with k.
  sample_q_fn, log_q_fn = _gaussian_proposal(model['post_mean'] + 0.5, 4.0 * model['post_cov'])
  gaps = []
  for k in (1, 10, 100, 1000):
    bound = lk.iwae_log_likelihood(model['log_joint_fn'], sample_q_fn, log_q_fn, model['x'], k,
                                   jax.random.key(k), chunk=128)
    gaps.append(float(np.mean(model['log_px'] - bound)))
  # Averaged over 2048 examples, the noise of a mean gap is ~0.008 at k=100 and ~0.002 at k=1000.
  assert all(g > 0.02 for g in gaps[:3]), gaps  # a lower bound
  assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps  # tighter with every k
  assert gaps[0] > 1.0 and abs(gaps[-1]) < 0.01, gaps


def test_chunking_does_not_change_the_bound(model):
  """Same samples, different chunking: the streaming logsumexp equals the one-shot bound."""
  sample_q_fn, log_q_fn = _gaussian_proposal(model['post_mean'] + 1.0, 2.0 * model['post_cov'])
  x = model['x']
  rng = jax.random.key(3)
  z = sample_q_fn(rng, x, 50)
  one_shot = lk.iwae_bound(model['log_joint_fn'](x, z) - log_q_fn(z, x))

  def replay_fn(key, x, n):  # hands out the same 50 samples chunk by chunk, by the chunk's key
    del x
    index = jnp.argmax(jnp.all(jax.random.key_data(keys) == jax.random.key_data(key), axis=1))
    return jax.lax.dynamic_slice_in_dim(z, index * 10, n)

  keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(5))
  chunked = lk.iwae_log_likelihood(model['log_joint_fn'], replay_fn, log_q_fn, x, 50, rng, chunk=10)
  np.testing.assert_allclose(chunked, one_shot, rtol=1e-5)


def test_iwae_bound_is_stable_log_mean_exp():
  w = np.random.default_rng(1).normal(size=(7, 3))
  np.testing.assert_allclose(lk.iwae_bound(w), np.log(np.mean(np.exp(w), axis=0)), rtol=1e-5)
  deep = lk.iwae_bound(w - 1000.0)  # exp underflows; logsumexp does not
  np.testing.assert_allclose(deep, scipy.special.logsumexp(w, axis=0) - np.log(7) - 1000.0, rtol=1e-6)
  with pytest.raises(ValueError, match=r'\[K, B\]'):
    lk.iwae_bound(np.zeros(5))


def test_bernoulli_and_gaussian_log_likelihoods():
  rng = np.random.default_rng(2)
  x = (rng.uniform(size=(4, 3, 3, 1)) > 0.5).astype(np.float32)
  logits = rng.normal(size=(4, 3, 3, 1)) * 3
  p = scipy.special.expit(logits)
  expected = np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=(1, 2, 3))
  np.testing.assert_allclose(lk.bernoulli_log_likelihood(x, logits), expected, rtol=1e-5)
  extreme = lk.bernoulli_log_likelihood(np.ones((1, 2)), np.array([[100.0, -100.0]]), event_ndim=1)
  np.testing.assert_allclose(extreme, [-100.0], rtol=1e-5)  # log sigmoid(-100) = -100, no -inf

  mean, log_scale = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)) * 0.3
  y = rng.normal(size=(4, 6))
  expected = scipy.stats.norm(mean, np.exp(log_scale)).logpdf(y).sum(1)
  got = lk.gaussian_log_likelihood(y, mean, log_scale, event_ndim=1)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  with pytest.raises(ValueError, match='event_ndim'):
    lk.gaussian_log_likelihood(y, mean, log_scale, event_ndim=3)


def test_nats_to_bits_per_dim():
  d = 3 * 32 * 32
  # A uniform distribution over 256 values per dimension costs 8 bits/dim...
  np.testing.assert_allclose(lk.nats_to_bits_per_dim(d * np.log(256), d), 8.0)
  # ...and so does the uniform density on [0, 1] (log p = 0) over bins of width 1/256.
  np.testing.assert_allclose(lk.nats_to_bits_per_dim(0.0, d, bin_width=1 / 256), 8.0)
  np.testing.assert_allclose(lk.nats_to_bits_per_dim(np.array([0.0, d * np.log(2)]), d), [0.0, 1.0])
  with pytest.raises(ValueError):
    lk.nats_to_bits_per_dim(1.0, 0)
