"""Exports a trained mnist5k classifier run as the bundled feature extractor.

    genjax train --config=configs/classifier_mnist.py --workdir=runs/feature_extractor
    genjax export-extractor --workdir=runs/feature_extractor \
        --out=genjax/assets/mnist5k_classifier_v1.npz

Writes the run's (EMA) weights and a .json beside them: the classifier's shape,
the step, the training command, the sha256, and the test accuracy measured
through the extractor itself, as the metrics will use it.
"""
from __future__ import annotations

import os

import ml_collections
import numpy as np

from genjax import config as config_lib
from genjax import data
from genjax.core import writers
from genjax.metrics import extractors, weights_file
from genjax.train import trained as trained_lib


def export(workdir: str, out: str, config: ml_collections.ConfigDict | None = None) -> dict:
  """Writes the classifier of the run in `workdir` to `out` (.npz) and `<out>.json`.

  Args:
    workdir: a finished `genjax train --config=configs/classifier_mnist.py` run.
    out: the weights file to write (the bundled one is `extractors.MNIST_CLASSIFIER`).
    config: the run's config; None reads `workdir/config.json`.

  Returns:
    The info written to `<out>.json`, its 'sha256' included.

  Raises:
    FileNotFoundError: `workdir` is not a training run, or has no checkpoint.
    ConfigError: the run is not a classifier's.
  """
  config = trained_lib.workdir_config(workdir) if config is None else config
  if config.method != 'classifier':
    raise config_lib.ConfigError(f'{workdir} is a {config.method!r} run; the feature extractor is '
                                 'a classifier (genjax train --config=configs/classifier_mnist.py).')
  trained = trained_lib.load_trained(workdir, config)
  c = config.classifier
  info = {
      'model': {'num_classes': c.num_classes, 'channels': list(c.channels),
                'feature_dim': c.feature_dim},
      'trained_by': f'genjax train --config=configs/classifier_mnist.py --workdir={workdir}',
      'step': trained.step, 'data': 'mnist5k train split (4,000 digits)',
      'date': writers.now(),
  }
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  weights_file.save(trained.state.eval_params, out, info)
  # Measure through the extractor exactly as the metrics will use it.
  test = data.load_split(config, 'test')
  _, probs = extractors.mnist5k_classifier(out)(test['image'])
  info['test_accuracy'] = float(np.mean(probs.argmax(-1) == test['label']))
  digest = weights_file.save(trained.state.eval_params, out, info)
  return {**info, 'sha256': digest}
