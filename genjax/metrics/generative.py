"""Sample-quality metrics over features and class probabilities.

Inception Score (Salimans et al. 2016), KID (Bińkowski et al. 2018),
precision/recall (Kynkäänniemi et al. 2019), density/coverage (Naeem et al.
2020), class coverage and a memorization check. Each function takes arrays
(features [N, D] from any extractor, softmax probabilities [N, K], or images)
and knows nothing about models or data sets.

Pairwise distances run in jax, a chunk of queries against all references at a
time (memory ~ 4 * batch_size * M bytes), in float32 with full-precision
matmuls after centring both sets on the references' mean (distances are
translation invariant; centring keeps |x|^2 - 2x.y + |y|^2 from cancelling).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

_HIGHEST = jax.lax.Precision.HIGHEST


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def _matrix(x, name: str, min_rows: int = 1, flatten: bool = False) -> np.ndarray:
  x = np.asarray(x)
  if flatten and x.ndim > 2:
    x = x.reshape(x.shape[0], -1)
  if x.ndim != 2:
    accepted = '[N, D] (or [N, ...], flattened)' if flatten else '[N, D]'
    raise ValueError(f'{name} must be {accepted}; got shape {x.shape}.')
  if x.shape[0] < min_rows:
    raise ValueError(f'{name} needs at least {min_rows} rows; got {x.shape[0]}.')
  if not np.all(np.isfinite(x)):
    raise ValueError(f'{name} contains NaN or inf.')
  return x


def _pair(x, y, names: tuple[str, str], min_rows: int = 1, flatten: bool = False):
  x = _matrix(x, names[0], min_rows, flatten)
  y = _matrix(y, names[1], min_rows, flatten)
  if x.shape[1] != y.shape[1]:
    raise ValueError(f'{names[0]} and {names[1]} must have the same feature dimension; '
                     f'got {x.shape[1]} and {y.shape[1]}.')
  return x, y


def _probabilities(probs, name: str = 'probs') -> np.ndarray:
  p = _matrix(probs, name).astype(np.float64)
  if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
    raise ValueError(f'{name} must be [N, K] class probabilities (non-negative rows summing to 1, '
                     'i.e. a softmax, not logits).')
  return p


def _labels(probs_or_labels, num_classes: int, name: str) -> np.ndarray:
  x = np.asarray(probs_or_labels)
  if x.ndim == 2:
    if x.shape[1] != num_classes:
      raise ValueError(f'{name} has {x.shape[1]} columns but num_classes={num_classes}.')
    return np.argmax(x, axis=1)
  if x.ndim != 1 or not np.issubdtype(x.dtype, np.integer):
    raise ValueError(f'{name} must be integer labels [N] or probabilities [N, K]; '
                     f'got {x.dtype} {x.shape}.')
  if x.size and (x.min() < 0 or x.max() >= num_classes):
    raise ValueError(f'{name} must lie in [0, {num_classes}); got range [{x.min()}, {x.max()}].')
  return x


# ---------------------------------------------------------------------------
# Inception Score
# ---------------------------------------------------------------------------


def inception_score(probs, num_splits: int = 10, shuffle_seed: int | None = None) -> tuple[float, float]:
  """Inception Score, exp E_x KL(p(y|x) || p(y)) (Salimans et al. 2016).

  As in the authors' implementation: the N samples are cut into `num_splits`
  contiguous parts (part i is rows [i*N//s, (i+1)*N//s)), p(y) is the mean
  prediction of a part, and the score of a part is exp of the mean KL.

  Args:
    probs: [N, K] predicted class probabilities (softmax) of the samples.
    num_splits: s, the number of parts; 10 in the paper.
    shuffle_seed: if set, rows are first permuted by
      `np.random.RandomState(shuffle_seed).permutation(N)`, as torch-fidelity
      does (with seed 2020); None keeps the given order, as the authors' code.

  Returns:
    (mean, std) over parts; std is the population std (numpy's default).
    1 <= score <= K.

  Raises:
    ValueError: if probs are not probabilities or N < num_splits.
  """
  p = _probabilities(probs)
  n = p.shape[0]
  if num_splits < 1 or n < num_splits:
    raise ValueError(f'inception_score needs 1 <= num_splits <= N; got num_splits={num_splits}, N={n}.')
  if shuffle_seed is not None:
    p = p[np.random.RandomState(shuffle_seed).permutation(n)]
  scores = []
  for i in range(num_splits):
    part = p[i * n // num_splits:(i + 1) * n // num_splits]
    marginal = part.mean(axis=0, keepdims=True)
    kl = scipy.special.rel_entr(part, marginal).sum(axis=1)  # 0 log 0 = 0
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


# ---------------------------------------------------------------------------
# Kernel Inception Distance
# ---------------------------------------------------------------------------


@jax.jit
def _mmd2_polynomial(x, y):
  d = x.shape[1]
  kernel = lambda a, b: (jnp.matmul(a, b.T, precision=_HIGHEST) / d + 1.0) ** 3
  k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
  # The three weighted sums have weights adding to zero, so a common constant
  # cancels exactly; subtracting one near the kernel's mean keeps the float32
  # sums small (error ~1e-9 of the kernel's scale instead of ~1e-7 at D=2048, N=1000).
  c = jnp.mean(k_xy)

  def mean_off_diagonal(k):
    n = k.shape[0]
    return jnp.sum(jnp.where(jnp.eye(n, dtype=bool), 0.0, k - c)) / (n * (n - 1))

  return mean_off_diagonal(k_xx) + mean_off_diagonal(k_yy) - 2.0 * jnp.mean(k_xy - c)


def mmd2_unbiased(x, y) -> float:
  """Unbiased MMD^2 with the cubic polynomial kernel k(a, b) = (a.b / D + 1)^3.

  MMD^2_u = sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (n(n-1))
            - 2 sum_{i,j} k(x_i, y_j) / (mn)

  Args:
    x: [m, D] features, m >= 2.
    y: [n, D] features, n >= 2.

  Returns:
    The estimate, a float (can be slightly negative when the sets match).
    Kernels are float32 with full-precision matmuls; the sums are arranged so
    the result is within ~1e-9 x the kernel's scale of a float64 computation.
  """
  x, y = _pair(x, y, ('x', 'y'), min_rows=2)
  return float(_mmd2_polynomial(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)))


def kernel_inception_distance(features1, features2, num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
  """KID (Bińkowski et al. 2018): unbiased polynomial MMD^2 averaged over random subsets.

  Each subset draws `subset_size` rows of each set without replacement, from
  `np.random.RandomState(seed)` (first features1's indices, then features2's,
  per subset, as torch-fidelity does).

  Args:
    features1: [N1, D] features (e.g. real).
    features2: [N2, D] features (e.g. samples).
    num_subsets: number of subsets (100 in the paper's code).
    subset_size: rows per subset (1000); at most min(N1, N2).
    seed: subset sampling seed.

  Returns:
    (mean, std) of MMD^2 over subsets (population std). Papers often quote
    KID x 10^3.

  Raises:
    ValueError: on mismatched feature dims or subset_size > N.
  """
  f1, f2 = _pair(features1, features2, ('features1', 'features2'), min_rows=2)
  n = min(f1.shape[0], f2.shape[0])
  if not 2 <= subset_size <= n or num_subsets < 1:
    raise ValueError(f'KID needs 2 <= subset_size <= min(N1, N2) and num_subsets >= 1; got subset_size='
                     f'{subset_size}, N1={f1.shape[0]}, N2={f2.shape[0]}, num_subsets={num_subsets}.')
  rng = np.random.RandomState(seed)
  f1, f2 = jnp.asarray(f1, jnp.float32), jnp.asarray(f2, jnp.float32)
  mmds = []
  for _ in range(num_subsets):
    i1 = rng.choice(f1.shape[0], subset_size, replace=False)
    i2 = rng.choice(f2.shape[0], subset_size, replace=False)
    mmds.append(_mmd2_polynomial(f1[i1], f2[i2]))
  mmds = np.asarray(jax.device_get(mmds), np.float64)
  return float(mmds.mean()), float(mmds.std())


# ---------------------------------------------------------------------------
# Batched distances
# ---------------------------------------------------------------------------


def _sq_dists(q, r):
  qq = jnp.sum(q * q, axis=1)[:, None]
  rr = jnp.sum(r * r, axis=1)[None, :]
  return jnp.maximum(qq - 2.0 * jnp.matmul(q, r.T, precision=_HIGHEST) + rr, 0.0)  # [b, M]


@functools.partial(jax.jit, static_argnames='k')
def _k_smallest(q, r, k):
  neg, idx = jax.lax.top_k(-_sq_dists(q, r), k)
  return -neg, idx  # [b, k], ascending


@jax.jit
def _ball_hits(q, r, radii_sq):
  d = _sq_dists(q, r)
  return jnp.any(d <= radii_sq[None], axis=1), jnp.sum(d < radii_sq[None], axis=1)


def _centred(queries: np.ndarray, references: np.ndarray):
  centre = references.astype(np.float64).mean(axis=0)
  return ((queries - centre).astype(np.float32), (references - centre).astype(np.float32))


def _map_chunks(fn, queries: np.ndarray, *args, batch_size: int):
  """fn(chunk [b, D], *args) over fixed-size chunks of queries (the last one padded: one compile)."""
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1; got {batch_size}.')
  n = queries.shape[0]
  b = min(batch_size, n)
  outs = []
  for start in range(0, n, b):
    chunk = queries[start:start + b]
    valid = chunk.shape[0]
    if valid < b:
      chunk = np.concatenate([chunk, np.zeros((b - valid,) + chunk.shape[1:], chunk.dtype)])
    outs.append(jax.tree.map(lambda o, v=valid: np.asarray(o)[:v], fn(chunk, *args)))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outs)


def nearest_neighbour_distances(queries, references,
                                batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
  """Euclidean distance from each query to its nearest reference, and that reference's index.

  The neighbour is found with batched float32 distances; its distance is then
  recomputed exactly in float64, so an exact copy reads 0.

  Args:
    queries: [N, D] features, or [N, H, W, C] images (flattened: pixel space).
    references: [M, D] (or [M, H, W, C]), same D.
    batch_size: queries per chunk (memory ~ 4 * batch_size * M bytes).

  Returns:
    (distances [N] float64, indices [N] int) into references.
  """
  q, r = _pair(queries, references, ('queries', 'references'), flatten=True)
  qc, rc = _centred(q, r)
  _, idx = _map_chunks(functools.partial(_k_smallest, k=1), qc, jnp.asarray(rc), batch_size=batch_size)
  idx = idx[:, 0]
  dist = np.linalg.norm(q.astype(np.float64) - r[idx].astype(np.float64), axis=1)
  return dist, idx


def knn_radii(features, k: int = 3, batch_size: int = 1024) -> np.ndarray:
  """Distance from each point to its k-th nearest neighbour in the same set, itself excluded.

  Args:
    features: [N, D], N > k.
    k: neighbour rank (k=3 in Kynkäänniemi et al., k=5 in Naeem et al.).
    batch_size: rows per chunk.

  Returns:
    [N] float64 radii.
  """
  x = _matrix(features, 'features', min_rows=1)
  if not 1 <= k < x.shape[0]:
    raise ValueError(f'knn_radii needs 1 <= k < N; got k={k}, N={x.shape[0]}.')
  xc, _ = _centred(x, x)
  # The k+1 smallest include the point itself at distance 0.
  _, idx = _map_chunks(functools.partial(_k_smallest, k=k + 1), xc, jnp.asarray(xc),
                       batch_size=batch_size)
  kth = idx[:, -1]
  return np.linalg.norm(x.astype(np.float64) - x[kth].astype(np.float64), axis=1)


def _manifold_hits(queries, references, radii, batch_size):
  qc, rc = _centred(queries, references)
  radii_sq = jnp.asarray(np.square(radii), jnp.float32)
  return _map_chunks(_ball_hits, qc, jnp.asarray(rc), radii_sq, batch_size=batch_size)


# ---------------------------------------------------------------------------
# Precision / recall, density / coverage
# ---------------------------------------------------------------------------


def precision_recall(real, fake, k: int = 3, batch_size: int = 1024) -> dict[str, float]:
  """Improved precision and recall (Kynkäänniemi et al. 2019).

  The real manifold is the union of balls around each real feature with
  radius its k-th nearest real neighbour distance; precision is the fraction
  of fake features inside it (dist <= radius, as in the authors' code).
  Recall swaps the roles.

  Args:
    real: [N, D] features of real data, N > k.
    fake: [M, D] features of samples, M > k.
    k: neighbourhood size (3 in the paper).
    batch_size: rows per distance chunk.

  Returns:
    {'precision': float, 'recall': float}, each in [0, 1].
  """
  real, fake = _pair(real, fake, ('real', 'fake'), min_rows=k + 1)
  precision, _ = _manifold_hits(fake, real, knn_radii(real, k, batch_size), batch_size)
  recall, _ = _manifold_hits(real, fake, knn_radii(fake, k, batch_size), batch_size)
  return {'precision': float(precision.mean()), 'recall': float(recall.mean())}


def density_coverage(real, fake, k: int = 5, batch_size: int = 1024) -> dict[str, float]:
  """Density and coverage (Naeem et al. 2020), with strict inequalities as in the authors' code.

  density = 1/(kM) sum_j #{i : |f_j - r_i| < R_i}   (can exceed 1)
  coverage = 1/N #{i : min_j |f_j - r_i| < R_i}
  with R_i the k-th nearest real neighbour distance of real point i.

  Args:
    real: [N, D] features of real data, N > k.
    fake: [M, D] features of samples.
    k: neighbourhood size (5 in the paper).
    batch_size: rows per distance chunk.

  Returns:
    {'density': float, 'coverage': float}.
  """
  real, fake = _pair(real, fake, ('real', 'fake'), min_rows=1)
  radii = knn_radii(real, k, batch_size)
  _, counts = _manifold_hits(fake, real, radii, batch_size)
  nearest_fake, _ = nearest_neighbour_distances(real, fake, batch_size)
  return {'density': float(counts.sum() / (k * fake.shape[0])),
          'coverage': float(np.mean(nearest_fake < radii))}


# ---------------------------------------------------------------------------
# Classes
# ---------------------------------------------------------------------------


def class_coverage(probs_or_labels, num_classes: int) -> dict:
  """How evenly samples spread over classes, by their predicted labels.

  Args:
    probs_or_labels: [N, K] probabilities (argmax taken) or [N] integer labels.
    num_classes: K >= 2.

  Returns:
    {'entropy': entropy of the label histogram in nats (log K when uniform),
     'normalized_entropy': entropy / log K in [0, 1],
     'num_covered': number of classes predicted at least once,
     'histogram': [K] int counts}.
  """
  if num_classes < 2:
    raise ValueError(f'class_coverage needs num_classes >= 2; got {num_classes}.')
  labels = _labels(probs_or_labels, num_classes, 'probs_or_labels')
  if labels.size == 0:
    raise ValueError('class_coverage needs at least one sample.')
  hist = np.bincount(labels, minlength=num_classes)
  entropy = float(scipy.special.entr(hist / hist.sum()).sum())
  return {'entropy': entropy, 'normalized_entropy': entropy / np.log(num_classes),
          'num_covered': int(np.count_nonzero(hist)), 'histogram': hist}


def label_accuracy(pred_labels, target_labels) -> float:
  """Fraction of conditional samples classified as the class they were drawn for.

  Args:
    pred_labels: [N] integer predictions, or [N, K] probabilities (argmax taken).
    target_labels: [N] integer classes the samples were conditioned on.

  Returns:
    Accuracy in [0, 1].
  """
  target = np.asarray(target_labels)
  pred = np.asarray(pred_labels)
  if pred.ndim == 2:
    pred = np.argmax(pred, axis=1)
  if pred.ndim != 1 or target.shape != pred.shape or pred.size == 0:
    raise ValueError('label_accuracy expects pred_labels [N] (or [N, K]) and target_labels [N], N >= 1; '
                     f'got {np.shape(pred_labels)} and {target.shape}.')
  return float(np.mean(pred == target))


# ---------------------------------------------------------------------------
# Memorization
# ---------------------------------------------------------------------------


def memorization_report(samples, train, test, quantile: float = 0.01,
                        batch_size: int = 1024) -> dict[str, float]:
  """Are samples closer to the training set than fresh data is?

  Compares d(sample, nearest train) with d(test, nearest train): held-out data
  shows how close an honest new image comes to the training set. A model that
  copies training images has many samples below the `quantile` of the test
  distances (expected fraction: `quantile`) and a median ratio well below 1.

  Args:
    samples: [N, D] features or [N, H, W, C] images (pixel space).
    train: [M, D] (or images) the model was trained on.
    test: [T, D] (or images) held out; T >= 1 / quantile is sensible.
    quantile: the test-distance quantile taken as 'suspiciously close'.
    batch_size: rows per distance chunk.

  Returns:
    {'median_sample_to_train', 'median_test_to_train', 'median_ratio'
     (samples / test), 'threshold' (the test quantile), 'fraction_below_threshold'
     (of samples, strictly below), 'expected_fraction' (= quantile)}.
  """
  if not 0.0 < quantile < 1.0:
    raise ValueError(f'quantile must be in (0, 1); got {quantile}.')
  d_sample, _ = nearest_neighbour_distances(samples, train, batch_size)
  d_test, _ = nearest_neighbour_distances(test, train, batch_size)
  threshold = float(np.quantile(d_test, quantile))
  med_sample, med_test = float(np.median(d_sample)), float(np.median(d_test))
  return {'median_sample_to_train': med_sample, 'median_test_to_train': med_test,
          'median_ratio': med_sample / med_test if med_test > 0 else float('inf'),
          'threshold': threshold, 'fraction_below_threshold': float(np.mean(d_sample < threshold)),
          'expected_fraction': float(quantile)}
