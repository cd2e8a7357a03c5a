"""Drawing samples with per-sample seeds, and scoring them with the metrics suite."""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from genjax.core.batching import batched_apply
from genjax.methods.api import EvalContext
from genjax.metrics import extractors, suite
from genjax.core.state import TrainState

SampleFn = Callable[[TrainState, jax.Array, jax.Array | None], jax.Array]


def default_labels(num_classes: int, n: int) -> np.ndarray | None:
  """Labels 0, 1, ..., K-1, 0, 1, ... [n] for conditional models (K > 0); None for K = 0."""
  if not num_classes:
    return None
  return np.arange(n, dtype=np.int32) % num_classes


def draw(sample_fn: SampleFn, state: TrainState, rng: jax.Array, n: int,
         labels: np.ndarray | None = None, batch_size: int = 250) -> np.ndarray:
  """n samples [n, H, W, C] in [-1, 1]; sample i from key fold_in(rng, i) and labels[i].

  Per-sample seeds (as in EDM): the samples do not depend on the batch size.

  Args:
    sample_fn: a method's `sample(state, keys [b], labels [b] | None)`.
    state: host-local state.
    rng: the base key.
    n: number of samples.
    labels: [n] int conditions, or None for unconditional models.
    batch_size: samples per call.
  """
  keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(np.arange(n, dtype=np.uint32))
  inputs = {'keys': keys}
  if labels is not None:
    inputs['labels'] = np.asarray(labels, np.int32)
  return batched_apply(lambda b: sample_fn(state, b['keys'], b.get('labels')), inputs,
                       min(batch_size, n))


def evaluate_samples(sample_fn: SampleFn, state: TrainState, ctx: EvalContext,
                     num_classes: int = 0) -> dict:
  """Draws `eval.num_samples` samples and reports `suite.sample_quality` against the floors.

  Reference: the `eval.split` split; floor: as many `data.train_split` images
  (a seeded random subset). Conditional models (`num_classes` K > 0) draw
  balanced labels 0..K-1 and also report label accuracy. Returns {} when `eval.feature_extractor` is None.
  """
  c = ctx.config
  if c.eval.feature_extractor is None or not c.eval.num_samples:
    return {}
  extractor = extractors.get_extractor(c.eval.feature_extractor, c.eval.feature_extractor_path)
  n = c.eval.num_samples
  labels = default_labels(num_classes, n)
  samples = draw(sample_fn, state, jax.random.fold_in(ctx.rng, 0), n, labels,
                 c.eval.sample_batch_size)
  reference = ctx.load_split(c.eval.split, None)
  train = ctx.load_split(c.data.train_split, None)
  if len(train['image']) < n:
    raise ValueError(f'eval.num_samples={n} exceeds the {len(train["image"])} training images '
                     'that form the real-data floor.')
  pick = np.random.default_rng(c.seed).choice(len(train['image']), n, replace=False)
  report = suite.sample_quality(
      extractor, samples, reference['image'], train['image'][pick], train=train['image'],
      sample_labels=labels, reference_labels=reference.get('label'), seed=c.seed,
      kid_subset_size=c.eval.kid_subset_size, kid_num_subsets=c.eval.kid_num_subsets)
  report['sample_seed'] = c.seed
  report['reference_split'] = c.eval.split
  report['floor_split'] = c.data.train_split
  return report
