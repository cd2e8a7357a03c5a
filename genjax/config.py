"""Checks a config before any work: choices, ranges and consistency.

ml_collections already refuses unknown keys (naming the fields present) and
values of the wrong type; this adds what it cannot know.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import ml_collections

from genjax.nn import conv
from genjax.train import optim
from genjax.train import xla_cpu


class ConfigError(ValueError):
  """A config value outside what genjax accepts."""


def _choices() -> dict[str, tuple]:
  from genjax.methods import METHODS  # pylint: disable=g-import-not-at-top

  return {
      'method.name': tuple(sorted(METHODS)),
      'optim.name': optim.OPTIMIZERS,
      'optim.schedule': optim.SCHEDULES,
      'train.xla_cpu_convolutions': xla_cpu.LIBRARIES,
      'model.conv_method': (None,) + conv.METHODS,
  }


_POSITIVE = ('data.batch_size', 'data.eval_batch_size', 'train.num_steps', 'train.log_every_steps',
             'train.eval_every_steps', 'train.checkpoint_every_steps', 'train.keep_checkpoints',
             'train.images_every_steps', 'optim.lr', 'data.num_threads')
_NON_NEGATIVE = ('optim.warmup_steps', 'optim.weight_decay', 'data.prefetch_batches')


def _get(config, dotted: str):
  value = config
  for part in dotted.split('.'):
    value = value[part]
  return value


def _flat(config, prefix=''):
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _flat(value, f'{prefix}{key}.')
    else:
      yield f'{prefix}{key}', value


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Raises ConfigError naming the key and what is accepted; returns `config` if valid."""
  for key, accepted in _choices().items():
    value = _get(config, key)
    if value not in accepted:
      raise ConfigError(f'config.{key}={value!r} is not accepted; choose one of {list(accepted)}.')
  for key in _POSITIVE:
    if not _get(config, key) > 0:
      raise ConfigError(f'config.{key}={_get(config, key)!r} must be > 0.')
  for key in _NON_NEGATIVE:
    if _get(config, key) < 0:
      raise ConfigError(f'config.{key}={_get(config, key)!r} must be >= 0.')
  for key in ('data.pad_to', 'data.resize_to', 'eval.num_examples'):
    value = _get(config, key)
    if value is not None and value <= 0:
      raise ConfigError(f'config.{key}={value!r} must be None or > 0.')
  for key, value in _flat(config):
    if value == 'None':
      raise ConfigError(f"config.{key} is the string 'None'; use the value None "
                        f'(on the command line: --config.{key}=None).')
  if config.train.ema_decay is not None and not 0.0 < config.train.ema_decay < 1.0:
    raise ConfigError(f'config.train.ema_decay={config.train.ema_decay} must be None or in (0, 1).')
  return config


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/config.py[:variant]` as `--config=` does, without flag parsing.

  Args:
    spec: a config file path, optionally followed by `:variant`.

  Returns:
    The file's `get_config(variant)` (locked by the file).
  """
  path, _, variant = spec.partition(':')
  if not os.path.isfile(path):
    raise ConfigError(f'Config file {path!r} not found.')
  return _config_module(path).get_config(variant or None)


def _config_module(path: str):
  """Executes a config file (which may import `configs.base`) and returns its module."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
  if root not in sys.path:  # Config files import `configs.base`.
    sys.path.insert(0, root)
  module_spec = importlib.util.spec_from_file_location(
      f'_genjax_config_{os.path.basename(path)[:-3]}', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


_BASE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs',
                     'base.py')


def with_defaults(saved: dict) -> ml_collections.ConfigDict:
  """A run's saved config (a dict from its config.json), locked, with every key that
  `configs/base.py` has and `saved` lacks filled in with its default.

  Options added after a run was written default to the old behaviour, so older runs
  still resume, sample and evaluate. Without the repository's configs/ (an installed
  package), `saved` is returned as it is.
  """
  merged = _merge(_config_module(_BASE).get_config().to_dict(), saved) if os.path.isfile(
      _BASE) else saved
  config = ml_collections.ConfigDict(merged)
  config.lock()
  return config


def _merge(defaults: dict, saved: dict) -> dict:
  """`saved` with the keys only `defaults` has filled in, recursively."""
  out = dict(saved)
  for key, value in defaults.items():
    if key not in out:
      out[key] = value
    elif isinstance(value, dict) and isinstance(out[key], dict):
      out[key] = _merge(value, out[key])
  return out
