"""Configs: loading a config file, checking the shared groups, and a family's typed spec.

ml_collections already refuses unknown keys (naming the fields present) and
values of the wrong type; this adds what it cannot know. A model family owns
one config group (`config.vae`, `config.gan`, ...) whose fields are those of a
frozen dataclass, its spec: `config_group` builds the group with the spec's
defaults, `decode` turns the group back into the validated spec once per run.
This module is foundation: it imports no other genjax package but `core`.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import sys
import types
import typing

import ml_collections
from ml_collections import config_dict

from genjax.core import optim
from genjax.core import precision
from genjax.core import xla_cpu


class ConfigError(ValueError):
  """A config value outside what genjax accepts."""


def _choices() -> dict[str, tuple]:
  return {
      'optim.name': optim.OPTIMIZERS,
      'optim.schedule': optim.SCHEDULES,
      'train.xla_cpu_convolutions': xla_cpu.LIBRARIES,
      # Checked here once for every family; their specs take it as given (and
      # precision.with_policy refuses a bad name for a spec built without a config).
      'train.compute_dtype': sorted(precision.COMPUTE_DTYPES),
  }


_POSITIVE = ('data.batch_size', 'data.eval_batch_size', 'train.num_steps', 'train.log_every_steps',
             'train.eval_every_steps', 'train.checkpoint_every_steps', 'train.keep_checkpoints',
             'train.images_every_steps', 'optim.lr', 'data.num_threads')
_NON_NEGATIVE = ('optim.warmup_steps', 'optim.weight_decay', 'data.prefetch_batches')
# Read only when the run evaluates (after training): checked up front, so that a typo does
# not cost the training before it (found by tests/test_config_fuzz.py).
_POSITIVE += ('eval.sample_batch_size', 'eval.kid_subset_size', 'eval.kid_num_subsets',
              'eval.bpd_batch_size', 'eval.bpd_chunk', 'sample.num_steps', 'sample.rho')
_NON_NEGATIVE += ('eval.num_samples', 'eval.bpd_num_examples', 'optim.end_lr_factor')
_UNIT_INTERVAL = ('optim.b1', 'optim.b2')  # Adam's decays: [0, 1).
_NEW_POSITIVE = ('train.grad_accum_steps',)  # Checked where present (configs of every age).
SHARED_GROUPS = ('data', 'optim', 'train', 'eval', 'sample', 'mesh')


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
  """Checks the shared groups; raises ConfigError naming the key and what is accepted.

  A family's own group is checked when its method decodes it into its spec
  (`decode`); this covers what every run shares. Returns `config` if valid.
  """
  for key, accepted in _choices().items():
    check_choice(key, _get(config, key), accepted)
  for key in _POSITIVE + _NON_NEGATIVE + _UNIT_INTERVAL + ('optim.eps',):  # None (`--config.k=None`) or text would raise TypeError.
    value = _get(config, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ConfigError(f'config.{key}={value!r} must be a number.')
  for key, value in _flat(config):
    _check_number(key, value)
  for key in _POSITIVE:
    if not _get(config, key) > 0:
      raise ConfigError(f'config.{key}={_get(config, key)!r} must be > 0.')
  for key in _NON_NEGATIVE:
    if _get(config, key) < 0:
      raise ConfigError(f'config.{key}={_get(config, key)!r} must be >= 0.')
  if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
    raise ConfigError(f'config.seed={config.seed!r} must be an integer >= 0.')
  for key in ('optim.grad_clip_norm',) + tuple(k for k in _NEW_POSITIVE if k.split('.')[1] in
                                                config[k.split('.')[0]]):
    value = _get(config, key)
    if value is not None and not (isinstance(value, (int, float)) and value > 0):
      raise ConfigError(f'config.{key}={value!r} must be None or > 0.')
  for key in _UNIT_INTERVAL:
    check_range(key, _get(config, key), low=0.0, high=1.0, high_open=True)
  if not _get(config, 'optim.eps') > 0:
    raise ConfigError(f'config.optim.eps={config.optim.eps!r} must be > 0.')
  for key in ('data.pad_to', 'data.tile_to', 'data.crop_to', 'data.resize_to', 'eval.num_examples'):
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


# -- A family's group: the fields of a frozen dataclass (its spec), decoded once. --


def check_choice(key: str, value, accepted) -> None:
  """Raises ConfigError unless `value` is one of `accepted`; `key` is the dotted config key."""
  if value not in tuple(accepted):
    raise ConfigError(f'config.{key}={value!r} is not accepted; choose one of {list(accepted)}.')


def check_range(key: str, value, *, low=None, high=None, low_open=False, high_open=False) -> None:
  """Raises ConfigError unless low <= value <= high (strict where *_open); None bounds are open."""
  ok = ((low is None or (value > low if low_open else value >= low)) and
        (high is None or (value < high if high_open else value <= high)))
  if not ok:
    lo = '' if low is None else f"{'>' if low_open else '>='} {low}"
    hi = '' if high is None else f"{'<' if high_open else '<='} {high}"
    raise ConfigError(f'config.{key}={value!r} must be {" and ".join(b for b in (lo, hi) if b)}.')


def group_fields(spec_cls) -> list[dataclasses.Field]:
  """The dataclass fields of a spec that are config fields (not metadata {'config': False})."""
  return [f for f in dataclasses.fields(spec_cls) if f.metadata.get('config', True)]


def group_values(spec) -> dict:
  """{name: value} of a spec instance's config fields: what its config group holds (the
  fields with metadata {'config': False}, e.g. `compute_dtype`, left out)."""
  return {f.name: getattr(spec, f.name) for f in group_fields(type(spec))}


def config_group(spec_cls) -> ml_collections.ConfigDict:
  """A family's config group: every config field of `spec_cls` with its default.

  A field whose default is None becomes a typed placeholder (its type read from
  the annotation `T | None`), so `--config.g.f=1.5` is still type-checked.
  """
  hints = typing.get_type_hints(spec_cls)
  group = ml_collections.ConfigDict()
  for f in group_fields(spec_cls):
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    inner = [t for t in typing.get_args(hints[f.name]) if t is not type(None)]
    if default is None:
      default = config_dict.placeholder(typing.get_origin(inner[0]) or inner[0])
    elif type(None) in typing.get_args(hints[f.name]) and len(inner) == 1:
      # `T | None` with a value by default: a typed reference, which may be set to None.
      default = config_dict.FieldReference(
          default, field_type=typing.get_origin(inner[0]) or inner[0])
    group[f.name] = default
  return group


def decode(spec_cls, config: ml_collections.ConfigDict, group: str, **extra):
  """`spec_cls(**config[group], **extra)`: the frozen, validated spec of one family's group.

  Lists (from a saved config.json) become tuples. The spec's `__post_init__`
  validates, raising ConfigError that names `config.<group>.<field>`.

  Args:
    spec_cls: the family's frozen dataclass.
    config: the run's config.
    group: the name of the group to decode.
    **extra: non-config fields of the spec (e.g. the data's image shape).
  """
  if group not in config:
    raise ConfigError(f'This config has no config.{group} group, which a {group!r} run needs; '
                      f"start the config from configs.base.get_config({group!r}).")
  values = {k: tuple(v) if isinstance(v, list) else v for k, v in config[group].to_dict().items()}
  _check_none(spec_cls, group, values)
  for key, value in values.items():
    _check_number(f'{group}.{key}', value)
  _check_types(spec_cls, group, values)
  try:
    return spec_cls(**values, **extra)
  except TypeError as e:  # A field the spec does not have.
    known = [f.name for f in group_fields(spec_cls)]
    raise ConfigError(f'config.{group}: {e}; its fields are {known}.') from e


_INT32_MAX = 2 ** 31 - 1


def _check_number(key: str, value) -> None:
  """Refuses integers past int32 (steps, shapes and indices are int32 on device), inf and nan."""
  values = value if isinstance(value, (tuple, list)) else (value,)
  if any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > _INT32_MAX for v in values):
    raise ConfigError(f'config.{key}={value!r} is too large: integers must be within '
                      f'+-{_INT32_MAX} (int32).')
  if any(isinstance(v, float) and not math.isfinite(v) for v in values):
    raise ConfigError(f'config.{key}={value!r}: give a finite number.')


def _matches(value, hint) -> bool:
  """Whether `value` fits the annotation `hint` (the forms specs use; others pass)."""
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if hint is typing.Any:
    return True
  if origin in (typing.Union, types.UnionType):
    return any(_matches(value, a) for a in args)
  if hint is type(None):
    return value is None
  if origin is tuple:
    if not isinstance(value, tuple):
      return False
    if len(args) == 2 and args[1] is Ellipsis:
      return all(_matches(v, args[0]) for v in value)
    return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args))
  if hint is bool:
    return isinstance(value, bool)
  if hint is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if hint is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if hint is str:
    return isinstance(value, str)
  return True


def _sign_ok(value, default) -> bool:
  """A number whose default is > 0 (a size, a period) must stay > 0; >= 0, >= 0 (a rate)."""
  pairs = (zip(value, default) if isinstance(value, tuple) and isinstance(default, tuple)
           else [(value, default)])
  for v, d in pairs:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (v, d))
    if numbers and ((d > 0 and isinstance(d, int) and v <= 0) or (d >= 0 and v < 0)):
      return False
  if isinstance(value, tuple) and isinstance(default, tuple) and default and value:
    # A tuple of sizes (channels): every element as its default's first.
    d = default[0]
    return all(_sign_ok(v, d) for v in value)
  return True


def _check_types(spec_cls, group: str, values: dict) -> None:
  """Refuses a value of another type than its field's annotation, or of the wrong sign.

  ml_collections checks types against the default's, but lets a scalar replace a tuple
  (`--config.diffusion.channels=0`) and any value replace None; a spec's own checks name the
  ranges they know. The sign rule follows the default: sizes and periods (ints > 0 by
  default) stay > 0, rates and weights (>= 0 by default) stay >= 0, so they fail here, not as
  a ZeroDivisionError inside a model (tests/test_config_fuzz.py).
  """
  hints = typing.get_type_hints(spec_cls)
  for f in group_fields(spec_cls):
    if f.name not in values:
      continue
    value = values[f.name]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if not _matches(value, hints[f.name]):
      hint = str(hints[f.name]).replace('typing.', '')
      raise ConfigError(f'config.{group}.{f.name}={value!r} is not a {hint}; e.g. its default '
                        f'{default!r}.')
    if value is not None and default is not None and not _sign_ok(value, default):
      raise ConfigError(f'config.{group}.{f.name}={value!r} must be '
                        f'{"> 0" if _positive(default) else ">= 0"} (its default is {default!r}).')


def _positive(default) -> bool:
  first = default[0] if isinstance(default, tuple) and default else default
  return isinstance(first, int) and not isinstance(first, bool) and first > 0


def _check_none(spec_cls, group: str, values: dict) -> None:
  """Refuses None (`--config.g.f=None`) for a field whose annotation does not allow it."""
  hints = typing.get_type_hints(spec_cls)
  for f in group_fields(spec_cls):
    hint = hints[f.name]
    if values.get(f.name, 0) is None and hint is not typing.Any and (
        type(None) not in typing.get_args(hint)):
      default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
      raise ConfigError(f'config.{group}.{f.name} cannot be None; give a value like its '
                        f'default, {default!r}.')


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
  return config_module(path).get_config(variant or None)


def config_module(path: str):
  """Executes a config file (which may import `configs.base`) and returns its module."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
  if root not in sys.path:  # Config files import `configs.base`.
    sys.path.insert(0, root)
  module_spec = importlib.util.spec_from_file_location(
      f'_genjax_config_{os.path.basename(path)[:-3]}', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module
