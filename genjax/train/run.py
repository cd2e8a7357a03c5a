"""What every command shares: the mesh, the method, the sharded state and its checkpoints.

`setup` builds a Run from a config and a workdir; `restore_or_init` gives the
state (resumed from the latest checkpoint when there is one); `evaluate` and
`write_images` run a method's evaluation on a host-local copy of the state.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

import genjax
from genjax import config as config_lib
from genjax import data
from genjax import methods
from genjax.methods import EvalContext, Method, make_method
from genjax.methods import sampling
from genjax.core import sharding, writers
from genjax.core.checkpoint import Checkpointer
from genjax.metrics import extractors
from genjax.core.state import TrainState
from genjax.viz.grid import save_grid


@dataclasses.dataclass
class Run:
  """A configured run. Keys: init_key builds the state, train_key is folded with the step."""
  config: ml_collections.ConfigDict
  workdir: str
  mesh: Mesh
  method: Method
  pipeline: data.InputPipeline
  example: dict  # One example batch [1, ...] of the training shapes.
  abstract_state: TrainState
  state_shardings: TrainState
  checkpointer: Checkpointer
  init_key: jax.Array
  train_key: jax.Array
  eval_key: jax.Array

  def init_state(self, rng):
    return self.method.init(rng, self.example)


def setup(config: ml_collections.ConfigDict, workdir: str) -> Run:
  """Validates `config` and builds everything a command needs, without touching state."""
  check(config)
  with as_config_error():
    mesh = sharding.make_mesh(config.mesh)
    sharding.check_batch_size(config.data.batch_size, mesh)
    pipeline = data.make_train_pipeline(config, jax.process_index(), jax.process_count())
  example = {k: jnp.zeros((1,) + s.shape[1:], s.dtype)
             for k, s in data.batch_spec(pipeline).items()}
  init_key, train_key, eval_key = jax.random.split(jax.random.key(config.seed), 3)
  with as_config_error():  # A model that does not fit the data's shapes (gan.disc_channels).
    method = make_method(config, example['image'].shape[1:])
    abstract = jax.eval_shape(lambda k: method.init(k, example), init_key)
  return Run(config=config, workdir=os.path.abspath(workdir), mesh=mesh, method=method,
             pipeline=pipeline, example=example, abstract_state=abstract,
             state_shardings=sharding.state_shardings(abstract, mesh),
             checkpointer=Checkpointer(workdir, config.train.keep_checkpoints),
             init_key=init_key, train_key=train_key, eval_key=eval_key)


def check(config: ml_collections.ConfigDict) -> None:
  """The checks of `config` that need no device: a bad value fails here, before any work.

  Besides the shared groups and the family's groups, what only the evaluation at the end of
  training would read: the feature extractor's name and the evaluation splits.

  Raises:
    ConfigError: naming the key and what is accepted.
  """
  config_lib.validate(config)
  methods.check_groups(config)
  if config.eval.feature_extractor not in (None, *extractors.EXTRACTORS):
    raise config_lib.ConfigError(
        f'config.eval.feature_extractor={config.eval.feature_extractor!r} is not accepted; '
        f'choose one of {sorted(extractors.EXTRACTORS)} or None.')
  splits = _splits(config)
  for key in ('eval.split', 'data.eval_split'):
    group, field = key.split('.')
    split = config[group][field]
    name = split.split('[')[0] if isinstance(split, str) else split  # 'test[:50%]': TFDS slicing.
    if splits and '+' not in str(split) and name not in splits:
      raise config_lib.ConfigError(f'config.{key}={split!r} is not a split of '
                                   f'{config.data.name!r}; accepted: {sorted(splits)}.')


def _splits(config: ml_collections.ConfigDict) -> list[str]:
  """The data set's split names ([] where unknown here: a view, an unprepared TFDS set)."""
  try:
    builder = data.get_builder(config.data.name, config.data.data_dir,
                               download=config.data.download)
  except data.DataError:  # Reported with its own message when the pipeline reads it.
    return []
  return list(builder.info.splits or [])


@contextlib.contextmanager
def as_config_error():
  """The ValueErrors of the mesh, the pipeline and the model's construction (mesh.fsdp=0,
  data.pad_to too small, channels that do not fit the images) are the config's: a user's
  error (one line at the CLI; --debug shows the traceback)."""
  try:
    yield
  except data.DataError:
    raise
  except ValueError as e:
    raise config_lib.ConfigError(str(e)) from e


def restore_or_init(run: Run, *, require_checkpoint: bool = False) -> TrainState:
  """The latest valid checkpoint of the run, restored sharded; else a fresh sharded init.

  A damaged newest checkpoint is moved aside with a warning and the previous one restored
  (`Checkpointer.restore_latest_valid`); if every checkpoint is damaged, CheckpointError.
  """
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        run.abstract_state, run.state_shardings)
  try:
    state, step = run.checkpointer.restore_latest_valid(target, set_aside=not require_checkpoint)
  except (ValueError, KeyError, TypeError) as e:  # A checkpoint of another model or config.
    c = run.config
    raise config_lib.ConfigError(
        f'The checkpoint {run.checkpointer.directory}/{run.checkpointer.latest_step()} does not '
        f'fit this config (method {c.method!r}): {str(e)[:300]}. Use the config the run was '
        f'trained with (its copy: {run.workdir}/config.json) or a fresh --workdir; the '
        f'checkpoint is left untouched.') from e
  if step is not None:
    return state
  if require_checkpoint:
    raise FileNotFoundError(f'No checkpoint in {run.checkpointer.directory}; train first with '
                            f'`genjax train --config=... --workdir={run.workdir}`.')
  return jax.jit(run.init_state, out_shardings=run.state_shardings)(run.init_key)


def host_local(state: TrainState, mesh: Mesh) -> TrainState:
  """A full copy of the state on this process's first device (for eval and sampling)."""
  full = jax.jit(lambda s: s, out_shardings=sharding.replicated(mesh))(state)
  return jax.tree.map(lambda x: x.addressable_data(0), full)


def eval_context(run: Run, step: int) -> EvalContext:
  @functools.cache
  def load_split(split: str, max_examples: int | None):
    return data.load_split(run.config, split, max_examples)

  return EvalContext(config=run.config, workdir=run.workdir, step=step, rng=run.eval_key,
                     load_split=load_split)


def provenance(run: Run, step: int) -> dict:
  c = run.config
  return {'step': step, 'method': c.method, 'data': c.data.name,
          'split': c.eval.split, 'seed': c.seed, 'date': writers.now(),
          'genjax_version': genjax.__version__, 'num_devices': run.mesh.size,
          'num_processes': jax.process_count()}


def evaluate(run: Run, state: TrainState, ctx: EvalContext | None = None) -> dict:
  """Runs the method's evaluation; writes eval.json and appends eval_history.jsonl.

  Returns:
    The method's metrics alone (eval.json adds the provenance fields).
  """
  step = int(jax.device_get(state.step))
  ctx = ctx or eval_context(run, step)
  metrics = run.method.evaluate(host_local(state, run.mesh), ctx)
  result = {**provenance(run, step), **metrics}
  writers.write_json(os.path.join(run.workdir, 'eval.json'), result)
  writers.append_jsonl(os.path.join(run.workdir, 'eval_history.jsonl'), result)
  return metrics


def write_images(run: Run, state: TrainState, ctx: EvalContext | None = None,
                 num_samples: int = 64) -> list[str]:
  """The method's pictures, plus a sample grid from a fixed key for generative methods."""
  step = int(jax.device_get(state.step))
  local = host_local(state, run.mesh)  # A collective: every process takes part.
  if jax.process_index() != 0:
    return []
  ctx = ctx or eval_context(run, step)
  paths = list(run.method.write_images(local, ctx)) if run.method.write_images else []
  if run.method.sample is not None:  # The same keys every time: watch samples evolve.
    images = sampling.draw(run.method.sample, local, run.eval_key, num_samples,
                           sampling.default_labels(run.method.num_classes, num_samples),
                           run.config.eval.sample_batch_size)
    paths.append(save_grid(images, os.path.join(ctx.images_dir, f'samples_{step:07d}.png')))
  return paths
