"""Exports a trained mnist5k classifier run as the bundled feature extractor.

  .venv/bin/genjax train --config=configs/classifier_mnist.py --workdir=runs/feature_extractor
  .venv/bin/python experiments/feature_extractor/export.py runs/feature_extractor

Writes genjax/assets/mnist5k_classifier_v1.npz and its .json (sha256, test
accuracy measured here through the extractor itself, the training command).
"""
import json
import os
import sys

import jax
import numpy as np

from genjax import data
from genjax.main import _workdir_config
from genjax.metrics import extractors, weights_file
from genjax.train import run as run_lib


def main(workdir: str, out: str = extractors.MNIST_CLASSIFIER) -> None:
  config = _workdir_config(workdir)
  run = run_lib.setup(config, workdir)
  state = run_lib.host_local(run_lib.restore_or_init(run, require_checkpoint=True), run.mesh)
  m = config.model
  info = {
      'model': {'num_classes': m.num_classes, 'channels': list(m.channels),
                'feature_dim': m.feature_dim},
      'trained_by': f'genjax train --config=configs/classifier_mnist.py --workdir={workdir}',
      'step': int(state.step), 'data': 'mnist5k train split (4,000 digits)',
      'date': run_lib.writers.now(),
  }
  os.makedirs(os.path.dirname(out), exist_ok=True)
  weights_file.save(state.eval_params, out, info)
  # Measure through the extractor exactly as the metrics will use it.
  test = data.load_split(config, 'test')
  _, probs = extractors.mnist5k_classifier(out)(test['image'])
  info['test_accuracy'] = float(np.mean(probs.argmax(-1) == test['label']))
  digest = weights_file.save(state.eval_params, out, info)
  print(json.dumps({**info, 'sha256': digest}, indent=2))


if __name__ == '__main__':
  main(*sys.argv[1:])
