"""The training loop: smoke runs, sharding equivalence, exact resume, fail-loud NaN, signals."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CONFIG_FILES, REPO
import subprocesses
import tensorflow_datasets as tfds

from genjax import methods
from genjax.data import pipeline, sources
from genjax.data.bundled import BUNDLED
from genjax.config import load_config
from genjax.train import loop
from genjax.train import run as run_lib


def _params(state):
  return jax.tree.map(np.asarray, jax.device_get(state.params))


def _assert_trees(a, b, exact=True, **tol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    if exact:
      np.testing.assert_array_equal(x, y)
    else:
      np.testing.assert_allclose(x, y, **tol)


# CI (30 minutes on 2 cores) trains one config per family end to end (a conditional model,
# online data through TFDS's mock, inpainting, SR); the other configs differ in data, network
# or hyperparameters: CI builds them and lowers their step, `make test-all` trains them too.
# (The LDM stages and ESRGAN train in test_ldm and test_sr.)
TRAINED_IN_CI = {
    'classifier_mnist.py', 'vae_mnist.py', 'cvae_mnist.py', 'dcgan_mnist.py',
    'dcgan_celeba64.py', 'stylegan_mnist.py', 'ddpm_mnist.py', 'rrdb_psnr_mnist.py',
    'inpaint_ae_mnist.py', 'pconv_mnist.py'}
LOWERED_IN_CI = [p for p in CONFIG_FILES if os.path.basename(p) not in TRAINED_IN_CI]


@pytest.mark.parametrize('path', [
    pytest.param(p, marks=() if os.path.basename(p) in TRAINED_IN_CI else pytest.mark.slow)
    for p in CONFIG_FILES], ids=os.path.basename)
def test_smoke_variant_trains_evaluates_and_writes_outputs(path, tmp_path, monkeypatch):
  config = load_config(path + ':smoke')
  if config.method == 'sr' and config.sr.init_from:  # ESRGAN starts from a finished RRDB-PSNR run.
    loop.train(load_config(path.replace('esrgan', 'rrdb_psnr') + ':smoke'), str(tmp_path / 'psnr'))
    config.sr.init_from = str(tmp_path / 'psnr')
  if config.data.name in BUNDLED or config.data.name in pipeline.VIEWS:  # Offline data.
    state = loop.train(config, str(tmp_path))
  else:  # Online data sets (cifar10, celeb_a, mnist): TFDS's mock data, as on an online machine.
    monkeypatch.setattr(sources, '_check_online', lambda: None)
    config.data.download = True  # as an online user would; the mock makes the download a no-op
    with tfds.testing.mock_data(num_examples=64):
      state = loop.train(config, str(tmp_path))
  assert int(state.step) == 2
  with open(tmp_path / 'eval.json') as f:
    result = json.load(f)
  assert result['step'] == 2 and result['method'] == config.method
  assert {'seed', 'split', 'date', 'data'} <= set(result)
  rows = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
  assert [r['step'] for r in rows if 'loss' in r] == [1, 2]
  assert os.listdir(tmp_path / 'tensorboard')
  if config.method != 'ldm_clip':  # The text encoder's stage draws no pictures.
    assert os.listdir(tmp_path / 'images')
  assert os.path.isdir(tmp_path / 'checkpoints' / '2')


@pytest.mark.parametrize('path', LOWERED_IN_CI, ids=os.path.basename)
def test_smoke_variant_builds_and_its_step_lowers(path, tmp_path, monkeypatch):
  """Config checks, data pipeline, model init shapes and the traced train step, unrun."""
  config = load_config(path + ':smoke')
  if config.method == 'sr' and config.sr.init_from:  # ESRGAN: a fresh generator in place of
    from genjax.methods.sr import method as sr_method  # the RRDB-PSNR run's (test_sr loads one).

    def fresh_generator(spec):
      lr = jnp.zeros((1, spec.hr_side[0] // spec.scale, spec.hr_side[1] // spec.scale,
                      spec.channels))
      return spec.generator.init(jax.random.key(0), lr)['params']

    monkeypatch.setattr(sr_method, 'load_psnr_generator', fresh_generator)
  if config.data.name in BUNDLED or config.data.name in pipeline.VIEWS:
    run = run_lib.setup(config, str(tmp_path))
  else:  # Online data sets: TFDS's mock data, as in the test above.
    monkeypatch.setattr(sources, '_check_online', lambda: None)
    config.data.download = True
    with tfds.testing.mock_data(num_examples=64):
      run = run_lib.setup(config, str(tmp_path))
  try:
    step_fn, _ = loop.make_train_step(run)
    batch = pipeline.batch_spec(run.pipeline)
    state_out, metrics = step_fn.eval_shape(run.abstract_state, batch)
  finally:
    run.checkpointer.close()
  assert jax.tree.structure(state_out) == jax.tree.structure(run.abstract_state)
  assert 'loss' in metrics and metrics['loss'].shape == ()


def _three_steps(load, tmp, **mesh):
  overrides = {f'mesh__{k}': v for k, v in mesh.items()}
  config = load('classifier_mnist.py:smoke', train__num_steps=10, train__eval_every_steps=100,
                train__images_every_steps=100, **overrides)
  return _params(loop.train(config, str(tmp), stop_at_step=3))  # Stops before any evaluation.


def test_one_device_data_parallel_and_fsdp_agree(load, tmp_path):
  one = _three_steps(load, tmp_path / 'one', num_devices=1)
  data_parallel = _three_steps(load, tmp_path / 'dp', data=8)
  fsdp = _three_steps(load, tmp_path / 'fsdp', data=2, fsdp=4)
  _assert_trees(one, data_parallel, exact=False, rtol=2e-5, atol=2e-6)
  _assert_trees(one, fsdp, exact=False, rtol=2e-5, atol=2e-6)


def test_fsdp_really_shards_parameters(load):
  config = load('classifier_mnist.py:smoke', mesh__data=2, mesh__fsdp=4)
  run = run_lib.setup(config, '/tmp/unused')
  specs = [s.spec for s in jax.tree.leaves(run.state_shardings.params)]
  assert any('fsdp' in spec for spec in specs)


def test_resume_equals_uninterrupted_run_bit_for_bit(load, tmp_path):
  # Stopping at step 5 of 6 skips the final evaluation and pictures: only the steps run.
  kw = dict(train__num_steps=6, train__checkpoint_every_steps=100, train__eval_every_steps=100,
            train__images_every_steps=100, classifier__augment_shift=2, classifier__dropout=0.3)
  straight = loop.train(load('classifier_mnist.py:smoke', **kw), str(tmp_path / 'a'), stop_at_step=5)
  stopped = loop.train(load('classifier_mnist.py:smoke', **kw), str(tmp_path / 'b'), stop_at_step=2)
  assert int(stopped.step) == 2
  resumed = loop.train(load('classifier_mnist.py:smoke', **kw), str(tmp_path / 'b'), stop_at_step=5)
  assert int(resumed.step) == 5
  _assert_trees(_params(straight), _params(resumed))
  _assert_trees(jax.device_get(straight.opt_state), jax.device_get(resumed.opt_state))
  rows = [json.loads(line) for line in open(tmp_path / 'b' / 'metrics.jsonl')]
  assert [r['step'] for r in rows if 'loss' in r] == [1, 2, 3, 4, 5]


def test_non_finite_loss_stops_and_names_step_and_checkpoint(load, tmp_path, monkeypatch):
  make_classifier = methods.METHODS['classifier']

  def poisoned(config, image_shape):  # The loss turns NaN from step 3 on.
    method = make_classifier(config, image_shape)

    def train_step(state, batch, rng):
      new_state, metrics = method.train_step(state, batch, rng)
      nan_from_3 = jnp.where(state.step + 1 >= 3, jnp.nan, 0.0)
      return new_state, {**metrics, 'loss': metrics['loss'] + nan_from_3}

    return method.__class__(**{**method.__dict__, 'train_step': train_step})

  monkeypatch.setitem(methods.METHODS, 'classifier', poisoned)
  config = load('classifier_mnist.py:smoke', train__num_steps=6, train__checkpoint_every_steps=2,
                train__log_every_steps=4)
  with pytest.raises(loop.NonFiniteLossError, match=r'at step 3.*checkpoints/2'):
    loop.train(config, str(tmp_path))
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2']  # Nothing NaN was saved.


def test_sigterm_saves_a_checkpoint_and_the_same_command_resumes(tmp_path):
  cmd = [sys.executable, '-m', 'genjax.main', 'train',
         '--config=configs/classifier_mnist.py:smoke', f'--workdir={tmp_path}',
         '--config.train.num_steps=60', '--config.train.eval_every_steps=60',
         '--config.train.images_every_steps=60']
  env = subprocesses.env(None)
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  lines = []
  for line in proc.stdout:
    lines.append(line)
    if line.startswith('step 3/'):
      proc.send_signal(signal.SIGTERM)
      break
  out = ''.join(lines) + proc.communicate(timeout=120)[0]
  assert proc.returncode == 128 + signal.SIGTERM, out
  assert 'checkpoint saved' in out
  latest = max(int(s) for s in os.listdir(tmp_path / 'checkpoints'))
  assert 3 <= latest < 60 and f'checkpoints/{latest}' in out
  done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stdout + done.stderr
  assert f'Resumed from' in done.stdout and f'at step {latest}' in done.stdout and 'step 60/60' in done.stdout


def test_a_checkpoint_of_another_model_is_refused_and_kept(load, tmp_path):
  from genjax.config import ConfigError
  workdir = str(tmp_path / 'run')
  loop.train(load('classifier_mnist.py:smoke', train__num_steps=1, train__eval_every_steps=100),
             workdir)
  saved = open(os.path.join(workdir, 'config.json')).read()
  wider = load('classifier_mnist.py:smoke', train__num_steps=2, classifier__feature_dim=64)
  with pytest.raises(ConfigError, match='does not fit this config.*fresh --workdir') as err:
    loop.train(wider, workdir)
  # Named from the checkpoint's metadata, before any array is read.
  assert "params/feature/bias has shape (128,) in the checkpoint but (64,)" in str(err.value)
  assert open(os.path.join(workdir, 'config.json')).read() == saved  # The run's record is kept.
  assert os.listdir(os.path.join(workdir, 'checkpoints')) == ['1']
