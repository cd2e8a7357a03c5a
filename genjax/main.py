"""The genjax command line: `genjax VERB [--flag=value ...]`.

  genjax --help           every verb, one line each
  genjax VERB --help      that verb's flags and example command lines

Configs are Python files with optional variants (`--config=configs/vae_mnist.py:smoke`);
`--config.GROUP.FIELD=VALUE` overrides one field (`=None` sets None). A key the
config lacks is refused before any work, naming the family that owns it.
Several processes (hosts, or local processes for testing) join through
`jax.distributed`: pass --coordinator_address, --num_processes and
--process_id, or --distributed to let JAX detect a cluster (SLURM, TPU, ...).
User errors print one line, `genjax: <Kind>: <what to change>`, and exit 2.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import pickle
import sys
import textwrap
from typing import Callable

import numpy as np

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
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
_WEIGHTS = flags.DEFINE_string('weights', None, 'VGG19 weights converted by genjax.tools.'
                               'convert_vgg (.npz); default: a random-weight VGG19 (seed 0).')
_OPTIMIZER = flags.DEFINE_enum('optimizer', 'adam', ['adam', 'lbfgs'], 'adam (lr 0.02) or lbfgs.')
_STEPS = flags.DEFINE_integer('steps', 300, 'Optimisation steps.')
_MAX_SIDE = flags.DEFINE_integer('max_side', 512, 'Larger images are shrunk to this longer side.')
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
# Flags of every verb that computes with JAX.
_JAX_FLAGS = ('distributed', 'coordinator_address', 'num_processes', 'process_id',
              'keep_freed_memory')


def _init_distributed() -> None:
  import jax  # pylint: disable=g-import-not-at-top

  if _COORDINATOR.value or (_NUM_PROCESSES.value or 1) > 1:
    # CPU collectives across processes need gloo; accelerators ignore this.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
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

  return _CONFIG.value or trained_lib.workdir_config(_WORKDIR.value)


def _train(config, workdir: str) -> None:
  from genjax.train import loop  # pylint: disable=g-import-not-at-top

  _start_jax(config)
  try:
    loop.train(config, workdir)
  except loop.Interrupted as e:
    print(e, flush=True)
    sys.exit(128 + e.signum)


def _run_train() -> None:
  _train(_CONFIG.value, _WORKDIR.value)


def _run_demo() -> None:
  from genjax import config as config_lib  # pylint: disable=g-import-not-at-top

  workdir = _WORKDIR.value or 'runs/demo'
  _train(_CONFIG.value or config_lib.load_config(DEMO_CONFIG), workdir)
  result = json.load(open(os.path.join(workdir, 'eval.json')))
  shown = ', '.join(f'{k} {result[k]:.3g}' for k in ('fid', 'fid_floor', 'fid_ratio', 'is',
                                                      'precision', 'recall', 'accuracy')
                    if isinstance(result.get(k), (int, float)))
  print(f'\nDemo done. Metrics: {os.path.join(workdir, "eval.json")} ({shown}); '
        f'pictures: {os.path.join(workdir, "images")}/')


def _run_eval() -> None:
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


def _run_sample() -> None:
  """Writes `--num` samples of the run's latest checkpoint to `--out` as uint8 images."""
  import jax  # pylint: disable=g-import-not-at-top

  from genjax.methods import sampling  # pylint: disable=g-import-not-at-top
  from genjax.train import trained as trained_lib  # pylint: disable=g-import-not-at-top
  from genjax.viz.grid import to_uint8  # pylint: disable=g-import-not-at-top

  workdir, out = _WORKDIR.value, _OUT.value
  config = _run_config()
  _start_jax(config)
  trained = trained_lib.load_trained(workdir, config)
  method = trained.method
  if method.sample is None:
    raise app.UsageError(f'method {config.method!r} does not generate samples.')
  seed = config.seed if _SEED.value is None else _SEED.value
  labels = parse_labels(_LABELS.value, _NUM.value, method.num_classes)
  images = sampling.draw(method.sample, trained.state, jax.random.key(seed), _NUM.value, labels,
                         config.eval.sample_batch_size)
  payload = {'images': to_uint8(images), 'seed': np.int64(seed), 'step': np.int64(trained.step)}
  if labels is not None:
    payload['labels'] = labels
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    np.savez(out, **payload)
    print(f'Wrote {len(images)} samples {payload["images"].shape} to {out}.')


def _run_convert_inception() -> None:
  from genjax.tools import convert_inception  # pylint: disable=g-import-not-at-top

  source, output = _INPUT.value, _OUTPUT.value
  try:
    digest = convert_inception.convert(source, output, check_hash=not _NO_CHECK_HASH.value)
  except (ValueError, pickle.UnpicklingError) as e:  # Not pytorch-fid's file: say which, no traceback.
    _fail(e)
  print(f'Wrote {output} (sha256 {digest}) and {output}.json')


def _run_export_extractor() -> None:
  from genjax.tools import export_extractor  # pylint: disable=g-import-not-at-top
  from genjax.train import trained as trained_lib  # pylint: disable=g-import-not-at-top

  workdir, out = _WORKDIR.value, _OUT.value
  config = trained_lib.workdir_config(workdir)
  _start_jax(config)
  print(json.dumps(export_extractor.export(workdir, out, config), indent=2))


def _run_stylize() -> None:
  from genjax.stylize import command  # pylint: disable=g-import-not-at-top

  try:
    command.run(_CONTENT.value, _STYLE.value, _OUT.value, weights=_WEIGHTS.value,
                optimizer=_OPTIMIZER.value, steps=_STEPS.value, max_side=_MAX_SIDE.value)
  except command.USERS_ERRORS as e:  # Not an image, not VGG19 weights: one line, no traceback.
    _fail(e)


@dataclasses.dataclass(frozen=True)
class Verb:
  """A command.

  Attributes:
    about: its one line in `genjax --help`.
    run: does the work, reading the flags.
    flags: the flags it reads -> its help for them (None: the flag's own).
    examples: command lines for `genjax VERB --help`.
    required: the flags it cannot do without.
  """
  about: str
  run: Callable[[], None]
  flags: dict[str, str | None]
  examples: tuple[str, ...]
  required: tuple[str, ...] = ()


VERBS = {
    'train': Verb(
        'Train the model a config describes; checkpoints, metrics, pictures in --workdir.',
        _run_train,
        {'config': None, 'workdir': None, **dict.fromkeys(_JAX_FLAGS)},
        ('genjax train --config=configs/classifier_mnist.py --workdir=runs/clf',
         'genjax train --config=configs/vae_mnist.py:smoke --workdir=runs/vae '
         '--config.vae.beta=4.0'),
        required=('config', 'workdir')),
    'eval': Verb(
        'Evaluate the latest checkpoint of a run; writes and prints its eval.json.',
        _run_eval,
        {'workdir': None, 'config': 'The run\'s config (default: its config.json), to '
         'override fields: --config=FILE[:variant] --config.GROUP.FIELD=VALUE.',
         **dict.fromkeys(_JAX_FLAGS)},
        ('genjax eval --workdir=runs/clf',
         'genjax eval --workdir=runs/vae --config=configs/vae_mnist.py --config.vae.iwae_k=5000'),
        required=('workdir',)),
    'sample': Verb(
        'Write samples of a trained run to an .npz (uint8 images, labels, seed, step).',
        _run_sample,
        {'workdir': None, 'out': 'The .npz to write: images uint8 [N, H, W, C], labels [N] '
         '(conditional models), seed, step.', 'num': None, 'labels': None, 'seed': None,
         'config': 'The run\'s config (default: its config.json), to override fields, e.g. '
         '--config.eval.sample_batch_size=...', **dict.fromkeys(_JAX_FLAGS)},
        ('genjax sample --workdir=runs/vae --num=1000 --out=samples.npz',
         'genjax sample --workdir=runs/cvae --num=100 --labels=3 --out=threes.npz',
         'genjax sample --workdir=runs/cvae --num=30 --labels=0,1,2 --seed=7 --out=s.npz'),
        required=('workdir', 'out')),
    'demo': Verb(
        'Train and evaluate the flagship (DDPM on mnist5k) in a few minutes.',
        _run_demo,
        {'workdir': 'Run directory (default: runs/demo).',
         'config': f'Config to run instead of {os.path.relpath(DEMO_CONFIG, _REPO)}.',
         **dict.fromkeys(_JAX_FLAGS)},
        ('genjax demo', 'genjax demo --workdir=runs/my_demo')),
    'convert-inception': Verb(
        'Convert pytorch-fid\'s InceptionV3 weights (.pth) to the .npz FID loads, without torch.',
        _run_convert_inception,
        {'input': None, 'output': None, 'no_check_hash': None},
        ('genjax convert-inception --input=pt_inception-2015-12-05-6726825d.pth '
         '--output=inception_fid.npz',),
        required=('input', 'output')),
    'export-extractor': Verb(
        'Export a trained mnist5k classifier run as the bundled feature extractor.',
        _run_export_extractor,
        {'workdir': 'A finished `genjax train --config=configs/classifier_mnist.py` run.',
         'out': 'The weights .npz to write (a .json with its sha256 and test accuracy beside it).',
         'keep_freed_memory': None},
        ('genjax export-extractor --workdir=runs/feature_extractor '
         '--out=genjax/assets/mnist5k_classifier_v1.npz',),
        required=('workdir', 'out')),
    'stylize': Verb(
        'Render a content image in the style of another (neural style transfer, VGG19).',
        _run_stylize,
        {'content': None, 'style': None, 'out': 'The picture to write (PNG), at the content\'s '
         'aspect ratio.', 'weights': None, 'optimizer': None, 'steps': None, 'max_side': None,
         'keep_freed_memory': None},
        ('genjax stylize --content=photo.jpg --style=painting.png --out=out.png',
         'genjax stylize --content=photo.jpg --style=painting.png --out=out.png '
         '--weights=vgg19.npz --optimizer=lbfgs --steps=200 --max_side=384'),
        required=('content', 'style', 'out')),
}
# Flags defined here; a verb refuses those it does not read.
_OWN_FLAGS = ('config', 'workdir', 'num', 'out', 'labels', 'seed', 'input', 'output',
              'no_check_hash', 'content', 'style', 'weights', 'optimizer', 'steps',
              'max_side') + _JAX_FLAGS


def overview() -> str:
  """`genjax --help`: every verb, one line each."""
  width = max(map(len, VERBS))
  lines = ['usage: genjax VERB [--flag=value ...]', '', 'verbs:']
  lines += [f'  {name:<{width}}  {verb.about}' for name, verb in VERBS.items()]
  lines += ['', 'genjax VERB --help shows its flags and examples.']
  return '\n'.join(lines)


def verb_help(name: str) -> str:
  """`genjax VERB --help`: the verb's flags (the ones it reads) and example command lines."""
  verb = VERBS[name]
  lines = [f'usage: genjax {name} [--flag=value ...]', '', verb.about, '', 'flags:']
  # A flag on by default is shown as absl turns it off: --[no]keep_freed_memory.
  shown = {f: f'--[no]{f}' if flags.FLAGS[f].default is True else f'--{f}' for f in verb.flags}
  indent = ' ' * (4 + max(map(len, shown.values())))
  for flag_name, about in verb.flags.items():
    flag = flags.FLAGS[flag_name]
    text = about or flag.help
    if flag.default not in (None, False) and about is None:
      text += f' (default: {flag.default})'
    if flag_name in verb.required:
      text += ' (required)'
    lines += textwrap.wrap(text, 100, initial_indent=f'  {shown[flag_name]:<{len(indent) - 2}}',
                           subsequent_indent=indent)
  lines += ['', 'examples:'] + [f'  {example}' for example in verb.examples]
  return '\n'.join(lines)


def _one_line(text: object) -> str:
  return ' '.join(str(text).split())


def _fail(error: BaseException) -> None:
  """A user's error: one line on stderr, exit status 2, no traceback."""
  kind = 'UsageError' if isinstance(error, (app.UsageError, flags.Error)) else type(error).__name__
  print(f'genjax: {kind}: {_one_line(error)}', file=sys.stderr, flush=True)
  sys.exit(2)


def _is_users_error(error: Exception) -> bool:
  """Errors of the user's making, whose message says what to change (no traceback needed).

  Their classes are looked up among the modules already imported: an error of
  a class is raised only once its module is loaded, and a usage error needs
  no heavy import (genjax.train.loop) before it is printed.
  """
  kinds = [FileNotFoundError, app.UsageError]
  for module, name in (('genjax.config', 'ConfigError'), ('genjax.data', 'DataError'),
                       ('genjax.train.loop', 'NonFiniteLossError')):
    if module in sys.modules:
      kinds.append(getattr(sys.modules[module], name))
  return isinstance(error, tuple(kinds))


def main(argv) -> None:
  try:
    _main(argv)
  except Exception as e:  # pylint: disable=broad-except
    if not _is_users_error(e):
      raise
    _fail(e)


def _main(argv) -> None:
  verb = _verb_of(argv[1:])
  if len(argv) != 2:
    raise app.UsageError(f'one verb and --flags expected; got {argv[1:]}.')
  used = VERBS[verb].flags
  given = [f'--{name}' for name in _OWN_FLAGS if flags.FLAGS[name].present and name not in used]
  if given:
    raise app.UsageError(f'{verb} does not read {", ".join(given)}; its flags are '
                         f'{", ".join("--" + f for f in used)}.')
  missing = [f'--{name}' for name in VERBS[verb].required if flags.FLAGS[name].value is None]
  if missing:
    raise app.UsageError(f'{verb} needs {" and ".join(missing)}; see `genjax {verb} --help`.')
  if 'keep_freed_memory' in used and _KEEP_FREED_MEMORY.value:
    from genjax.core import malloc  # pylint: disable=g-import-not-at-top
    malloc.keep_freed_memory()
  if _CONFIG.value is not None:
    apply_none_overrides(_CONFIG.value)
  if not flags.FLAGS['verbosity'].present:  # Library INFO logs (orbax, tfds) drown the progress.
    logging.set_verbosity(logging.WARNING)
  VERBS[verb].run()


def _verb_of(args: list[str]) -> str:
  """The verb among `args` (the first argument that is not a flag), checked."""
  words = [a for a in args if not a.startswith('-')]
  if not words:
    raise app.UsageError(f'no verb given; verbs: {", ".join(VERBS)} (genjax --help).')
  if words[0] not in VERBS:
    close = difflib.get_close_matches(words[0], list(VERBS), n=1)
    hint = f' Did you mean {close[0]!r}?' if close else ''
    raise app.UsageError(f'unknown verb {words[0]!r}; verbs: {", ".join(VERBS)}.{hint}')
  return words[0]


def _help_topic(args: list[str]) -> str | None:
  """'' for `genjax`, `genjax help` or `genjax --help`; a verb for `genjax VERB --help` or
  `genjax help VERB`; None when no help is asked for."""
  asks = {'--help', '-h', '-help', '--helpshort', '-?'}
  words = [a for a in args if not a.startswith('-')]
  if not args or words[:1] == ['help']:
    return words[1] if len(words) > 1 and words[1] in VERBS else ''
  if asks & set(args):
    return words[0] if words and words[0] in VERBS else ''
  return None


def _config_spec(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg.split('=', 1)[1]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def check_overrides(argv: list[str]) -> None:
  """Refuses `--config.a.b=...` keys that the config lacks (exit 2, one line).

  ml_collections would refuse them too, but deep inside flag parsing, with a
  traceback; `genjax.methods.check_key` names the family that owns a field of
  another family, the new place of a first-layout key, or the closest match.
  """
  spec = _config_spec(argv)
  keys = [a[len('--config.'):].split('=', 1)[0] for a in argv if a.startswith('--config.')]
  if not spec or not keys:
    return
  from genjax import config as config_lib  # pylint: disable=g-import-not-at-top
  from genjax import methods  # pylint: disable=g-import-not-at-top

  try:
    config = config_lib.load_config(spec)
    for key in keys:
      methods.check_key(config, key)
  except (config_lib.ConfigError, ValueError, FileNotFoundError) as e:
    _fail(e if isinstance(e, config_lib.ConfigError) else config_lib.ConfigError(str(e)))


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


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, its errors (unknown flag, bad value) as one line and exit 2."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, ValueError) as e:
    _fail(e if isinstance(e, flags.Error) else app.UsageError(str(e)))


def run() -> None:
  """Console-script entry point."""
  topic = _help_topic(sys.argv[1:])
  if topic is not None:
    print(verb_help(topic) if topic else overview())
    return
  spec = _config_spec(sys.argv)
  if spec:  # Config files `from configs import base`, wherever genjax is launched from.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(spec.split(':')[0]))))
  sys.path.insert(0, _REPO)
  check_overrides(sys.argv)
  app.run(main, argv=_take_none_overrides(sys.argv), flags_parser=_parse_flags)


if __name__ == '__main__':
  run()
