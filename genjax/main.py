"""The genjax command line.

  genjax train  --config=configs/classifier_mnist.py --workdir=runs/clf [--config.optim.lr=3e-4]
  genjax eval   --workdir=runs/clf
  genjax demo   [--workdir=runs/demo]

Variants come after the config path (`configs/classifier_mnist.py:smoke`).
Several processes (hosts, or local processes for testing) join through
`jax.distributed`: pass --coordinator_address, --num_processes and
--process_id, or --distributed to let JAX detect a cluster (SLURM, TPU, ...).
"""
from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

COMMANDS = ('train', 'eval', 'demo')

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file[:variant].',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory: checkpoints, metrics, images.')
_DISTRIBUTED = flags.DEFINE_bool('distributed', False,
                                 'Call jax.distributed.initialize() with cluster auto-detection.')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process\'s index.')

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CONFIG = os.path.join(_REPO, 'configs', 'classifier_mnist.py')


def _init_distributed() -> None:
  import jax  # pylint: disable=g-import-not-at-top

  if _COORDINATOR.value or (_NUM_PROCESSES.value or 1) > 1:
    # CPU collectives across processes need gloo; accelerators ignore this.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  elif _DISTRIBUTED.value:
    jax.distributed.initialize()


def _workdir_config(workdir: str):
  """The resolved config a training run wrote into its workdir."""
  import ml_collections  # pylint: disable=g-import-not-at-top

  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise app.UsageError(f'{path} not found: --workdir must be a genjax training run '
                         '(or pass --config).')
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  config.lock()
  return config


def _run_train(config, workdir: str) -> None:
  from genjax.train import loop  # pylint: disable=g-import-not-at-top

  try:
    loop.train(config, workdir)
  except loop.Interrupted as e:
    print(e, flush=True)
    sys.exit(128 + e.signum)


def main(argv) -> None:
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f'Usage: genjax {{{"|".join(COMMANDS)}}} --config=... --workdir=...; '
                         f'got {argv[1:]}.')
  command = argv[1]
  if not flags.FLAGS['verbosity'].present:  # Library INFO logs (orbax, tfds) drown the progress.
    logging.set_verbosity(logging.WARNING)
  _init_distributed()
  from genjax import config as config_lib  # pylint: disable=g-import-not-at-top
  from genjax.train import run as run_lib  # pylint: disable=g-import-not-at-top

  if command == 'demo':
    workdir = _WORKDIR.value or 'runs/demo'
    config = _CONFIG.value or config_lib.load_config(DEMO_CONFIG)
    _run_train(config, workdir)
    result = json.load(open(os.path.join(workdir, 'eval.json')))
    print(f'\nDemo done. Metrics: {os.path.join(workdir, "eval.json")} '
          f'(accuracy {result.get("accuracy")}); pictures: {os.path.join(workdir, "images")}/')
    return
  if not _WORKDIR.value:
    raise app.UsageError('--workdir is required.')
  if command == 'train':
    if _CONFIG.value is None:
      raise app.UsageError('--config is required for train.')
    _run_train(_CONFIG.value, _WORKDIR.value)
  elif command == 'eval':
    config = _CONFIG.value or _workdir_config(_WORKDIR.value)
    run = run_lib.setup(config, _WORKDIR.value)
    state = run_lib.restore_or_init(run, require_checkpoint=True)
    run_lib.evaluate(run, state)
    with open(os.path.join(run.workdir, 'eval.json')) as f:
      print(f.read())


def _add_config_root_to_path(argv: list[str]) -> None:
  """Lets config files `from configs import base` wherever genjax is launched from."""
  for i, arg in enumerate(argv):
    path = None
    if arg.startswith('--config='):
      path = arg.split('=', 1)[1]
    elif arg == '--config' and i + 1 < len(argv):
      path = argv[i + 1]
    if path:
      root = os.path.dirname(os.path.dirname(os.path.abspath(path.split(':')[0])))
      sys.path.insert(0, root)
  sys.path.insert(0, _REPO)


def run() -> None:
  """Console-script entry point."""
  _add_config_root_to_path(sys.argv)
  app.run(main)


if __name__ == '__main__':
  run()
