"""The sample-quality report every generative family gives, with its real-data floors.

A number without a reference point misleads: each metric comes with the same
metric computed on real data at the same N (train split against test split),
and FID and KID also as a ratio to that floor, as ANCHORS.md quotes them.
"""
from __future__ import annotations

import time

import numpy as np

from genjax.metrics import fid as fid_lib
from genjax.metrics import generative
from genjax.metrics.extractors import FeatureExtractor


def _timed(costs: dict, name: str, fn, *args, **kwargs):
  t0 = time.perf_counter()
  out = fn(*args, **kwargs)
  costs[name] = costs.get(name, 0.0) + time.perf_counter() - t0
  return out


def sample_quality(extractor: FeatureExtractor, samples: np.ndarray, reference: np.ndarray,
                   floor_real: np.ndarray, *, train: np.ndarray | None = None,
                   sample_labels: np.ndarray | None = None,
                   reference_labels: np.ndarray | None = None,
                   kid_subset_size: int = 500, kid_num_subsets: int = 50, pr_k: int = 3,
                   seed: int = 0, with_costs: bool = False) -> dict:
  """FID, IS, KID, precision/recall, class coverage and memorization, each beside its floor.

  Args:
    extractor: images -> (features, class probabilities).
    samples: generated images [N, H, W, C] in [-1, 1].
    reference: real images [M, H, W, C] the samples are compared with (the test split).
    floor_real: other real images [N, H, W, C] (from the train split), compared with
      `reference` exactly as the samples are: the real-data floor at the same N.
    train: training images [T, H, W, C] for the memorization report, or None.
    sample_labels: [N] classes the samples were drawn for (conditional models), or None.
    reference_labels: [M] true classes of `reference`: the label-accuracy floor.
    kid_subset_size, kid_num_subsets: KID's subsets (capped at N).
    pr_k: neighbourhood size of precision/recall (3, Kynkäänniemi et al. 2019).
    seed: seed of KID's subset draws.
    with_costs: add `cost_s/<metric>` wall-clock seconds.

  Returns:
    A flat dict: fid, fid_floor, fid_ratio, is, is_std, is_real, kid, kid_std,
    kid_floor, precision, recall, precision_floor, recall_floor, class_entropy,
    class_entropy_normalized, classes_covered, (label_accuracy), memorization_*,
    plus the provenance fields feature_extractor, feature_extractor_sha256 and
    num_samples.
  """
  n = len(samples)
  if len(floor_real) != n:
    raise ValueError(f'floor_real must have as many images as samples ({n}); got {len(floor_real)}.')
  costs = {}
  f_gen, p_gen = _timed(costs, 'features', extractor, samples)
  f_ref, p_ref = _timed(costs, 'features', extractor, reference)
  f_floor, _ = _timed(costs, 'features', extractor, floor_real)
  out = {'feature_extractor': extractor.name, 'feature_extractor_sha256': extractor.sha256,
         'num_samples': n, 'num_reference': len(reference)}

  fid = _timed(costs, 'fid', fid_lib.fid_from_features, f_gen, f_ref)
  fid_floor = _timed(costs, 'fid', fid_lib.fid_from_features, f_floor, f_ref)
  out.update(fid=fid, fid_floor=fid_floor, fid_ratio=fid / fid_floor)

  splits = 10 if n >= 100 else 1
  is_mean, is_std = _timed(costs, 'is', generative.inception_score, p_gen, splits)
  out.update({'is': is_mean, 'is_std': is_std,
              'is_real': generative.inception_score(p_ref, splits)[0]})

  size = min(kid_subset_size, n, len(reference))
  kid = _timed(costs, 'kid', generative.kernel_inception_distance, f_gen, f_ref,
               num_subsets=kid_num_subsets, subset_size=size, seed=seed)
  kid_floor = generative.kernel_inception_distance(f_floor, f_ref, num_subsets=kid_num_subsets,
                                                   subset_size=size, seed=seed)
  out.update(kid=kid[0], kid_std=kid[1], kid_floor=kid_floor[0])

  pr = _timed(costs, 'precision_recall', generative.precision_recall, f_ref, f_gen, k=pr_k)
  pr_floor = generative.precision_recall(f_ref, f_floor, k=pr_k)
  out.update(precision=pr['precision'], recall=pr['recall'],
             precision_floor=pr_floor['precision'], recall_floor=pr_floor['recall'])

  coverage = generative.class_coverage(p_gen, p_gen.shape[-1])
  out.update(class_entropy=coverage['entropy'],
             class_entropy_normalized=coverage['normalized_entropy'],
             classes_covered=coverage['num_covered'])
  if sample_labels is not None:
    out['label_accuracy'] = generative.label_accuracy(p_gen, sample_labels)
    if reference_labels is not None:
      out['label_accuracy_real'] = generative.label_accuracy(p_ref, reference_labels)
  if train is not None:
    f_train, _ = _timed(costs, 'features', extractor, train)
    mem = _timed(costs, 'memorization', generative.memorization_report, f_gen, f_train, f_ref)
    out.update(memorization_median_ratio=mem['median_ratio'],
               memorization_fraction_close=mem['fraction_below_threshold'],
               memorization_expected_fraction=mem['expected_fraction'])
  if with_costs:
    out.update({f'cost_s/{k}': v for k, v in costs.items()})
  return out
