"""Config fuzzing (hypothesis): any override either builds a run or is refused up front.

An override is what a user types, `--config.GROUP.FIELD=TEXT`, parsed as `genjax` parses it
(ml_collections' config flag, `=None` as None, unknown keys refused by
`genjax.methods.check_key`). It must then either pass every check a run makes before its
first step (`genjax.train.run.setup`'s: validation, the family's spec, the mesh, the data,
the model's and the train step's shapes, traced with `jax.eval_shape`), or be refused by one
of them with a user's error (one line at the CLI) that names the key. Anything else, a
TypeError from deep inside a model, say, is what the CLI would print as a traceback.
"""
import functools
import json
import os

import jax
import jax.numpy as jnp
import pytest
from absl import app, flags
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import ml_collections
from ml_collections import config_flags

from conftest import REPO
from genjax import config as config_lib
from genjax import data, methods
from genjax import main as cli
from genjax.core import sharding
from genjax.train import run as run_lib

settings.register_profile('ci', max_examples=12, derandomize=True, deadline=None,
                          suppress_health_check=list(HealthCheck), database=None)

# One smoke config per family (the conditional and variant configs share their fields).
SPECS = ('classifier_mnist.py:smoke', 'vae_mnist.py:smoke', 'dcgan_mnist.py:smoke',
         'stylegan_mnist.py:smoke', 'ddpm_mnist.py:smoke')
USERS_ERRORS = (config_lib.ConfigError, data.DataError, flags.Error, app.UsageError)
# What users type: wrong types, out of range, the string 'None', huge numbers, odd text.
TEXTS = ('None', "'None'", '0', '-1', '-0.5', '1e-30', '1e300', '-1e300', 'inf', 'nan',
         str(10 ** 30), '3', '2.5', 'True', 'abc', '', '(1, 2)', '()', '[]', "{'a': 1}")


def _spec_path(spec: str) -> str:
  return os.path.join(REPO, 'configs', spec)


def keys_of(spec: str) -> list[str]:
  """Every field of the config, dotted, plus keys it lacks."""
  config = config_lib.load_config(_spec_path(spec))
  # Not data.data_dir: any text is a valid path, where the data would be prepared.
  keys = [k for k, _ in config_lib._flat(config) if k != 'data.data_dir']  # pylint: disable=protected-access
  return sorted(keys) + ['train.no_such_field', 'nosuchgroup.field', 'optim.learning_rate']


def _parse(spec: str, key: str, text: str):
  """The config `genjax train --config=SPEC --config.KEY=TEXT` runs with (as main.run parses)."""
  methods.check_key(config_lib.load_config(_spec_path(spec)), key)
  argv = ['genjax', f'--config={_spec_path(spec)}']
  if text != 'None':  # main._take_none_overrides: `=None` sets None, not the string.
    argv.append(f'--config.{key}={text}')
  values = flags.FlagValues()  # The override flags are declared from the command line.
  config_flags.DEFINE_config_file('config', None, '', flag_values=values, lock_config=True,
                                  sys_argv=argv)
  values(argv)
  config = values.config
  if text == 'None':
    cli.set_none(config, key)
  return config


@functools.lru_cache(maxsize=32)
def _batch_spec(data_json: str, seed: int) -> dict:
  """The data's batch shapes (as setup reads them), cached: reading mnist5k takes a second."""
  config = ml_collections.ConfigDict({'data': json.loads(data_json), 'seed': seed})
  config.data.batch_size = 8
  with run_lib.as_config_error():  # What setup turns into a ConfigError.
    return data.batch_spec(data.make_train_pipeline(config))


def _checks_before_the_first_step(config) -> None:
  """What `genjax.train.run.setup` checks and builds, with shapes only (nothing runs)."""
  run_lib.check(config)
  with run_lib.as_config_error():
    mesh = sharding.make_mesh(config.mesh)
    sharding.check_batch_size(config.data.batch_size, mesh)
  spec = _batch_spec(config.data.to_json(), config.seed)
  example = {k: jnp.zeros((1,) + s.shape[1:], s.dtype) for k, s in spec.items()}
  key = jax.random.key(0)
  with run_lib.as_config_error():
    method = methods.make_method(config, example['image'].shape[1:])
    state = jax.eval_shape(lambda k: method.init(k, example), key)
  batch = {k: jax.ShapeDtypeStruct((config.data.batch_size,) + s.shape[1:], s.dtype)
           for k, s in spec.items()}
  jax.eval_shape(method.train_step, state, batch, key)


def outcome(spec: str, key: str, text: str) -> str | None:
  """None if the override passes every check; else the user's error's one line.

  Raises:
    AssertionError: the override is refused by another error (a traceback at the CLI), or
      by a user's error that does not name the key.
  """
  try:
    _checks_before_the_first_step(_parse(spec, key, text))
  except USERS_ERRORS as e:
    line = ' '.join(str(e).split())
    assert key.split('.')[-1] in line, f'--config.{key}={text}: the error does not name it: {line}'
    return line
  except Exception as e:  # pylint: disable=broad-except
    raise AssertionError(f'--config.{key}={text!r} ({spec}) fails with {type(e).__name__}: '
                         f'{" ".join(str(e).split())[:300]}') from e
  return None


@pytest.mark.parametrize('spec', SPECS)
@settings(settings.get_profile('ci'))
@given(data_=st.data())
def test_any_override_runs_or_is_refused_naming_its_key(spec, data_):
  key = data_.draw(st.sampled_from(keys_of(spec)), label='key')
  text = data_.draw(st.one_of(st.sampled_from(TEXTS), st.integers(-2 ** 70, 2 ** 70).map(str),
                              st.floats(allow_nan=True, allow_infinity=True).map(repr)),
                    label='text')
  line = outcome(spec, key, text)  # Raises AssertionError on any failure but a user's error.
  assert line is None or key.split('.')[-1] in line, line


@pytest.mark.parametrize('key, text, part', [
    ('data.batch_size', '0', 'must be > 0'),
    ('train.no_such_field', '1', 'no_such_field'),
    ('optim.lr', 'abc', 'optim.lr'),
    ('train.ema_decay', '1.5', 'ema_decay'),
    ('data.name', 'None', 'data.name'),
])
def test_known_bad_overrides_are_refused(key, text, part):
  line = outcome('classifier_mnist.py:smoke', key, text)
  assert line is not None and part in line, line
