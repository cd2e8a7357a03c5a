"""IS, KID, precision/recall, density/coverage, class coverage and memorization on known answers."""
import numpy as np
import pytest
import scipy.spatial.distance

from genjax.metrics import generative as gm


def _softmax(logits):
  e = np.exp(logits - logits.max(1, keepdims=True))
  return e / e.sum(1, keepdims=True)


# --------------------------------------------------------------------------- Inception Score


def test_inception_score_uniform_one_hot_is_k():
  k = 10
  probs = np.eye(k)[np.arange(1000) % k]  # every split holds each class equally often
  mean, std = gm.inception_score(probs, num_splits=10)
  np.testing.assert_allclose(mean, k, rtol=1e-12)
  assert std < 1e-12


def test_inception_score_identical_predictions_is_one():
  probs = np.tile(_softmax(np.random.default_rng(0).normal(size=(1, 7))), (50, 1))
  mean, std = gm.inception_score(probs, num_splits=5)
  np.testing.assert_allclose(mean, 1.0, rtol=1e-12)
  assert std < 1e-12


def test_inception_score_matches_reference_formula():
  """Salimans et al.'s code: contiguous splits [i N/s, (i+1) N/s), exp of the mean KL."""
  probs = _softmax(3 * np.random.default_rng(1).normal(size=(103, 10)))
  scores = []
  for i in range(4):
    part = probs[i * 103 // 4:(i + 1) * 103 // 4]
    kl = part * (np.log(part) - np.log(part.mean(0, keepdims=True)))
    scores.append(np.exp(np.mean(np.sum(kl, 1))))
  mean, std = gm.inception_score(probs, num_splits=4)
  np.testing.assert_allclose([mean, std], [np.mean(scores), np.std(scores)], rtol=1e-12)
  # torch-fidelity permutes the rows first (RandomState(2020)).
  shuffled = probs[np.random.RandomState(2020).permutation(103)]
  np.testing.assert_allclose(gm.inception_score(probs, 4, shuffle_seed=2020),
                             gm.inception_score(shuffled, 4), rtol=1e-12)


def test_inception_score_refuses_bad_input():
  with pytest.raises(ValueError, match='probabilities'):
    gm.inception_score(np.random.default_rng(0).normal(size=(20, 10)))  # logits
  with pytest.raises(ValueError, match='num_splits'):
    gm.inception_score(np.full((5, 2), 0.5), num_splits=10)


# --------------------------------------------------------------------------- KID


def _mmd2_loops(x, y):
  """Unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3, written as explicit sums over pairs."""
  d = x.shape[1]
  k = lambda a, b: (a @ b / d + 1) ** 3
  m, n = len(x), len(y)
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
  return xx + yy - 2 * xy


def test_mmd2_unbiased_matches_direct_sums():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(20, 5)), rng.normal(size=(15, 5)) + 0.5
  np.testing.assert_allclose(gm.mmd2_unbiased(x, y), _mmd2_loops(x, y), rtol=1e-4, atol=1e-6)


def test_kid_averages_the_seeded_subsets():
  rng = np.random.default_rng(1)
  f1, f2 = rng.normal(size=(60, 8)), rng.normal(size=(50, 8)) + 0.3
  mean, std = gm.kernel_inception_distance(f1, f2, num_subsets=4, subset_size=12, seed=7)
  draws = np.random.RandomState(7)
  expected = []
  for _ in range(4):
    i1 = draws.choice(60, 12, replace=False)
    i2 = draws.choice(50, 12, replace=False)
    expected.append(_mmd2_loops(f1[i1], f2[i2]))
  np.testing.assert_allclose([mean, std], [np.mean(expected), np.std(expected)], rtol=1e-4, atol=1e-6)


def test_kid_near_zero_for_same_distribution_positive_for_shift():
  rng = np.random.default_rng(2)
  real = rng.normal(size=(2000, 16))
  same = rng.normal(size=(2000, 16))
  shifted = rng.normal(size=(2000, 16)) + 0.5
  mean, std = gm.kernel_inception_distance(real, same, num_subsets=20, subset_size=500)
  assert abs(mean) < 3 * std
  mean_shift, std_shift = gm.kernel_inception_distance(real, shifted, num_subsets=20, subset_size=500)
  assert mean_shift > 10 * std_shift > 0
  assert mean_shift > 20 * abs(mean)


def test_kid_refuses_bad_input():
  with pytest.raises(ValueError, match='subset_size'):
    gm.kernel_inception_distance(np.zeros((10, 3)), np.zeros((20, 3)), subset_size=15)
  with pytest.raises(ValueError, match='same feature dimension'):
    gm.kernel_inception_distance(np.zeros((10, 3)), np.zeros((10, 4)), subset_size=5)


# --------------------------------------------------------------------------- distances


def test_nearest_neighbour_matches_brute_force_and_batch_size():
  rng = np.random.default_rng(3)
  queries, refs = rng.normal(size=(37, 12)), rng.normal(size=(51, 12)) + 3.0
  full = scipy.spatial.distance.cdist(queries, refs)
  dist, idx = gm.nearest_neighbour_distances(queries, refs, batch_size=8)  # 5 chunks, last one padded
  np.testing.assert_array_equal(idx, full.argmin(1))
  np.testing.assert_allclose(dist, full.min(1), rtol=1e-12)
  dist2, idx2 = gm.nearest_neighbour_distances(queries, refs)
  np.testing.assert_array_equal(idx2, idx)
  np.testing.assert_array_equal(dist2, dist)


def test_knn_radii_exclude_the_point_itself():
  x = np.array([[0.0], [1.0], [3.0], [7.0]])
  np.testing.assert_allclose(gm.knn_radii(x, k=1), [1, 1, 2, 4])
  np.testing.assert_allclose(gm.knn_radii(x, k=2, batch_size=3), [3, 2, 3, 6])
  with pytest.raises(ValueError, match='k < N'):
    gm.knn_radii(x, k=4)


# --------------------------------------------------------------------------- precision / recall


def test_precision_recall_identical_sets():
  x = np.random.default_rng(4).normal(size=(300, 16))
  assert gm.precision_recall(x, x.copy()) == {'precision': 1.0, 'recall': 1.0}


def test_precision_recall_disjoint_sets():
  rng = np.random.default_rng(5)
  real, fake = rng.normal(size=(100, 8)), rng.normal(size=(80, 8)) + 100.0
  assert gm.precision_recall(real, fake) == {'precision': 0.0, 'recall': 0.0}


def test_precision_recall_hand_example():
  # k=1 radii of real: 0:1, 1:1, 2:1, 3:1, 10:7. Fakes 0.5, 1.5, 5, 6 lie in those balls; 20 does not.
  # k=1 radii of fake: 0.5:1, 1.5:1, 5:1, 6:1, 20:14. Real 0, 1, 2 and 10 (|10-20| <= 14)
  # are covered; 3 is not.
  real = np.array([0.0, 1.0, 2.0, 3.0, 10.0])[:, None]
  fake = np.array([0.5, 1.5, 5.0, 6.0, 20.0])[:, None]
  result = gm.precision_recall(real, fake, k=1)
  np.testing.assert_allclose([result['precision'], result['recall']], [0.8, 0.8])


def test_density_coverage_hand_example():
  # Unit-square corners, k=1: every radius is 1. (0.1, 0.1) is within 1 of three corners,
  # (0.2, 0) of two, (5, 5) of none: density = 5 / (1 * 3). Corner (1, 1) has no fake
  # within 1: coverage = 3/4.
  real = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  fake = np.array([[0.1, 0.1], [0.2, 0.0], [5.0, 5.0]])
  result = gm.density_coverage(real, fake, k=1)
  np.testing.assert_allclose([result['density'], result['coverage']], [5 / 3, 0.75])


def test_precision_recall_refuses_bad_input():
  with pytest.raises(ValueError, match='same feature dimension'):
    gm.precision_recall(np.zeros((10, 3)), np.zeros((10, 4)))
  with pytest.raises(ValueError, match='at least 4 rows'):
    gm.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)


# --------------------------------------------------------------------------- classes


def test_class_coverage():
  uniform = gm.class_coverage(np.arange(100) % 10, num_classes=10)
  np.testing.assert_allclose([uniform['entropy'], uniform['normalized_entropy']], [np.log(10), 1.0])
  assert uniform['num_covered'] == 10
  np.testing.assert_array_equal(uniform['histogram'], np.full(10, 10))
  collapsed = gm.class_coverage(np.eye(10)[np.full(50, 3)] * 0.9 + 0.01, num_classes=10)  # probabilities
  assert collapsed['entropy'] == 0.0 and collapsed['num_covered'] == 1
  half = gm.class_coverage(np.array([0, 1] * 20), num_classes=4)
  np.testing.assert_allclose(half['normalized_entropy'], np.log(2) / np.log(4))
  assert half['num_covered'] == 2
  with pytest.raises(ValueError, match=r'\[0, 4\)'):
    gm.class_coverage(np.array([0, 5]), num_classes=4)


def test_label_accuracy():
  assert gm.label_accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 3])) == 0.75
  assert gm.label_accuracy(np.eye(3)[[2, 1, 0]], np.array([2, 1, 1])) == pytest.approx(2 / 3)
  with pytest.raises(ValueError, match='target_labels'):
    gm.label_accuracy(np.zeros(3, int), np.zeros(4, int))


# --------------------------------------------------------------------------- memorization


def test_memorization_flags_copies_of_training_images():
  rng = np.random.default_rng(6)
  train = rng.uniform(-1, 1, size=(300, 8, 8, 1))
  test = rng.uniform(-1, 1, size=(300, 8, 8, 1))
  fresh = rng.uniform(-1, 1, size=(200, 8, 8, 1))

  honest = gm.memorization_report(fresh, train, test)
  assert honest['fraction_below_threshold'] < 0.05
  assert 0.85 < honest['median_ratio'] < 1.15

  copies = train[rng.choice(300, 100, replace=False)]
  dist, idx = gm.nearest_neighbour_distances(copies, train)
  np.testing.assert_array_equal(dist, 0.0)
  np.testing.assert_array_equal(train[idx], copies)
  report = gm.memorization_report(np.concatenate([copies, fresh[:100]]), train, test)
  assert report['fraction_below_threshold'] >= 0.5
  assert report['expected_fraction'] == 0.01
  assert gm.memorization_report(copies, train, test)['median_ratio'] == 0.0
