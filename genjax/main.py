"""The genjax command line: `genjax VERB [--flag=value ...]`.

  genjax --help           every verb, one line each
  genjax VERB --help      that verb's flags and example command lines

Configs are Python files with optional variants (`--config=configs/vae_mnist.py:smoke`);
`--config.GROUP.FIELD=VALUE` overrides one field (`=None` sets None). A key the
config lacks is refused before any work, naming the family that owns it.
Several processes (hosts, or local processes for testing) join through
`jax.distributed`: pass --coordinator_address, --num_processes and
--process_id, or --distributed to let JAX detect a cluster (SLURM, TPU, ...).
User errors print one line, `genjax: <Kind>: <what to change>`, and exit 2; `--debug`
shows their traceback instead.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import sys
import textwrap
from typing import Callable

from absl import app, flags, logging

from genjax.tools import commands
from genjax.tools.commands import parse_labels  # noqa: F401  # Re-exported (genjax.main's API).
from genjax.tools import inpaint as inpaint_tool  # Defines the inpaint verb's flags.
from genjax.tools import upscale as upscale_tool  # Defines the upscale verb's flags.
from genjax.tools import generate as generate_tool  # Defines the generate verb's flags.
from genjax.tools import supervise

_REPO = commands.REPO
DEMO_CONFIG = commands.DEMO_CONFIG
_JAX_FLAGS = commands.JAX_FLAGS
# Every verb reads it; not in commands.OWN_FLAGS, so no verb refuses it.
_DEBUG = flags.DEFINE_bool('debug', False, 'Show the traceback of a user\'s error (a bad '
                           'config, a missing file, ...) instead of its one line.')


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
        commands.run_train,
        {'config': None, 'workdir': None, **dict.fromkeys(_JAX_FLAGS)},
        ('genjax train --config=configs/classifier_mnist.py --workdir=runs/clf',
         'genjax train --config=configs/vae_mnist.py:smoke --workdir=runs/vae '
         '--config.vae.beta=4.0'),
        required=('config', 'workdir')),
    'eval': Verb(
        'Evaluate the latest checkpoint of a run; writes and prints its eval.json.',
        commands.run_eval,
        {'workdir': None, 'config': 'The run\'s config (default: its config.json), to '
         'override fields: --config=FILE[:variant] --config.GROUP.FIELD=VALUE.',
         **dict.fromkeys(_JAX_FLAGS)},
        ('genjax eval --workdir=runs/clf',
         'genjax eval --workdir=runs/vae --config=configs/vae_mnist.py --config.vae.iwae_k=5000'),
        required=('workdir',)),
    'sample': Verb(
        'Write samples of a trained run to an .npz (uint8 images, labels, seed, step).',
        commands.run_sample,
        {'workdir': None, 'out': 'The .npz to write: images uint8 [N, H, W, C], labels [N] '
         '(conditional models), seed, step.', 'num': None, 'labels': None, 'seed': None,
         'prompts': None,
         'config': 'The run\'s config (default: its config.json), to override fields, e.g. '
         '--config.eval.sample_batch_size=...', **dict.fromkeys(_JAX_FLAGS)},
        ('genjax sample --workdir=runs/vae --num=1000 --out=samples.npz',
         'genjax sample --workdir=runs/cvae --num=100 --labels=3 --out=threes.npz',
         'genjax sample --workdir=runs/cvae --num=30 --labels=0,1,2 --seed=7 --out=s.npz',
         'genjax sample --workdir=runs/ldm --prompts=prompts.txt --num=100 --out=s.npz'),
        required=('workdir', 'out')),
    'demo': Verb(
        'Train and evaluate the flagship (DDPM on mnist5k) in a few minutes.',
        commands.run_demo,
        {'workdir': 'Run directory (default: runs/demo).',
         'config': f'Config to run instead of {os.path.relpath(DEMO_CONFIG, _REPO)}.',
         **dict.fromkeys(_JAX_FLAGS)},
        ('genjax demo', 'genjax demo --workdir=runs/my_demo')),
    'convert-inception': Verb(
        'Convert pytorch-fid\'s InceptionV3 weights (.pth) to the .npz FID loads, without torch.',
        commands.run_convert_inception,
        {'input': None, 'output': None, 'no_check_hash': None},
        ('genjax convert-inception --input=pt_inception-2015-12-05-6726825d.pth '
         '--output=inception_fid.npz',),
        required=('input', 'output')),
    'convert-vgg': Verb(
        'Convert Keras (.h5) or torchvision (.pth) VGG19/VGG16 weights to genjax\'s .npz.',
        commands.run_convert_vgg,
        {'input': 'Keras\' VGG weights (.h5, e.g. '
         'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5) or torchvision\'s state dict (.pth, '
         'e.g. vgg19-dcbb9e9d.pth).',
         'output': 'The .npz to write (the weights, their architecture and preprocessing).',
         'arch': None},
        ('genjax convert-vgg --input=vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 '
         '--output=vgg19.npz',
         'genjax convert-vgg --input=vgg16-397923af.pth --output=vgg16.npz --arch=vgg16'),
        required=('input', 'output')),
    'convert-diffusers': Verb(
        'Convert a diffusers UNet2DModel (e.g. google/ddpm-cifar10-32) into a genjax diffusion run.',
        lambda: __import__('genjax.tools.convert_diffusers', fromlist=['_']).run_command(),
        {'input': 'The diffusers model folder (config.json + diffusion_pytorch_model.safetensors '
         'or .bin), e.g. ddpm-cifar10-32/unet.',
         'workdir': 'The genjax run to create (config.json + a step-0 checkpoint).',
         'config': 'The diffusion config to start from (default: configs/ddpm_cifar10.py).'},
        ('genjax convert-diffusers --input=ddpm-cifar10-32/unet --workdir=runs/ddpm_cifar10_hub',),
        required=('input', 'workdir')),
    'export-extractor': Verb(
        'Export a trained mnist5k classifier run as the bundled feature extractor.',
        commands.run_export_extractor,
        {'workdir': 'A finished `genjax train --config=configs/classifier_mnist.py` run.',
         'out': 'The weights .npz to write (a .json with its sha256 and test accuracy beside it).',
         'keep_freed_memory': None},
        ('genjax export-extractor --workdir=runs/feature_extractor '
         '--out=genjax/assets/mnist5k_classifier_v1.npz',),
        required=('workdir', 'out')),
    'stylize': Verb(
        'Render a content image in the style of another (neural style transfer, VGG19).',
        commands.run_stylize,
        {'content': None, 'style': None, 'out': 'The picture to write (PNG), at the content\'s '
         'aspect ratio.', 'weights': None, 'optimizer': None, 'steps': None, 'max_side': None,
         'keep_freed_memory': None},
        ('genjax stylize --content=photo.jpg --style=painting.png --out=out.png',
         'genjax stylize --content=photo.jpg --style=painting.png --out=out.png '
         '--weights=vgg19.npz --optimizer=lbfgs --steps=200 --max_side=384'),
        required=('content', 'style', 'out')),
    'inpaint': Verb(
        'Fill the holes of images with an inpainting run, or a diffusion run (RePaint).',
        inpaint_tool.run_verb,
        {f: None for f in inpaint_tool.FLAGS} | {
            'workdir': 'An inpainting run (its network fills) or an unconditional diffusion '
                       'run (RePaint fills, at its sample.num_steps).',
            'out': 'The PNG (with --image) or .npz (with --images: uint8 images [N, H, W, C], '
                   'masks, seed, step) to write.',
            'seed': 'Seed of --mask=random:R and of RePaint\'s noise (default config.seed).'},
        ('genjax inpaint --workdir=runs/pconv --image=digit.png --mask=mask.png --out=o.png',
         'genjax inpaint --workdir=runs/pconv --image=digit.png --mask=random:0.3 --out=o.png',
         'genjax inpaint --workdir=runs/ddpm --images=x.npz --masks=m.npz --out=filled.npz '
         '--jump_n_sample=10'),
        required=('workdir', 'out')),
    'generate': Verb(
        'Draw images of a text prompt with a latent diffusion run (PNG grid or .npz).',
        generate_tool.run_verb,
        {f: None for f in generate_tool.FLAGS} | {
            'workdir': 'A latent diffusion run (genjax train --config=configs/ldm_mnist.py), or '
                       'its pipeline directory.',
            'out': 'A .png (grid) or .npz (images uint8 [N, H, W, C], prompts, seed, guidance, '
                   'step) to write.',
            'num': 'Number of images.'},
        ('genjax generate --workdir=runs/ldm --prompt="a thick seven leaning right" --num=16 '
         '--guidance=3 --out=grid.png',
         'genjax generate --workdir=runs/ldm --prompt="the digit 3, thin and upright" --num=100 '
         '--seed=7 --out=threes.npz'),
        required=('workdir', 'out')),
    'upscale': Verb(
        'Upscale an image (or an .npz of images) 4x with a super-resolution run.',
        upscale_tool.run,
        {**upscale_tool.FLAGS, 'keep_freed_memory': None},
        ('genjax upscale --workdir=runs/rrdb_psnr_photos --image=photo.png --out=big.png',
         'genjax upscale --workdir=runs/esrgan_mnist --alpha=0.8 --image=digit.png --out=o.png',
         'genjax upscale --workdir=runs/rrdb_psnr_mnist --images=samples.npz --out=up.npz',
         'genjax upscale --workdir=runs/rrdb_psnr_photos --image=large.png --out=o.png '
         '--tile=128'),
        required=('workdir', 'out')),
}


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


def _is_users_error(error: Exception) -> bool:
  """Errors of the user's making, whose message says what to change (no traceback needed).

  Their classes are looked up among the modules already imported: an error of
  a class is raised only once its module is loaded, and a usage error needs
  no heavy import (genjax.train.loop) before it is printed.
  """
  kinds = [FileNotFoundError, app.UsageError]
  for module, name in (('genjax.config', 'ConfigError'), ('genjax.data', 'DataError'),
                       ('genjax.train.loop', 'NonFiniteLossError'),
                       ('genjax.core.checkpoint', 'CheckpointError')):
    if module in sys.modules:
      kinds.append(getattr(sys.modules[module], name))
  return isinstance(error, tuple(kinds))


def main(argv) -> None:
  try:
    _main(argv)
  except Exception as e:  # pylint: disable=broad-except
    lost = [] if _is_users_error(e) else _lost_processes()
    if lost and not _DEBUG.value:  # A peer died: say which, not a collective's traceback.
      import jax  # pylint: disable=g-import-not-at-top
      print(supervise.lost_message(lost, jax.process_count(), jax.process_index(),
                                   type(e).__name__), file=sys.stderr, flush=True)
      # pylint: disable-next=protected-access
      os._exit(supervise.LOST_EXIT)  # No shutdown barrier with a dead peer.
    if not _is_users_error(e) or _DEBUG.value:
      raise
    commands.fail(e)


def _lost_processes(wait_s: float = 60.0) -> list[int]:
  """The processes of a multi-process run that the coordination service has lost.

  A collective with a dead peer fails at once, but the service notices the death only when
  the peer's heartbeats stop for its timeout (genjax.tools.commands sets it): ask until then.
  """
  if 'jax' not in sys.modules:
    return []
  import time  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  from jax._src import distributed  # pylint: disable=g-import-not-at-top

  client = distributed.global_state.client
  if client is None or jax.process_count() == 1:
    return []
  everyone = list(range(jax.process_count()))
  deadline = time.monotonic() + wait_s
  while True:
    try:
      live = client.get_live_nodes(everyone)
    except Exception:  # pylint: disable=broad-except  # The coordinator (process 0) is gone.
      return [0] if jax.process_index() != 0 else []
    lost = [p for p in everyone if p not in live]
    if lost or time.monotonic() > deadline:
      return lost
    time.sleep(1.0)


def _main(argv) -> None:
  verb = _verb_of(argv[1:])
  if len(argv) != 2:
    raise app.UsageError(f'one verb and --flags expected; got {argv[1:]}.')
  used = VERBS[verb].flags
  given = [f'--{name}' for name in commands.OWN_FLAGS
           if flags.FLAGS[name].present and name not in used]
  if given:
    raise app.UsageError(f'{verb} does not read {", ".join(given)}; its flags are '
                         f'{", ".join("--" + f for f in used)}.')
  missing = [f'--{name}' for name in VERBS[verb].required if flags.FLAGS[name].value is None]
  if missing:
    raise app.UsageError(f'{verb} needs {" and ".join(missing)}; see `genjax {verb} --help`.')
  if 'keep_freed_memory' in used and commands.KEEP_FREED_MEMORY.value:
    from genjax.core import malloc  # pylint: disable=g-import-not-at-top
    malloc.keep_freed_memory()
  if commands.CONFIG.value is not None:
    apply_none_overrides(commands.CONFIG.value)
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
    if '--debug' in argv:  # Flags are not parsed yet: read --debug from the command line.
      raise
    commands.fail(e if isinstance(e, config_lib.ConfigError) else config_lib.ConfigError(str(e)))


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
    set_none(config, dotted)


def set_none(config, dotted: str) -> None:
  """`--config.KEY=None`: sets None where the field may be None, else a ConfigError.

  ml_collections lets None replace any value, but only a field declared as optional (a
  placeholder: None by default in configs/base.py or in the family's spec) means something
  by it; elsewhere None would fail deep inside the run, with a traceback.
  """
  from genjax import config as config_lib  # pylint: disable=g-import-not-at-top
  from ml_collections import config_dict  # pylint: disable=g-import-not-at-top

  *groups, key = dotted.split('.')
  node = config
  for g in groups:
    node = node[g]
  field = node._fields.get(key)  # pylint: disable=protected-access  # Placeholders are refs.
  if field is not None and not isinstance(field, config_dict.FieldReference):
    raise config_lib.ConfigError(f'config.{dotted} cannot be None; it takes a '
                                 f'{type(field).__name__}, e.g. {field!r}.')
  node[key] = None


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, its errors (unknown flag, bad value) as one line and exit 2."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, ValueError) as e:
    if '--debug' in argv:
      raise
    commands.fail(e if isinstance(e, flags.Error) else app.UsageError(str(e)))


def run() -> None:
  """Console-script entry point."""
  topic = _help_topic(sys.argv[1:])
  if topic is not None:
    print(verb_help(topic) if topic else overview())
    return
  if supervise.wanted(sys.argv):  # One process of several: the runtime may abort it (see there).
    sys.exit(supervise.run(sys.argv))
  spec = _config_spec(sys.argv)
  if spec:  # Config files `from configs import base`, wherever genjax is launched from.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(spec.split(':')[0]))))
  sys.path.insert(0, _REPO)
  check_overrides(sys.argv)
  app.run(main, argv=_take_none_overrides(sys.argv), flags_parser=_parse_flags)


if __name__ == '__main__':
  run()
