"""Multi-stage training: a config whose stages must be trained first (latent diffusion's
autoencoder and text encoder), run in order on the one loop, each in its own sub-workdir.

`genjax train --config=configs/ldm_mnist.py --workdir=W` trains W/autoencoder, then W/clip,
then W/ldm, skipping a stage that has finished (its last checkpoint is its config's last
step and its export is written) and resuming one that has not. The LDM stage gets the
stages' workdirs and export hashes in its config; if W/ldm was trained on other exports,
it is refused rather than silently resumed on a changed autoencoder or text encoder.
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable

import ml_collections

from genjax import config as config_lib
from genjax.core import writers
from genjax.core.checkpoint import Checkpointer
from genjax.methods import ldm as ldm_family

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# config.ldm field naming a stage's config -> (sub-workdir, the stage's export file).
STAGES = {
    'autoencoder_config': ('autoencoder', ldm_family.autoencoder.EXPORT),
    'clip_config': ('clip', ldm_family.clip.EXPORT),
}


def is_pipeline(config: ml_collections.ConfigDict) -> bool:
  """Whether `config` names stages to train before it (an LDM config with stage configs)."""
  return config.method == 'ldm' and any(config.ldm[k] for k in STAGES)


def _stage_config(spec: str) -> ml_collections.ConfigDict:
  """A stage's config from `file[:variant]`, the file relative to the cwd or the repository."""
  path, _, variant = spec.partition(':')
  if not os.path.isfile(path) and os.path.isfile(os.path.join(REPO, path)):
    path = os.path.join(REPO, path)
  return config_lib.load_config(path + (f':{variant}' if variant else ''))


def finished(config: ml_collections.ConfigDict, workdir: str, export: str) -> bool:
  """A stage is done when its latest checkpoint is its last step and its export exists."""
  if not os.path.isfile(os.path.join(workdir, export)):
    return False
  checkpointer = Checkpointer(workdir, config.train.keep_checkpoints)
  try:
    return checkpointer.latest_step() == config.train.num_steps
  finally:
    checkpointer.close()


def stage_configs(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The stages' (config, sub-workdir, export path) in training order, and the LDM's last."""
  out = {}
  for key, (name, export) in STAGES.items():
    if config.ldm[key]:
      sub = os.path.join(os.path.abspath(workdir), name)
      out[name] = (_stage_config(config.ldm[key]), sub, os.path.join(sub, export))
  return out


def ldm_config(config: ml_collections.ConfigDict, stages: dict) -> ml_collections.ConfigDict:
  """The LDM stage's config: `config` with the stages' workdirs and export hashes filled in."""
  out = ml_collections.ConfigDict(config.to_dict())
  for name, (_, sub, export) in stages.items():
    with open(export + '.json') as f:
      digest = json.load(f)['sha256']
    out.ldm[f'{name}_workdir'] = sub
    out.ldm[f'{name}_sha256'] = digest
  out.lock()
  return out


def check_resumable(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses to resume an LDM in `workdir` that was trained on other stage exports.

  Raises:
    ConfigError: naming the stage, both hashes and what to do.
  """
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    return
  with open(path) as f:
    saved = json.load(f).get('ldm', {})
  for name in ('autoencoder', 'clip'):
    was, now = saved.get(f'{name}_sha256'), config.ldm[f'{name}_sha256']
    if was is not None and now is not None and was != now:
      raise config_lib.ConfigError(
          f'{workdir} holds an LDM trained on the {name} export {was[:12]}..., but '
          f'{config.ldm[name + "_workdir"]} now holds {now[:12]}... (another {name}); train the '
          'LDM in a fresh --workdir, or restore that stage.')


def train(config: ml_collections.ConfigDict, workdir: str,
          train_fn: Callable[[ml_collections.ConfigDict, str], object]) -> str:
  """Trains the stages of `config` in order, then `config` itself, under `workdir`.

  Args:
    config: an LDM config naming its stage configs (`is_pipeline`).
    workdir: the pipeline's directory; stages go to <workdir>/<stage>, the LDM to <workdir>/ldm.
    train_fn: (config, workdir) -> anything: the loop (genjax.train.loop.train).

  Returns:
    The LDM stage's workdir.
  """
  stages = stage_configs(config, workdir)
  for name, (stage_config, sub, export) in stages.items():
    if finished(stage_config, sub, export):
      writers.print0(f'Stage {name}: finished in {sub}, skipped.')
      continue
    writers.print0(f'Stage {name}: training in {sub}.')
    t0 = time.perf_counter()
    train_fn(stage_config, sub)
    writers.print0(f'Stage {name}: done in {time.perf_counter() - t0:.0f} s wall.')
    if not os.path.isfile(export):  # Its last evaluation writes it.
      raise FileNotFoundError(f'Stage {name} finished without writing {export}.')
  final = ldm_config(config, stages)
  sub = os.path.join(os.path.abspath(workdir), 'ldm')
  check_resumable(final, sub)
  writers.print0(f'Stage ldm: training in {sub}.')
  t0 = time.perf_counter()
  train_fn(final, sub)
  writers.print0(f'Stage ldm: done in {time.perf_counter() - t0:.0f} s wall.')
  return sub


def resolve_workdir(workdir: str) -> str:
  """A run's directory: `workdir` itself, or its LDM stage when `workdir` is a pipeline's."""
  if not os.path.isfile(os.path.join(workdir, 'config.json')) and os.path.isfile(
      os.path.join(workdir, 'ldm', 'config.json')):
    return os.path.join(workdir, 'ldm')
  return workdir
