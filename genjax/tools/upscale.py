"""`genjax upscale`: a trained SR run (genjax.methods.sr) on an image file or an .npz of images.

  genjax upscale --workdir=W --image=in.png --out=out.png [--alpha=A] [--tile=T] [--self_ensemble]
  genjax upscale --workdir=W --images=samples.npz --out=up.npz

Any size and channel count: a 1-channel model runs on each channel of the
input; a 3-channel model runs on RGB (grey inputs repeated to RGB and averaged
back; an alpha channel is upscaled bicubically). Large images (more than
`AUTO_TILE_PIXELS` input pixels) go through overlapping tiles, said on the
console, so memory stays bounded. `--alpha` interpolates an ESRGAN run with
its RRDB-PSNR run (alpha * PSNR + (1 - alpha) * GAN); `--self_ensemble` averages
the model over the input's 8 rotations and reflections. User errors end in one
line and exit status 2.
"""
from __future__ import annotations

import functools
import os
from typing import Callable

import numpy as np
from absl import flags

def _flag(define, name: str, about: str):
  """Defines --name once (a flag of the same name defined by another verb is shared)."""
  if name not in flags.FLAGS:
    define(name, None, about)
  return flags.FLAGS[name]


_IMAGE = _flag(flags.DEFINE_string, 'image', 'The image to upscale (PNG, JPEG, ...).')
_IMAGES = _flag(flags.DEFINE_string, 'images', 'An .npz of images uint8 [N, H, W, C] (key '
                '"images").')
_ALPHA = _flag(flags.DEFINE_float, 'alpha', 'ESRGAN runs: network interpolation alpha * PSNR + '
               '(1 - alpha) * GAN with the run\'s sr.init_from; 1 = RRDB-PSNR.')
_SELF_ENSEMBLE = _flag(flags.DEFINE_boolean, 'self_ensemble', 'Average the model over the 8 '
                       'rotations and reflections of the input (EDSR\'s self-ensemble; 8x the '
                       'time); default: the run\'s sr.self_ensemble.')
_TILE = _flag(flags.DEFINE_integer, 'tile', 'Upscale in overlapping tiles of this input side '
              '(default: automatic for inputs over 256x256 pixels).')
# The verb's flags -> their help in `genjax upscale --help` (None: the flag's own).
FLAGS = {
    'workdir': 'A finished super-resolution run (configs/rrdb_psnr_*.py, esrgan_*.py, '
               'sr_diffusion_*.py).',
    'image': 'The image to upscale (PNG, JPEG, ...; any size, grey, RGB, with alpha).',
    'images': 'Instead of --image: an .npz of images uint8 [N, H, W, C] (key "images", the '
              'sample contract).',
    'out': 'The image (with --image) or .npz (with --images; other keys copied) to write, '
           '4x the input\'s size.',
    'alpha': None, 'self_ensemble': None, 'tile': None,
}

AUTO_TILE_PIXELS = 256 * 256  # Inputs larger than this go through tiles.
AUTO_TILE = 128
OVERLAP = 16  # Input pixels of context on each side of a tile.


class UpscaleError(ValueError):
  """An input that cannot be upscaled (not an image, too small, wrong .npz)."""


def read_image(path: str) -> np.ndarray:
  """Reads an image file as [H, W, C] floats in [-1, 1], keeping its channels (1-4).

  Raises:
    FileNotFoundError, UpscaleError.
  """
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top

  if not os.path.isfile(path):
    raise FileNotFoundError(f'--image {path} does not exist.')
  try:
    with Image.open(path) as im:
      im.load()
      if im.mode in ('I;16', 'I;16B', 'I;16L', 'I', 'F'):
        arr = np.asarray(im, np.float64)
        arr = arr / max(float(arr.max()), 1.0) * 255.0
      else:
        keep = {'1': 'L', 'P': 'RGBA' if 'transparency' in im.info else 'RGB', 'CMYK': 'RGB',
                'YCbCr': 'RGB', 'PA': 'RGBA'}.get(im.mode, im.mode)
        arr = np.asarray(im.convert(keep), np.float64)
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise UpscaleError(f'{path} is not an image file PIL can read ({" ".join(str(e).split())}); '
                       'give a PNG, JPEG, BMP, ... image.') from e
  if arr.ndim == 2:
    arr = arr[..., None]
  return check_image(arr.astype(np.float32) / 127.5 - 1.0, path)


def check_image(image: np.ndarray, what: str) -> np.ndarray:
  """Refuses images [H, W, C] with a side below 2 pixels or more than 4 channels."""
  h, w, c = image.shape
  if min(h, w) < 2:
    raise UpscaleError(f'{what} is {w}x{h} pixels: upscaling needs at least 2x2 pixels.')
  if not 1 <= c <= 4:
    raise UpscaleError(f'{what} has {c} channels; 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 '
                       '(RGBA) are accepted.')
  return image


def write_image(path: str, image: np.ndarray) -> None:
  """Writes [H, W, C] in [-1, 1] (C 1-4) as an 8-bit image (PNG unless the name says else)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  u8 = np.clip(np.round((image + 1.0) * 127.5), 0, 255).astype(np.uint8)
  mode = {1: 'L', 2: 'LA', 3: 'RGB', 4: 'RGBA'}[u8.shape[-1]]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(u8[..., 0] if mode == 'L' else u8, mode=mode).save(path)


def adapt_channels(run_fn: Callable[[np.ndarray], np.ndarray], model_channels: int,
                   image: np.ndarray, bicubic: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
  """`run_fn` ([h, w, model_channels] -> [s h, s w, model_channels]) on an image of any channels.

  A 1-channel model runs on every channel; a 3-channel model on RGB (grey repeated, the
  output's mean taken back), alpha channels upscaled with `bicubic`.
  """
  c = image.shape[-1]
  if model_channels == 1:
    return np.concatenate([run_fn(image[..., i:i + 1]) for i in range(c)], axis=-1)
  colour, alpha = (image[..., :3], image[..., 3:]) if c >= 3 else (image[..., :1], image[..., 1:])
  if colour.shape[-1] == 1:
    out = run_fn(np.repeat(colour, 3, -1)).mean(-1, keepdims=True)
  else:
    out = run_fn(colour)
  if alpha.shape[-1]:
    out = np.concatenate([out, np.clip(bicubic(alpha), -1.0, 1.0)], axis=-1)
  return out


def load_upscaler(workdir: str, alpha: float | None, self_ensemble: bool | None = None):
  """(spec, fn(lr [B, h, w, C], keys [B]) -> SR) of the run in `workdir` (interpolated by alpha;
  self-ensembled as the run's config says, or as `self_ensemble` when not None)."""
  import dataclasses  # pylint: disable=g-import-not-at-top

  from genjax import config as config_lib  # pylint: disable=g-import-not-at-top
  from genjax.core import xla_cpu  # pylint: disable=g-import-not-at-top
  from genjax.methods import sr  # pylint: disable=g-import-not-at-top
  from genjax.methods.sr import evaluate  # pylint: disable=g-import-not-at-top
  from genjax.methods.diffusion import SampleSpec  # pylint: disable=g-import-not-at-top
  from genjax.train import trained as trained_lib  # pylint: disable=g-import-not-at-top

  config = trained_lib.workdir_config(workdir)
  if config.method != 'sr':
    raise config_lib.ConfigError(f'--workdir {workdir} is a {config.method!r} run; upscale needs '
                                 'a super-resolution run (configs/rrdb_psnr_*.py, esrgan_*, '
                                 'sr_diffusion_*).')
  xla_cpu.use_convolution_library(config.train.get('xla_cpu_convolutions', 'ynnpack'))
  trained = trained_lib.load_trained(workdir, config)
  spec = sr.decode(config, trained.run.example['image'].shape[1:])
  if self_ensemble is not None:
    spec = dataclasses.replace(spec, self_ensemble=self_ensemble)
  params = trained.state.eval_params
  if alpha is not None:
    if spec.arch != 'esrgan':
      raise config_lib.ConfigError(f'--alpha interpolates an ESRGAN run with its RRDB-PSNR run; '
                                   f'{workdir} is a {spec.arch!r} run.')
    params = {'generator': sr.interpolate(sr.load_psnr_generator(spec), params['generator'],
                                          alpha)}
  sample_spec = config_lib.decode(SampleSpec, config, 'sample')
  fn = evaluate.make_upscaler(spec, params, sample_spec.samplers[sample_spec.sampler],
                              sample_spec.num_steps)
  return spec, fn


def upscale_image(spec, fn, image: np.ndarray, tile: int | None,
                  log: Callable[[str], None] = print) -> np.ndarray:
  """One image [h, w, C] in [-1, 1] -> [s h, s w, C], tiled when asked or when large."""
  import jax  # pylint: disable=g-import-not-at-top

  from genjax.data import resize  # pylint: disable=g-import-not-at-top
  from genjax.methods.sr import upscale_tiled  # pylint: disable=g-import-not-at-top

  h, w, _ = image.shape
  if tile is None and h * w > AUTO_TILE_PIXELS:
    tile = AUTO_TILE
    log(f'The input is {w}x{h} pixels, more than {AUTO_TILE_PIXELS} in one pass allows: '
        f'upscaling in overlapping {tile}x{tile} tiles ({OVERLAP} pixels of context; '
        '--tile=T sets the side).')
  if tile is not None and tile < 2:
    raise UpscaleError(f'--tile must be >= 2 input pixels; got {tile}.')
  key = jax.random.key(0)[None]
  one = lambda x: np.asarray(fn(x, key))
  if tile is None:
    run = lambda x: one(x[None])[0]
  else:
    run = lambda x: upscale_tiled(one, x, spec.scale, tile, OVERLAP)
  bicubic = functools.partial(resize.upsample_bicubic, scale=spec.scale)
  return adapt_channels(run, spec.channels, image, bicubic)


def upscale_npz(spec, fn, path: str, out: str, tile: int | None,
                log: Callable[[str], None] = print) -> np.ndarray:
  """Upscales the 'images' uint8 [N, H, W, C] of `path` into `out` (other keys copied)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'--images {path} does not exist.')
  try:
    with np.load(path, allow_pickle=False) as z:
      payload = {k: z[k] for k in z.files}
  except (ValueError, OSError, EOFError) as e:
    raise UpscaleError(f'{path} is not an .npz file ({" ".join(str(e).split())}).') from e
  images = payload.get('images')
  if images is None or images.ndim != 4 or images.dtype != np.uint8:
    raise UpscaleError(f'{path} must hold "images" uint8 [N, H, W, C] (the sample contract); '
                       f'found keys {sorted(payload)}.')
  ups = [upscale_image(spec, fn, check_image(im.astype(np.float32) / 127.5 - 1.0,
                                             f'{path} image {i}'), tile, log)
         for i, im in enumerate(images)]
  payload['images'] = np.clip(np.round((np.stack(ups) + 1.0) * 127.5), 0, 255).astype(np.uint8)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  np.savez(out, **payload)
  return payload['images']


def run() -> None:
  """The verb: reads the flags, upscales, writes --out."""
  from absl import app  # pylint: disable=g-import-not-at-top

  from genjax import config as config_lib  # pylint: disable=g-import-not-at-top
  from genjax.tools import commands  # pylint: disable=g-import-not-at-top

  workdir, out = flags.FLAGS.workdir, flags.FLAGS.out
  try:
    if (_IMAGE.value is None) == (_IMAGES.value is None):
      raise app.UsageError('upscale needs exactly one of --image=FILE or --images=FILE.npz.')
    image = read_image(_IMAGE.value) if _IMAGE.value else None  # Refused before any loading.
    spec, fn = load_upscaler(workdir, _ALPHA.value, _SELF_ENSEMBLE.value)
    if image is not None:
      result = upscale_image(spec, fn, image, _TILE.value)
      write_image(out, result)
      print(f'Wrote {out} ({result.shape[1]}x{result.shape[0]}, {result.shape[2]} channels) '
            f'from {_IMAGE.value} ({image.shape[1]}x{image.shape[0]}), x{spec.scale} '
            f'{spec.arch}' + ('' if _ALPHA.value is None else f' alpha={_ALPHA.value}') + '.')
    else:
      images = upscale_npz(spec, fn, _IMAGES.value, out, _TILE.value)
      print(f'Wrote {len(images)} images {images.shape} to {out}.')
  except (UpscaleError, FileNotFoundError, ValueError, config_lib.ConfigError,
          app.UsageError) as e:
    commands.fail(e)
