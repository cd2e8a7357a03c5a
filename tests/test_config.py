"""Configs: every file loads; bad keys, types, choices and variants fail before any work;
each family owns its group, and another family's field is refused naming its owner."""
import json
import os
import subprocess
import sys

import ml_collections
import pytest

from conftest import CONFIG_FILES, REPO
from genjax import config as config_lib
from genjax import methods
from genjax.methods.gan import GanSpec
from genjax.train import trained

SHARED = {'seed', 'method', 'data', 'optim', 'train', 'eval', 'sample', 'mesh'}


def _family_groups(config):
  return [name for name in config.keys() if name not in SHARED]


@pytest.mark.parametrize('path', CONFIG_FILES, ids=os.path.basename)
def test_every_config_and_its_smoke_variant_loads_and_validates(path):
  for spec in (path, path + ':smoke'):
    config = config_lib.load_config(spec)
    assert config.is_locked
    config_lib.validate(config)
    methods.check_groups(config)
    groups = _family_groups(config)
    assert config.method in groups  # The method's own group, and only its family's.
    for name in groups:
      assert methods.GROUPS[name].owner == config.method
      spec_value = config_lib.decode(methods.GROUPS[name].spec, config, name)
      assert spec_value == methods.GROUPS[name].spec(**{
          k: tuple(v) if isinstance(v, list) else v for k, v in config[name].to_dict().items()})
  assert config_lib.load_config(path + ':smoke').train.num_steps == 2


def _foreign_fields(config):
  """(key, owner) for every field of every family group this config does not hold."""
  own = set(_family_groups(config))
  for name, group in methods.GROUPS.items():
    if name in own:
      continue
    for field in config_lib.group_fields(group.spec):
      yield f'{name}.{field.name}', group.owner
      for mine in own:  # The same field name put in this config's own group.
        if field.name not in config[mine]:
          yield f'{mine}.{field.name}', group.owner


@pytest.mark.parametrize('path', CONFIG_FILES, ids=os.path.basename)
def test_a_foreign_field_is_refused_naming_its_family(path):
  config = config_lib.load_config(path)
  checked = 0
  for key, owner in _foreign_fields(config):
    with pytest.raises(config_lib.ConfigError) as e:
      methods.check_key(config, key)
    message = str(e.value)
    assert '\n' not in message and f'config.{key}' in message
    assert f"{owner!r}" in message or "no config." in message, message
    checked += 1
  assert checked > 20
  for key in [f'{config.method}.{f.name}' for f in config_lib.group_fields(
      methods.GROUPS[config.method].spec)]:
    methods.check_key(config, key)  # The family's own fields pass.
  with pytest.raises(AttributeError):  # In Python too: the locked config has no such field.
    config[config.method].w_dim_of_another_family = 64


def test_a_config_holding_another_familys_group_is_refused(load):
  config = load('vae_mnist.py:smoke')
  config.unlock()
  config.gan = config_lib.config_group(GanSpec)
  config.lock()
  with pytest.raises(config_lib.ConfigError, match=r"config\.gan belongs to the 'gan' family"):
    methods.check_groups(config)


def test_old_layout_keys_name_their_new_place(load):
  config = load('stylegan_mnist.py:smoke')
  for old, new in [('method.gan_loss', 'config.gan.loss'), ('model.w_dim', 'config.stylegan.w_dim'),
                   ('model.stylegan_output', 'config.stylegan.output'),
                   ('model.name', 'config.gan.arch'), ('method.name', 'config.method')]:
    with pytest.raises(config_lib.ConfigError, match=f'it is now {new}'):
      methods.check_key(config, old)


@pytest.mark.parametrize('old,new', [
    ('config_v1_stylegan_mnist_smoke.json', 'stylegan_mnist.py:smoke'),
    ('config_v1_vae_mnist.json', 'vae_mnist.py'),
])
def test_a_run_saved_in_the_old_layout_reads_as_todays_config(old, new):
  with open(os.path.join(REPO, 'tests', 'data', old)) as f:
    saved = json.load(f)  # The config.json that run wrote before issue 20.
  migrated = trained.with_defaults(saved).to_dict()
  today = config_lib.load_config(os.path.join(REPO, 'configs', new)).to_dict()
  assert json.loads(json.dumps(migrated)) == json.loads(json.dumps(today))


def test_family_group_placeholders_are_typed(load):
  config = load('dcgan_mnist.py')
  assert config.gan.d_lr is None
  config.gan.d_lr = 1e-4  # A None default still takes its declared type...
  with pytest.raises(TypeError):
    config.gan.d_lr = 'fast'  # ...and refuses another.
  group = config_lib.config_group(GanSpec)
  assert isinstance(group, ml_collections.ConfigDict) and group.loss == 'non_saturating'


def test_a_spec_refuses_bad_values_naming_the_key():
  with pytest.raises(config_lib.ConfigError, match=r"config\.gan\.loss='wasserstein'.*hinge"):
    GanSpec(loss='wasserstein')
  with pytest.raises(config_lib.ConfigError, match=r'config\.gan\.d_pack=0 must be >= 1'):
    GanSpec(d_pack=0)


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
    ('optim__name', 'adamx', 'adamw'),
    ('optim__schedule', 'cosinus', 'warmup_cosine'),
])
def test_choices_are_checked(load, key, value, accepted):
  config = load('classifier_mnist.py', **{key: value})
  with pytest.raises(config_lib.ConfigError, match=f'{key.replace("__", ".")}.*{accepted}'):
    config_lib.validate(config)


def test_unknown_method_is_refused(load):
  with pytest.raises(config_lib.ConfigError, match=r"config\.method='nope'.*classifier"):
    methods.check_groups(load('classifier_mnist.py', method='nope'))


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


def test_an_old_stylegan_run_without_stylegan_fields_gets_their_defaults():
  with open(os.path.join(REPO, 'tests', 'data', 'config_v1_stylegan_mnist_smoke.json')) as f:
    saved = json.load(f)
  from genjax.methods import config_v1
  for group in ('model', 'method'):  # As if the run predated every StyleGAN option.
    saved[group] = {k: v for k, v in saved[group].items()
                    if config_v1.new_key('gan', group, k) is None
                    or not config_v1.new_key('gan', group, k).startswith('stylegan.')}
  config = trained.with_defaults(saved)
  assert config.gan.arch == 'stylegan'
  assert config.stylegan.to_dict() == config_lib.config_group(
      methods.GROUPS['stylegan'].spec).to_dict()
