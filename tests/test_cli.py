"""The command line as users run it: `genjax sample` and `genjax eval` on a trained run."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from genjax.train import loop
from tests.conftest import REPO

pytestmark = pytest.mark.xdist_group('cli')


def _genjax(*args, timeout=300):
  env = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=1'}
  done = subprocess.run([sys.executable, '-m', 'genjax.main', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)
  return done


@pytest.fixture(scope='module')
def cvae_run(tmp_path_factory):
  """A conditional VAE trained 2 steps: a conditional generator that samples fast."""
  from genjax.config import load_config
  workdir = str(tmp_path_factory.mktemp('cvae'))
  config = load_config(os.path.join(REPO, 'configs', 'cvae_mnist.py:smoke'))
  loop.train(config, workdir)
  return workdir


def test_sample_writes_uint8_images_and_labels_independent_of_the_batch_size(cvae_run, tmp_path):
  out_a, out_b, out_c = (str(tmp_path / f'{n}.npz') for n in 'abc')
  a = _genjax('sample', f'--workdir={cvae_run}', '--num=12', '--labels=3', f'--out={out_a}')
  assert a.returncode == 0, a.stderr
  # The same run with another sampling batch: per-sample seeds give the same images.
  b = _genjax('sample', '--config=configs/cvae_mnist.py:smoke', '--config.eval.sample_batch_size=5',
              f'--workdir={cvae_run}', '--num=12', '--labels=3', f'--out={out_b}')
  assert b.returncode == 0, b.stderr
  ra, rb = np.load(out_a), np.load(out_b)
  assert ra['images'].dtype == np.uint8 and ra['images'].shape == (12, 28, 28, 1)
  np.testing.assert_array_equal(ra['labels'], np.full(12, 3))
  np.testing.assert_array_equal(ra['images'], rb['images'])
  # No labels given: balanced classes; bad labels: a clear error, exit 2 or usage error.
  c = _genjax('sample', f'--workdir={cvae_run}', '--num=20', f'--out={out_c}')
  assert c.returncode == 0, c.stderr
  np.testing.assert_array_equal(np.load(out_c)['labels'], np.arange(20) % 10)
  bad = _genjax('sample', f'--workdir={cvae_run}', '--num=4', '--labels=12', f'--out={out_c}')
  assert bad.returncode != 0 and 'outside 0..9' in bad.stderr


def test_eval_writes_metrics_with_their_provenance(cvae_run):
  done = _genjax('eval', f'--workdir={cvae_run}')
  assert done.returncode == 0, done.stderr
  result = json.load(open(os.path.join(cvae_run, 'eval.json')))
  for key in ('fid', 'fid_floor', 'is', 'is_real', 'kid', 'kid_floor', 'precision', 'recall',
              'precision_floor', 'recall_floor', 'label_accuracy', 'num_samples', 'sample_seed',
              'feature_extractor', 'feature_extractor_sha256', 'split', 'reference_split',
              'floor_split', 'step'):
    assert key in result, key
  assert result['feature_extractor_sha256'].startswith('fb547d0e')


def test_a_run_written_before_a_config_key_existed_still_loads(tmp_path):
  from genjax.main import _workdir_config
  saved = {'seed': 3, 'model': {'name': 'stylegan', 'disc_channels': [8, 8]},
           'method': {'name': 'gan', 'r1_gamma': 0.5}}
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  config = _workdir_config(str(tmp_path))
  assert config.seed == 3 and config.method.r1_gamma == 0.5  # Saved values win,
  assert list(config.model.disc_channels) == [8, 8]
  assert config.model.mbstd_group == 4 and config.method.diff_augment == ''  # later keys default.
  with pytest.raises(AttributeError):
    config.model.not_a_key  # pylint: disable=pointless-statement
