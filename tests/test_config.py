"""Configs: every file loads; bad keys, types, choices and variants fail before any work."""
import os
import subprocess
import sys

import pytest

from conftest import CONFIG_FILES, REPO
from genjax import config as config_lib


@pytest.mark.parametrize('path', CONFIG_FILES, ids=os.path.basename)
def test_every_config_and_its_smoke_variant_loads_and_validates(path):
  for spec in (path, path + ':smoke'):
    config = config_lib.load_config(spec)
    assert config.is_locked
    config_lib.validate(config)
  assert config_lib.load_config(path + ':smoke').train.num_steps == 2


def test_docstring_gives_launch_command():
  for path in CONFIG_FILES:
    with open(path) as f:
      text = f.read()
    assert 'genjax train --config=configs/' in text, path


def test_unknown_key_and_wrong_type_are_refused(load):
  config = load('classifier_mnist.py')
  with pytest.raises(AttributeError, match='Did you mean "lr"'):
    config.optim.lrr = 1.0
  with pytest.raises(TypeError, match='cannot be casted'):
    config.optim.lr = 'fast'


@pytest.mark.parametrize('key,value,accepted', [
    ('method__name', 'nope', 'classifier'),
    ('optim__name', 'adamx', 'adamw'),
    ('optim__schedule', 'cosinus', 'warmup_cosine'),
])
def test_choices_are_checked(load, key, value, accepted):
  config = load('classifier_mnist.py', **{key: value})
  with pytest.raises(config_lib.ConfigError, match=f'{key.replace("__", ".")}.*{accepted}'):
    config_lib.validate(config)


@pytest.mark.parametrize('key,value', [('data__batch_size', 0), ('optim__lr', -1.0),
                                       ('train__ema_decay', 1.5), ('data__pad_to', -2)])
def test_ranges_are_checked(load, key, value):
  with pytest.raises(config_lib.ConfigError, match=key.replace('__', '.')):
    config_lib.validate(load('classifier_mnist.py', **{key: value}))


def test_unknown_variant():
  with pytest.raises(ValueError, match="variant 'smok'.*smoke"):
    config_lib.load_config(os.path.join(REPO, 'configs/classifier_mnist.py:smok'))


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'genjax.main', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


def test_cli_refuses_bad_overrides_before_any_work(tmp_path):
  workdir = str(tmp_path / 'run')
  cfg = '--config=configs/classifier_mnist.py:smoke'
  r = _cli('train', cfg, f'--workdir={workdir}', '--config.optim.lrr=1')
  assert r.returncode != 0
  assert "unknown config key 'optim.lrr'" in r.stderr and "Did you mean 'optim.lr'" in r.stderr
  r = _cli('train', cfg, f'--workdir={workdir}', '--config.optim.lr=abc')
  assert r.returncode != 0 and 'could not convert' in r.stderr
  r = _cli('train', cfg, f'--workdir={workdir}', '--config.optim.schedule=cosinus')
  assert r.returncode == 2 and 'optim.schedule' in r.stderr and 'warmup_cosine' in r.stderr
  assert not os.path.exists(os.path.join(workdir, 'checkpoints'))
