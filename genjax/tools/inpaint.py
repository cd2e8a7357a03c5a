"""`genjax inpaint`: fill the holes of images with a trained run.

  genjax inpaint --workdir=W --image=x.png --mask=m.png --out=o.png
  genjax inpaint --workdir=W --image=x.png --mask=random:0.3 --out=o.png
  genjax inpaint --workdir=W --images=x.npz --masks=m.npz --out=o.npz

W is an inpainting run (configs/pconv_mnist.py, configs/inpaint_ae_mnist.py: its network
fills) or an unconditional diffusion run (configs/ddpm_mnist.py: RePaint fills, with
--jump_length and --jump_n_sample and the run's sample.num_steps). Masks: 1 = known pixel,
0 = hole (a PNG mask may be 0/255: white = known); `random:R` draws a free-form mask with
hole ratio R from --seed. The .npz form reads uint8 images [N, H, W, C] and masks [N, H, W]
of 0/1 and writes the sample contract: images uint8 [N, H, W, C], plus masks, seed, step.
Known pixels come back exactly; an all-hole mask is unconditional generation (RePaint).
"""
from __future__ import annotations

import os

import numpy as np
from absl import app, flags

from genjax.data import masks as masks_lib
from genjax.stylize.images import ImageError
from genjax.tools import commands


def _string_flag(name: str, about: str):
  """Defines --name once (a flag of the same name defined elsewhere is shared)."""
  if name not in flags.FLAGS:
    flags.DEFINE_string(name, None, about)
  return flags.FLAGS[name]


IMAGE = _string_flag('image', 'The image to fill (PNG, ...), the run\'s size.')
MASK = _string_flag('mask', 'Its mask: a PNG of 0/1 or 0/255 (white = known), or random:R '
                    '(a free-form mask with hole ratio R).')
IMAGES = _string_flag('images', 'An .npz of uint8 images [N, H, W, C] (key images) to fill.')
MASKS = _string_flag('masks', 'An .npz of masks [N, H, W] of 0/1 (key masks), 1 = known.')
JUMP_LENGTH = flags.DEFINE_integer('jump_length', 5, 'RePaint (diffusion runs): steps per '
                                   'resampling jump.')
JUMP_N_SAMPLE = flags.DEFINE_integer('jump_n_sample', 5, 'RePaint (diffusion runs): passes over '
                                     'each jump (1: no resampling).')
FLAGS = ('workdir', 'image', 'mask', 'images', 'masks', 'out', 'seed', 'jump_length',
         'jump_n_sample') + commands.JAX_FLAGS

# The user's mistakes, said in one line by the command line.
USERS_ERRORS = (FileNotFoundError, ImageError, masks_lib.MaskError, app.UsageError)


def read_image(path: str, shape: tuple[int, int, int]) -> np.ndarray:
  """A PNG (or any PIL image) as uint8 [H, W, C] for a run of image shape (H, W, C).

  Raises:
    FileNotFoundError, ImageError: no such file, not an image, or not the run's size.
  """
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top

  if not os.path.isfile(path):
    raise FileNotFoundError(f'image file {path} does not exist.')
  try:
    with Image.open(path) as im:
      arr = np.asarray(im.convert('L' if shape[-1] == 1 else 'RGB'))
  except (UnidentifiedImageError, OSError) as e:
    raise ImageError(f'{path} is not an image file PIL can read.') from e
  arr = arr.reshape(arr.shape[:2] + (shape[-1],))
  if arr.shape[:2] != tuple(shape[:2]):
    raise ImageError(f'{path} is {arr.shape[0]}x{arr.shape[1]} (HxW); this run fills '
                     f'{shape[0]}x{shape[1]} images.')
  return arr


def read_mask(spec: str, shape: tuple[int, int, int], seed: int) -> np.ndarray:
  """--mask as [H, W] float 0/1: `random:R` drawn from `seed`, or a 0/1 or 0/255 PNG.

  Raises:
    MaskError: a ratio outside [0, 1], a mask of another size, or other values.
    FileNotFoundError: no such file.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  ratio = masks_lib.parse_mask_spec(spec)
  if ratio is not None:
    return masks_lib.free_form(np.random.default_rng(seed), shape[0], shape[1], ratio)
  if not os.path.isfile(spec):
    raise FileNotFoundError(f'mask file {spec} does not exist (or give --mask=random:R).')
  with Image.open(spec) as im:
    arr = np.asarray(im.convert('L') if im.mode not in ('1', 'L', 'I', 'I;16') else im)
  if arr.size and set(np.unique(arr).tolist()) <= {0, 255} and arr.max() == 255:
    arr = arr // 255  # An 8-bit black/white picture: white = known.
  return masks_lib.check_masks(arr, shape, f'--mask {spec}')


def read_batch(images_path: str, masks_path: str, shape: tuple[int, int, int]
               ) -> tuple[np.ndarray, np.ndarray]:
  """--images and --masks .npz files as uint8 [N, H, W, C] and float 0/1 [N, H, W]."""
  arrays = []
  for path, key in ((images_path, 'images'), (masks_path, 'masks')):
    if not os.path.isfile(path):
      raise FileNotFoundError(f'{path} does not exist.')
    with np.load(path) as f:
      if key not in f:
        raise ImageError(f'{path} has no array {key!r} (it has {sorted(f.keys())}).')
      arrays.append(f[key])
  images, masks = arrays
  if images.ndim == 3 and shape[-1] == 1:
    images = images[..., None]
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != tuple(shape):
    raise ImageError(f'{images_path}: images must be uint8 [N, {shape[0]}, {shape[1]}, '
                     f'{shape[2]}] for this run; got {images.dtype} {list(images.shape)}.')
  return images, masks_lib.check_masks(masks, images.shape, f'--masks {masks_path}')


def fill_uint8(trained, images: np.ndarray, masks: np.ndarray, seed: int,
               jump_length: int = 5, jump_n_sample: int = 5) -> np.ndarray:
  """Fills uint8 images [N, H, W, C] where masks [N, H, W] are 0, with the run's method.

  An inpainting run fills with its network, a diffusion run with RePaint (image i's noise
  from fold_in(key(seed), i)). Known pixels are the input's bytes exactly.
  """
  import jax  # pylint: disable=g-import-not-at-top

  from genjax import config as config_lib  # pylint: disable=g-import-not-at-top
  from genjax.core.batching import batched_apply  # pylint: disable=g-import-not-at-top
  from genjax.methods import diffusion, inpaint  # pylint: disable=g-import-not-at-top
  from genjax.viz.grid import to_uint8  # pylint: disable=g-import-not-at-top

  config, params = trained.config, trained.state.eval_params
  shape = tuple(images.shape[1:])
  x = images.astype(np.float32) / 127.5 - 1.0
  inputs = {'x': x, 'm': masks.astype(np.float32)}
  if config.method == 'inpaint':
    spec = config_lib.decode(inpaint.InpaintSpec, config, 'inpaint', image_shape=shape)
    filled = batched_apply(lambda b: inpaint.fill(spec, params, b['x'], b['m']), inputs,
                           min(len(x), config.data.eval_batch_size))
  else:
    spec, sample_spec = diffusion.decode_specs(config, shape)
    run = inpaint.make_repaint_fn(spec, sample_spec, jump_length=jump_length,
                                  jump_n_sample=jump_n_sample)
    key = jax.random.key(seed)
    inputs['k'] = jax.vmap(lambda i: jax.random.fold_in(key, i))(np.arange(len(x)))
    filled = batched_apply(lambda b: run(params, b['x'], b['m'], b['k']), inputs,
                           min(len(x), config.eval.sample_batch_size))
  return np.where(masks[..., None] > 0, images, to_uint8(filled))


def run() -> None:
  """The verb: reads the flags and files, fills, writes --out."""
  from genjax.train import trained as trained_lib  # pylint: disable=g-import-not-at-top

  f = flags.FLAGS
  single, batch = IMAGE.value is not None, IMAGES.value is not None
  if single == batch or (single and MASK.value is None) or (batch and MASKS.value is None):
    raise app.UsageError('give --image and --mask (one picture), or --images and --masks '
                         '(.npz files), not both.')
  config = trained_lib.workdir_config(f.workdir)
  if config.method not in ('inpaint', 'diffusion'):
    raise app.UsageError(f'--workdir {f.workdir} is a {config.method!r} run; inpaint needs an '
                         'inpainting run or an unconditional diffusion run (RePaint).')
  if JUMP_LENGTH.value < 1 or JUMP_N_SAMPLE.value < 1:
    raise app.UsageError('--jump_length and --jump_n_sample must be >= 1.')
  seed = config.seed if f.seed is None else f.seed
  commands._start_jax(config)  # pylint: disable=protected-access
  trained = trained_lib.load_trained(f.workdir, config)
  shape = tuple(trained.run.example['image'].shape[1:])
  if single:
    images = read_image(IMAGE.value, shape)[None]
    masks = read_mask(MASK.value, shape, seed)[None]
  else:
    images, masks = read_batch(IMAGES.value, MASKS.value, shape)
  out = fill_uint8(trained, images, masks, seed, JUMP_LENGTH.value, JUMP_N_SAMPLE.value)
  os.makedirs(os.path.dirname(os.path.abspath(f.out)), exist_ok=True)
  if single:
    from PIL import Image  # pylint: disable=g-import-not-at-top

    Image.fromarray(out[0, ..., 0] if shape[-1] == 1 else out[0]).save(f.out)
  else:
    np.savez(f.out, images=out, masks=masks.astype(np.uint8), seed=np.int64(seed),
             step=np.int64(trained.step))
  how = 'RePaint' if config.method == 'diffusion' else config.inpaint.arch
  print(f'Wrote {f.out}: {len(out)} image(s) {list(out.shape[1:])} filled by {how} '
        f'(step {trained.step}), hole ratio {float(masks_lib.hole_ratio(masks).mean()):.3f}.')


def run_verb() -> None:
  """`run`, with the user's mistakes as one line (exit 2)."""
  try:
    run()
  except USERS_ERRORS as e:
    commands.fail(e)
