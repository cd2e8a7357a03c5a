"""The work of each `genjax` verb, and the flags the verbs read.

`genjax/main.py` declares the verbs (their help, flags and examples) and checks the
command line; the functions here do the work once it is checked: `run_train`,
`run_eval`, `run_sample`, `run_demo`, `run_convert_inception`, `run_convert_vgg`,
`run_export_extractor`, `run_stylize`. A user's error ends in `fail`: one line,
`genjax: <Kind>: <what to change>`, exit status 2.
"""
from __future__ import annotations

import json
import os
import pickle
import sys

import numpy as np

from absl import app, flags
from ml_collections import config_flags

CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file[:variant]; override a field with '
    '--config.GROUP.FIELD=VALUE (=None sets None).', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory: checkpoints, metrics, images.')
_NUM = flags.DEFINE_integer('num', 64, 'Number of samples.')
_OUT = flags.DEFINE_string('out', None, 'Output file.')
_LABELS = flags.DEFINE_string('labels', None, 'Conditional models\' labels: one class, or a comma '
                              'list repeated cyclically; default 0, 1, ..., K-1, 0, ...')
_SEED = flags.DEFINE_integer('seed', None, 'Base seed (default config.seed); sample i uses '
                             'fold_in(key(seed), i), whatever the batch size.')
_INPUT = flags.DEFINE_string('input', None, 'pytorch-fid\'s pt_inception-2015-12-05-6726825d.pth.')
_OUTPUT = flags.DEFINE_string('output', None, 'The .npz to write (a .json is written beside it).')
_NO_CHECK_HASH = flags.DEFINE_bool('no_check_hash', False, 'Skip the check that the input\'s '
                                   'sha256 starts with 6726825d (pytorch-fid\'s file).')
_CONTENT = flags.DEFINE_string('content', None, 'The content image (PNG, JPEG, ...).')
_STYLE = flags.DEFINE_string('style', None, 'The style image (PNG, JPEG, ...).')
_WEIGHTS = flags.DEFINE_string('weights', None, 'VGG19 weights converted by `genjax '
                               'convert-vgg` (.npz); default: a random-weight VGG19 (seed 0).')
_OPTIMIZER = flags.DEFINE_enum('optimizer', 'adam', ['adam', 'lbfgs'], 'adam (lr 0.02) or lbfgs.')
_STEPS = flags.DEFINE_integer('steps', 300, 'Optimisation steps.')
_MAX_SIDE = flags.DEFINE_integer('max_side', 512, 'Larger images are shrunk to this longer side.')
_ARCH = flags.DEFINE_enum('arch', 'vgg19', ['vgg19', 'vgg16'], 'The VGG the weights are '
                           'for.')
_DISTRIBUTED = flags.DEFINE_bool('distributed', False,
                                 'Call jax.distributed.initialize() with cluster auto-detection.')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes; above 1 each '
                                      'runs under a supervisor that names a lost peer (exit 3).')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process\'s index.')
KEEP_FREED_MEMORY = flags.DEFINE_bool(
    'keep_freed_memory', True, 'glibc: keep freed memory in the process instead of returning it '
    'to the OS, so XLA:CPU\'s per-step buffers do not page-fault (genjax/core/malloc.py).')


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The flagship for a few minutes: DDPM (EDM) on mnist5k, sampled with DPM-Solver++(2M) SDE at 20 NFE.
DEMO_CONFIG = os.path.join(REPO, 'configs', 'ddpm_mnist.py') + ':demo'
# Flags of every verb that computes with JAX.
JAX_FLAGS = ('distributed', 'coordinator_address', 'num_processes', 'process_id',
             'keep_freed_memory')
# Flags defined here; a verb refuses those it does not read.
OWN_FLAGS = ('config', 'workdir', 'num', 'out', 'labels', 'seed', 'input', 'output',
             'no_check_hash', 'content', 'style', 'weights', 'optimizer', 'steps',
             'max_side', 'arch') + JAX_FLAGS


def _one_line(text: object) -> str:
  return ' '.join(str(text).split())


def fail(error: BaseException) -> None:
  """A user's error: one line on stderr, exit status 2, no traceback."""
  kind = 'UsageError' if isinstance(error, (app.UsageError, flags.Error)) else type(error).__name__
  print(f'genjax: {kind}: {_one_line(error)}', file=sys.stderr, flush=True)
  sys.exit(2)


def _init_distributed() -> None:
  import jax  # pylint: disable=g-import-not-at-top

  if _COORDINATOR.value or (_NUM_PROCESSES.value or 1) > 1:
    # CPU collectives across processes need gloo; accelerators ignore this.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    # A dead peer is declared lost after 20 s without heartbeats (JAX's default: 100 s).
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                               heartbeat_timeout_seconds=20)
  elif _DISTRIBUTED.value:
    jax.distributed.initialize()


def _start_jax(config) -> None:
  """Process-wide settings read when JAX starts its backend: before any computation.

  The convolution library the run's config chose (`config.train.xla_cpu_convolutions`),
  then the processes' meeting (--coordinator_address, ...; nothing for one process).
  """
  from genjax.core import xla_cpu  # pylint: disable=g-import-not-at-top

  xla_cpu.use_convolution_library(config.train.get('xla_cpu_convolutions', 'ynnpack'))
  _init_distributed()


def _run_config():
  """--config if given, else the config the run in --workdir was trained with."""
  from genjax.train import trained as trained_lib  # pylint: disable=g-import-not-at-top

  return CONFIG.value or trained_lib.workdir_config(_WORKDIR.value)


def _train(config, workdir: str, train_fn=None) -> None:
  from genjax.train import loop  # pylint: disable=g-import-not-at-top

  _start_jax(config)
  try:
    (train_fn or loop.train)(config, workdir)
  except loop.Interrupted as e:
    print(e, flush=True)
    sys.exit(128 + e.signum)


def run_train() -> None:
  from genjax.train import loop, pipeline  # pylint: disable=g-import-not-at-top

  if pipeline.is_pipeline(CONFIG.value):  # Latent diffusion: its stages first, in <workdir>/<stage>.
    _train(CONFIG.value, _WORKDIR.value, lambda c, w: pipeline.train(c, w, loop.train))
  else:
    _train(CONFIG.value, _WORKDIR.value)


def run_demo() -> None:
  from genjax import config as config_lib  # pylint: disable=g-import-not-at-top

  workdir = _WORKDIR.value or 'runs/demo'
  _train(CONFIG.value or config_lib.load_config(DEMO_CONFIG), workdir)
  result = json.load(open(os.path.join(workdir, 'eval.json')))
  shown = ', '.join(f'{k} {result[k]:.3g}' for k in ('fid', 'fid_floor', 'fid_ratio', 'is',
                                                      'precision', 'recall', 'accuracy')
                    if isinstance(result.get(k), (int, float)))
  print(f'\nDemo done. Metrics: {os.path.join(workdir, "eval.json")} ({shown}); '
        f'pictures: {os.path.join(workdir, "images")}/')


def run_eval() -> None:
  from genjax.train import run as run_lib  # pylint: disable=g-import-not-at-top
  from genjax.train import trained as trained_lib  # pylint: disable=g-import-not-at-top

  workdir = _WORKDIR.value
  config = _run_config()
  _start_jax(config)
  # Evaluation gathers the state itself (run_lib.evaluate): keep the run's shardings.
  trained = trained_lib.load_trained(workdir, config, host_local=False)
  run_lib.evaluate(trained.run, trained.state)
  with open(os.path.join(trained.run.workdir, 'eval.json')) as f:
    print(f.read())


def parse_labels(spec: str | None, n: int, num_classes: int) -> np.ndarray | None:
  """--labels as n class ids [n]; None for an unconditional method (num_classes 0).

  Raises:
    app.UsageError: labels given to an unconditional method, not integers, or out of range.
  """
  if not num_classes:
    if spec is not None:
      raise app.UsageError('--labels is only for label-conditional models; this run samples '
                           'unconditionally.')
    return None
  if spec is None:
    return np.arange(n, dtype=np.int32) % num_classes
  try:
    values = [int(v) for v in spec.split(',')]
  except ValueError as e:
    raise app.UsageError(f'--labels must be integers separated by commas, got {spec!r}.') from e
  bad = [v for v in values if not 0 <= v < num_classes]
  if bad:
    raise app.UsageError(f'--labels {bad} outside 0..{num_classes - 1}.')
  return np.resize(np.asarray(values, np.int32), n)


def run_sample() -> None:
  """Writes `--num` samples of the run's latest checkpoint to `--out` as uint8 images."""
  import jax  # pylint: disable=g-import-not-at-top

  from genjax.methods import sampling  # pylint: disable=g-import-not-at-top
  from genjax.train import trained as trained_lib  # pylint: disable=g-import-not-at-top
  from genjax.viz.grid import to_uint8  # pylint: disable=g-import-not-at-top

  from genjax.train import pipeline  # pylint: disable=g-import-not-at-top

  workdir, out = pipeline.resolve_workdir(_WORKDIR.value), _OUT.value  # An LDM pipeline: its ldm.
  config = CONFIG.value or trained_lib.workdir_config(workdir)
  prompts_file = flags.FLAGS['prompts'].value if 'prompts' in flags.FLAGS else None
  if prompts_file is not None and config.method != 'ldm':
    raise app.UsageError(f'--prompts is for latent diffusion (ldm) runs; this is {config.method!r}.')
  _start_jax(config)
  trained = trained_lib.load_trained(workdir, config)
  method = trained.method
  if method.sample is None:
    raise app.UsageError(f'method {config.method!r} does not generate samples.')
  seed = config.seed if _SEED.value is None else _SEED.value
  labels = parse_labels(_LABELS.value, _NUM.value, method.num_classes)
  prompts = None
  if prompts_file is not None:  # LDM: token ids are its labels; the prompts go in the npz.
    from genjax.data import captions  # pylint: disable=g-import-not-at-top

    labels, prompts = captions.prompt_batch(captions.read_prompts(prompts_file), _NUM.value)
  images = sampling.draw(method.sample, trained.state, jax.random.key(seed), _NUM.value, labels,
                         config.eval.sample_batch_size)
  payload = {'images': to_uint8(images), 'seed': np.int64(seed), 'step': np.int64(trained.step)}
  if prompts is not None:
    payload['prompts'] = prompts
  elif labels is not None:
    payload['labels'] = labels
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    np.savez(out, **payload)
    print(f'Wrote {len(images)} samples {payload["images"].shape} to {out}.')


def run_convert_inception() -> None:
  from genjax.tools import convert_inception  # pylint: disable=g-import-not-at-top

  source, output = _INPUT.value, _OUTPUT.value
  try:
    digest = convert_inception.convert(source, output, check_hash=not _NO_CHECK_HASH.value)
  except (ValueError, pickle.UnpicklingError) as e:  # Not pytorch-fid's file: say which, no traceback.
    fail(e)
  print(f'Wrote {output} (sha256 {digest}) and {output}.json')


def run_convert_vgg() -> None:
  from genjax.models import vgg  # pylint: disable=g-import-not-at-top
  from genjax.tools import convert_vgg  # pylint: disable=g-import-not-at-top

  source, output, arch = _INPUT.value, _OUTPUT.value, _ARCH.value
  try:
    mode = convert_vgg.convert(source, output, arch)
  except (FileNotFoundError, ImportError, vgg.WeightsError) as e:  # Not VGG weights: one line.
    fail(e)
  print(f'Wrote {output} ({arch.upper()}, {mode} preprocessing).')


def run_export_extractor() -> None:
  from genjax.tools import export_extractor  # pylint: disable=g-import-not-at-top
  from genjax.train import trained as trained_lib  # pylint: disable=g-import-not-at-top

  workdir, out = _WORKDIR.value, _OUT.value
  config = trained_lib.workdir_config(workdir)
  _start_jax(config)
  print(json.dumps(export_extractor.export(workdir, out, config), indent=2))


def run_stylize() -> None:
  from genjax.stylize import command  # pylint: disable=g-import-not-at-top

  try:
    command.run(_CONTENT.value, _STYLE.value, _OUT.value, weights=_WEIGHTS.value,
                optimizer=_OPTIMIZER.value, steps=_STEPS.value, max_side=_MAX_SIDE.value)
  except command.USERS_ERRORS as e:  # Not an image, not VGG19 weights: one line, no traceback.
    fail(e)
