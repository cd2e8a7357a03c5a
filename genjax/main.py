"""The genjax command line.

  genjax train  --config=configs/classifier_mnist.py --workdir=runs/clf [--config.optim.lr=3e-4]
  genjax eval   --workdir=runs/clf [--config=... overrides, e.g. --config.vae.iwae_k=5000]
  genjax sample --workdir=runs/vae --num=1000 --out=samples.npz [--labels=3 | --labels=0,1,2]
  genjax demo   [--workdir=runs/demo]

Variants come after the config path (`configs/classifier_mnist.py:smoke`).
Several processes (hosts, or local processes for testing) join through
`jax.distributed`: pass --coordinator_address, --num_processes and
--process_id, or --distributed to let JAX detect a cluster (SLURM, TPU, ...).
"""
from __future__ import annotations

import difflib
import json
import os
import sys

import numpy as np

from absl import app, flags, logging
from ml_collections import config_flags

COMMANDS = ('train', 'eval', 'sample', 'demo')

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file[:variant].',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory: checkpoints, metrics, images.')
_NUM = flags.DEFINE_integer('num', 64, 'sample: number of samples.')
_OUT = flags.DEFINE_string('out', None, 'sample: output .npz (images uint8 [N, H, W, C], labels [N]).')
_LABELS = flags.DEFINE_string('labels', None, 'sample: conditional models\' labels: one class, or a '
                              'comma list repeated cyclically; default 0, 1, ..., K-1, 0, ...')
_SEED = flags.DEFINE_integer('seed', None, 'sample: base seed (default config.seed); sample i '
                             'uses fold_in(key(seed), i).')
_DISTRIBUTED = flags.DEFINE_bool('distributed', False,
                                 'Call jax.distributed.initialize() with cluster auto-detection.')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process\'s index.')
_KEEP_FREED_MEMORY = flags.DEFINE_bool(
    'keep_freed_memory', True, 'glibc: keep freed memory in the process instead of returning it '
    'to the OS, so XLA:CPU\'s per-step buffers do not page-fault (genjax/core/malloc.py).')

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The flagship for a few minutes: DDPM (EDM) on mnist5k, sampled with DPM-Solver++(2M) SDE at 20 NFE.
DEMO_CONFIG = os.path.join(_REPO, 'configs', 'ddpm_mnist.py') + ':demo'


def _init_distributed() -> None:
  import jax  # pylint: disable=g-import-not-at-top

  if _COORDINATOR.value or (_NUM_PROCESSES.value or 1) > 1:
    # CPU collectives across processes need gloo; accelerators ignore this.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  elif _DISTRIBUTED.value:
    jax.distributed.initialize()


def _workdir_config(workdir: str):
  """The resolved config a training run wrote into its workdir (see `config.with_defaults`)."""
  from genjax import config as config_lib  # pylint: disable=g-import-not-at-top

  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise app.UsageError(f'{path} not found: --workdir must be a genjax training run '
                         '(or pass --config).')
  with open(path) as f:
    return config_lib.with_defaults(json.load(f))


def _run_train(config, workdir: str) -> None:
  from genjax.train import loop  # pylint: disable=g-import-not-at-top

  try:
    loop.train(config, workdir)
  except loop.Interrupted as e:
    print(e, flush=True)
    sys.exit(128 + e.signum)


def _parse_labels(spec: str | None, n: int, config) -> np.ndarray | None:
  if not config.model.get('conditional', False):
    if spec is not None:
      raise app.UsageError('--labels is only for conditional models (config.model.conditional).')
    return None
  if spec is None:
    return np.arange(n, dtype=np.int32) % config.model.num_classes
  try:
    values = [int(v) for v in spec.split(',')]
  except ValueError as e:
    raise app.UsageError(f'--labels must be integers separated by commas, got {spec!r}.') from e
  bad = [v for v in values if not 0 <= v < config.model.num_classes]
  if bad:
    raise app.UsageError(f'--labels {bad} outside 0..{config.model.num_classes - 1}.')
  return np.resize(np.asarray(values, np.int32), n)


def _run_sample(config, workdir: str) -> None:
  """Writes `--num` samples of the run's latest checkpoint to `--out` as uint8 images."""
  import jax  # pylint: disable=g-import-not-at-top

  from genjax.methods import sampling  # pylint: disable=g-import-not-at-top
  from genjax.train import run as run_lib  # pylint: disable=g-import-not-at-top
  from genjax.viz.grid import to_uint8  # pylint: disable=g-import-not-at-top

  if not _OUT.value:
    raise app.UsageError('sample needs --out=FILE.npz.')
  run = run_lib.setup(config, workdir)
  if run.method.sample is None:
    raise app.UsageError(f'method {config.method.name!r} does not generate samples.')
  state = run_lib.host_local(run_lib.restore_or_init(run, require_checkpoint=True), run.mesh)
  seed = config.seed if _SEED.value is None else _SEED.value
  labels = _parse_labels(_LABELS.value, _NUM.value, config)
  images = sampling.draw(run.method.sample, state, jax.random.key(seed), _NUM.value, labels,
                         config.eval.sample_batch_size)
  payload = {'images': to_uint8(images), 'seed': np.int64(seed),
             'step': np.int64(jax.device_get(state.step))}
  if labels is not None:
    payload['labels'] = labels
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    np.savez(_OUT.value, **payload)
    print(f'Wrote {len(images)} samples {payload["images"].shape} to {_OUT.value}.')


def main(argv) -> None:
  from genjax.config import ConfigError  # pylint: disable=g-import-not-at-top
  from genjax.data import DataError  # pylint: disable=g-import-not-at-top
  from genjax.train.loop import NonFiniteLossError  # pylint: disable=g-import-not-at-top

  try:
    _main(argv)
  except (ConfigError, DataError, NonFiniteLossError, FileNotFoundError) as e:
    # Errors of the user's making: the message says what to change; no traceback.
    print(f'genjax: {type(e).__name__}: {e}', file=sys.stderr, flush=True)
    sys.exit(2)


def _main(argv) -> None:
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f'Usage: genjax {{{"|".join(COMMANDS)}}} --config=... --workdir=...; '
                         f'got {argv[1:]}.')
  command = argv[1]
  if _KEEP_FREED_MEMORY.value:
    from genjax.core import malloc  # pylint: disable=g-import-not-at-top
    malloc.keep_freed_memory()
  if _CONFIG.value is not None:
    apply_none_overrides(_CONFIG.value)
  if not flags.FLAGS['verbosity'].present:  # Library INFO logs (orbax, tfds) drown the progress.
    logging.set_verbosity(logging.WARNING)
  from genjax import config as config_lib  # pylint: disable=g-import-not-at-top
  from genjax.core import xla_cpu  # pylint: disable=g-import-not-at-top

  if command != 'demo' and not _WORKDIR.value:
    raise app.UsageError('--workdir is required.')
  if command == 'train' and _CONFIG.value is None:
    raise app.UsageError('--config is required for train.')
  if command == 'demo':
    config = _CONFIG.value or config_lib.load_config(DEMO_CONFIG)
  else:
    config = _CONFIG.value or _workdir_config(_WORKDIR.value)
  # Process-wide and read when JAX starts its backend: before any computation.
  xla_cpu.use_convolution_library(config.train.get('xla_cpu_convolutions', 'ynnpack'))
  _init_distributed()
  from genjax.train import run as run_lib  # pylint: disable=g-import-not-at-top

  if command == 'demo':
    workdir = _WORKDIR.value or 'runs/demo'
    _run_train(config, workdir)
    result = json.load(open(os.path.join(workdir, 'eval.json')))
    shown = ', '.join(f'{k} {result[k]:.3g}' for k in ('fid', 'fid_floor', 'fid_ratio', 'is',
                                                        'precision', 'recall', 'accuracy')
                      if isinstance(result.get(k), (int, float)))
    print(f'\nDemo done. Metrics: {os.path.join(workdir, "eval.json")} ({shown}); '
          f'pictures: {os.path.join(workdir, "images")}/')
    return
  if command == 'train':
    _run_train(config, _WORKDIR.value)
  elif command == 'sample':
    _run_sample(config, _WORKDIR.value)
  elif command == 'eval':
    run = run_lib.setup(config, _WORKDIR.value)
    state = run_lib.restore_or_init(run, require_checkpoint=True)
    run_lib.evaluate(run, state)
    with open(os.path.join(run.workdir, 'eval.json')) as f:
      print(f.read())


def _config_spec(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg.split('=', 1)[1]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def check_overrides(argv: list[str]) -> None:
  """Refuses `--config.a.b=...` keys that the config lacks, listing the accepted ones.

  ml_collections would refuse them too, but deep inside flag parsing, with a
  traceback; this names the key, its group's fields and the closest match.
  """
  spec = _config_spec(argv)
  keys = [a[len('--config.'):].split('=', 1)[0] for a in argv if a.startswith('--config.')]
  if not spec or not keys:
    return
  from genjax import config as config_lib  # pylint: disable=g-import-not-at-top

  try:
    config = config_lib.load_config(spec)
  except (config_lib.ConfigError, ValueError) as e:
    sys.exit(f'genjax: ConfigError: {e}')
  for key in keys:
    node, path = config, []
    for part in key.split('.'):
      fields = list(node.keys()) if hasattr(node, 'keys') else []
      if part not in fields:
        where = '.'.join(path) or 'the config'
        close = difflib.get_close_matches(part, fields, n=1)
        hint = f' Did you mean {".".join(path + close)!r}?' if close else ''
        sys.exit(f'genjax: ConfigError: unknown config key {key!r}: {where} has no field {part!r}; '
                 f'its fields are {sorted(fields)}.{hint}')
      node, path = node[part], path + [part]


_NONE_OVERRIDES = []  # Dotted keys set to None on the command line (`--config.x.y=None`).


def _take_none_overrides(argv: list[str]) -> list[str]:
  """Removes `--config.k=None` from argv (flag parsing would store the string 'None')."""
  kept = []
  for arg in argv:
    if arg.startswith('--config.') and arg.endswith('=None'):
      _NONE_OVERRIDES.append(arg[len('--config.'):-len('=None')])
    else:
      kept.append(arg)
  return kept


def apply_none_overrides(config) -> None:
  for dotted in _NONE_OVERRIDES:
    *groups, key = dotted.split('.')
    node = config
    for g in groups:
      node = node[g]
    node[key] = None


def run() -> None:
  """Console-script entry point."""
  spec = _config_spec(sys.argv)
  if spec:  # Config files `from configs import base`, wherever genjax is launched from.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(spec.split(':')[0]))))
  sys.path.insert(0, _REPO)
  check_overrides(sys.argv)
  app.run(main, argv=_take_none_overrides(sys.argv))


if __name__ == '__main__':
  run()
