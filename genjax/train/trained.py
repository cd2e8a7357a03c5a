"""A trained run, read back from its workdir: its config and its latest state.

Every command and study that uses a finished run (`genjax eval`, `sample`,
the sampler study, the feature-extractor export) goes through `load_trained`.
"""
from __future__ import annotations

import dataclasses
import json
import os

import ml_collections

from genjax import config as config_lib
from genjax import methods
from genjax.core.state import TrainState
from genjax.methods import config_v1
from genjax.train import run as run_lib

_BASE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     'configs', 'base.py')


def with_defaults(saved: dict) -> ml_collections.ConfigDict:
  """A run's saved config (a dict from its config.json), locked and complete.

  A config of the first layout (flat `model` and `method` groups) is first
  translated to today's family groups (`genjax.methods.config_v1`). Then every
  key that today's shared groups (configs/base.py, when the repository is
  there) or the family's specs have and `saved` lacks gets its default, so
  options added after a run was written keep the old behaviour.
  """
  if config_v1.is_v1(saved):
    fields = {name: {f.name for f in config_lib.group_fields(g.spec)}
              for name, g in methods.GROUPS.items()}
    saved = config_v1.migrate(saved, fields)
  method = saved.get('method')
  extra = ('stylegan',) if method == 'gan' and saved.get('gan', {}).get('arch') == 'stylegan' else ()
  if os.path.isfile(_BASE):  # The shared groups' defaults live in the repository's base.py.
    defaults = config_lib.config_module(_BASE).get_config(method, *extra).to_dict()
  else:
    defaults = {name: group.to_dict()
                for name, group in methods.config_groups(method, *extra).items()}
  config = ml_collections.ConfigDict(_merge(defaults, saved))
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


def workdir_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a training run wrote into `workdir` (see `with_defaults`).

  Raises:
    FileNotFoundError: `workdir` holds no config.json (it is not a genjax training run).
  """
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: --workdir must be a genjax training run '
                            '(or pass --config).')
  with open(path) as f:
    return with_defaults(json.load(f))


@dataclasses.dataclass
class Trained:
  """A trained run. Attributes: run (see `genjax.train.run.Run`), state (host-local), step."""
  run: run_lib.Run
  state: TrainState
  step: int

  @property
  def config(self) -> ml_collections.ConfigDict:
    return self.run.config

  @property
  def method(self) -> methods.Method:
    return self.run.method


def load_trained(workdir: str, config: ml_collections.ConfigDict | None = None,
                 *, host_local: bool = True) -> Trained:
  """The latest checkpoint of the run in `workdir`, with its config and method.

  Args:
    workdir: a training run's directory.
    config: its config; None reads `workdir/config.json` (`workdir_config`).
    host_local: return a full copy of the state on this process's first device
      (what evaluation and sampling use); False keeps the run's shardings.

  Raises:
    FileNotFoundError: no config.json or no checkpoint in `workdir`.
    ConfigError: the checkpoint does not fit the config.
  """
  config = workdir_config(workdir) if config is None else config
  run = run_lib.setup(config, workdir)
  try:
    state = run_lib.restore_or_init(run, require_checkpoint=True)
  except BaseException:
    # Orbax's manager runs a thread: stop it, or exiting on this error prints its traceback.
    run.checkpointer.close()
    raise
  step = int(state.step)
  if host_local:
    state = run_lib.host_local(state, run.mesh)
  return Trained(run=run, state=state, step=step)
