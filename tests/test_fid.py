"""Fréchet distance against scipy.linalg.sqrtm, closed forms and pytorch-fid's fallback."""
import numpy as np
import pytest
import scipy.linalg

from genjax.metrics import fid


def _reference_fd(mu1, s1, mu2, s2):
  """The textbook formula with scipy's sqrtm, no fallback."""
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def _random_stats(rng, d, n):
  """Mean and covariance of n correlated samples in d dims (rank-deficient when n <= d)."""
  mix = rng.normal(size=(d, d)) / np.sqrt(d)
  x = rng.normal(size=(n, d)) @ mix + rng.normal(size=d)
  return x.mean(0), np.cov(x, rowvar=False)


def test_feature_stats_matches_numpy():
  x = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
  mu, sigma = fid.feature_stats(x)
  np.testing.assert_allclose(mu, x.astype(np.float64).mean(0))
  np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False))  # ddof=1
  assert mu.dtype == sigma.dtype == np.float64


@pytest.mark.parametrize('d,n', [(2, 100), (16, 200), (64, 500), (64, 20), (128, 50)])
@pytest.mark.parametrize('method', ['sqrtm', 'eigh'])
def test_matches_scipy_sqrtm(d, n, method):
  rng = np.random.default_rng(d + n)
  mu1, s1 = _random_stats(rng, d, n)
  mu2, s2 = _random_stats(rng, d, n)
  expected = _reference_fd(mu1, s1, mu2, s2)
  got = fid.frechet_distance(mu1, s1, mu2, s2, method=method)
  np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize('method', ['sqrtm', 'eigh'])
def test_diagonal_closed_form(method):
  rng = np.random.default_rng(1)
  a, b = rng.uniform(0.1, 3, size=10), rng.uniform(0.1, 3, size=10)
  mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
  expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
  got = fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method)
  np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize('method', ['sqrtm', 'eigh'])
def test_zero_for_identical_and_symmetric(method):
  rng = np.random.default_rng(2)
  mu1, s1 = _random_stats(rng, 32, 300)
  mu2, s2 = _random_stats(rng, 32, 300)
  assert abs(fid.frechet_distance(mu1, s1, mu1, s1, method=method)) < 1e-8
  np.testing.assert_allclose(fid.frechet_distance(mu1, s1, mu2, s2, method=method),
                             fid.frechet_distance(mu2, s2, mu1, s1, method=method), rtol=1e-9)


@pytest.mark.filterwarnings('ignore::scipy.linalg.LinAlgWarning')  # the reference's own warning
def test_rank_deficient_with_dead_units():
  """N < D and constant (dead) features: singular covariances, as with post-ReLU features."""
  rng = np.random.default_rng(3)
  x, y = rng.normal(size=(30, 48)), rng.normal(size=(30, 48)) + 0.2
  x[:, :5] = 0.0
  y[:, :5] = 0.0
  got = fid.fid_from_features(x, y)
  expected = _reference_fd(*fid.feature_stats(x), *fid.feature_stats(y))
  assert np.isfinite(got)
  np.testing.assert_allclose(got, expected, rtol=1e-7)
  np.testing.assert_allclose(fid.fid_from_features(x, y, method='eigh'), expected, rtol=1e-6)


def test_eps_fallback_when_sqrtm_is_not_finite(monkeypatch):
  """pytorch-fid adds eps*I to both covariances when the root of the product is not finite."""
  rng = np.random.default_rng(4)
  mu1, s1 = _random_stats(rng, 20, 10)
  mu2, s2 = _random_stats(rng, 20, 10)
  real_sqrtm = scipy.linalg.sqrtm
  calls = []

  def sqrtm_like_old_scipy(a):
    # Older scipy returned NaN/inf for singular products; reproduce that on the first call.
    calls.append(a)
    return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

  monkeypatch.setattr(fid.scipy.linalg, 'sqrtm', sqrtm_like_old_scipy)
  eps = 1e-6
  got = fid.frechet_distance(mu1, s1, mu2, s2, eps=eps)
  assert len(calls) == 2
  offset = eps * np.eye(20)
  np.testing.assert_allclose(calls[1], (s1 + offset) @ (s2 + offset))
  covmean = real_sqrtm((s1 + offset) @ (s2 + offset))
  expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real
  np.testing.assert_allclose(got, expected, rtol=1e-10)
  # eps is small: the fallback barely moves the distance.
  np.testing.assert_allclose(got, _reference_fd(mu1, s1, mu2, s2), rtol=1e-3)


def test_large_imaginary_part_is_refused():
  # -I is no covariance: its product's square root is i*I.
  with pytest.raises(ValueError, match='imaginary component'):
    fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), -np.eye(3))


def test_bad_shapes_are_refused():
  with pytest.raises(ValueError, match=r'\[D, D\]'):
    fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
  with pytest.raises(ValueError, match='same D'):
    fid.fid_from_features(np.zeros((5, 3)), np.zeros((5, 4)))
  with pytest.raises(ValueError, match='N >= 2'):
    fid.feature_stats(np.zeros((1, 3)))
  with pytest.raises(ValueError, match='Unknown method'):
    fid.frechet_distance(np.zeros(1), np.eye(1), np.zeros(1), np.eye(1), method='svd')
