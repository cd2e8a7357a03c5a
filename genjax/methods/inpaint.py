"""Inpainting: fill the holes of an image given its known pixels (masks: 1 = known).

Two trained networks on the one loop (`config.inpaint.arch`):
  'ae'     the seed's masked conv autoencoder (genjax/models/pconv.py MaskedAutoencoder);
  'pconv'  the partial-convolution U-Net of Liu et al. (2018),
both trained with the paper's losses (eq. 1-7): valid and hole L1, perceptual and style
losses on a feature network (the shipped mnist5k classifier's feature maps for 1-channel
digits, a random-weight VGG19's pool1-3 for photos), and total variation on the hole's
1-pixel dilation. Training masks come from a bank of free-form (or the seed's rectangle)
masks drawn once from the seed; each step picks one per image.

Two fills that need no inpainting training live here too, so every method is scored by
the same `score_bins`: `biharmonic_fill` (scikit-image) and `make_repaint_fn` (RePaint,
Lugmayr et al. 2022, on a trained unconditional diffusion run). Evaluation fills the test
split with the fixed masks of every hole-ratio bin (genjax/data/masks.py).
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genjax import config as config_lib
from genjax.core import precision
from genjax.core.batching import batched_apply
from genjax.core.state import TrainState
from genjax.data import masks as masks_lib
from genjax.data import resize
from genjax.methods import inpaint_eval
from genjax.methods.api import EvalContext, Method, StateSpec
from genjax.models import vgg
from genjax.models.classifier import CNNClassifier
from genjax.models.pconv import OUTPUTS, MaskedAutoencoder, PConvUNet
from genjax.metrics import weights_file
from genjax.metrics.extractors import MNIST_CLASSIFIER, to_digit_frame
from genjax.stylize.losses import gram_matrix
from genjax.viz.grid import save_grid

ARCHS = ('ae', 'pconv')
FEATURE_NETS = ('classifier', 'vgg')
MASK_KINDS = ('free_form', 'rectangles')
# The bins pictured by write_images and the study: small, middle, large holes.
PICTURED_BINS = ('0.1-0.2', '0.3-0.4', '0.5-0.6')


@dataclasses.dataclass(frozen=True)
class InpaintSpec:
  """`config.inpaint`: the network, its losses and its masks.

  Attributes:
    arch: 'ae' (the seed's masked autoencoder) | 'pconv' (partial-conv U-Net).
    channels: encoder widths, one per halving of the resolution.
    kernel_sizes: pconv's encoder kernels, one per level (the paper's 7, 5, 5, 3...).
    output: pconv's last layer: 'linear' (the paper's) | 'tanh' (the seed autoencoder's) |
      'clip' (linear, clipped to [-1, 1] in training as in filling: overshooting a bound of
      the data range is free, so black background can be hit exactly).
    feature_net: network of the perceptual and style losses: 'classifier' (the shipped
      mnist5k classifier, 1-channel 28x28 digits) | 'vgg' (VGG19 from `vgg_weights`, else
      random weights, seed 0; RGB) | None (no perceptual or style loss).
    vgg_weights: feature_net 'vgg': a `genjax convert-vgg` .npz of VGG19, or None.
    valid_weight, hole_weight, perceptual_weight, style_weight, tv_weight: the loss's
      weights (Liu et al. 2018, eq. 7: 1, 6, 0.05, 120, 0.1).
    train_masks: 'free_form' | 'rectangles' (the seed's `create_random_mask`).
    crop_size: train on a random crop of this side of each image (photo tiles), or None
      (whole images). Evaluation fills whole images: the networks are fully convolutional.
    mask_bank_size: training masks drawn once (from config.seed); each step picks B of them.
    min_hole_ratio, max_hole_ratio: the training masks' hole ratios, uniform in between.
    eval_mask_seed: seed of the fixed evaluation masks (the same for every method).
    image_shape: (H, W, C) of the data (not a config field); None while only the config is
      known (decoding without data): the checks against the data wait, and the network is
      built for 1-channel images.
    compute_dtype: `train.compute_dtype` (float32 | bfloat16) of the network; not a field of
      this group. The masks (0 / 1) are exact in bf16; the feature network of the perceptual
      and style losses stays float32.
  """
  arch: str = 'pconv'
  channels: tuple[int, ...] = (32, 64, 128)
  kernel_sizes: tuple[int, ...] = (5, 3, 3)
  output: str = 'linear'
  feature_net: str | None = 'classifier'
  vgg_weights: str | None = None
  valid_weight: float = 1.0
  hole_weight: float = 6.0
  perceptual_weight: float = 0.05
  style_weight: float = 120.0
  tv_weight: float = 0.1
  train_masks: str = 'free_form'
  crop_size: int | None = None
  mask_bank_size: int = 2000
  min_hole_ratio: float = 0.01
  max_hole_ratio: float = 0.6
  eval_mask_seed: int = 2024
  image_shape: tuple[int, int, int] | None = dataclasses.field(default=None,
                                                               metadata={'config': False})
  compute_dtype: str = dataclasses.field(default='float32', metadata={'config': False})

  def __post_init__(self):
    config_lib.check_choice('inpaint.arch', self.arch, ARCHS)
    config_lib.check_choice('inpaint.output', self.output, OUTPUTS)
    config_lib.check_choice('inpaint.feature_net', self.feature_net, (None,) + FEATURE_NETS)
    config_lib.check_choice('inpaint.train_masks', self.train_masks, MASK_KINDS)
    for name in ('valid_weight', 'hole_weight', 'perceptual_weight', 'style_weight', 'tv_weight'):
      config_lib.check_range(f'inpaint.{name}', getattr(self, name), low=0.0)
    config_lib.check_range('inpaint.mask_bank_size', self.mask_bank_size, low=1)
    config_lib.check_range('inpaint.min_hole_ratio', self.min_hole_ratio, low=0.0, high=1.0)
    config_lib.check_range('inpaint.max_hole_ratio', self.max_hole_ratio,
                           low=self.min_hole_ratio, high=1.0)
    if self.arch == 'pconv' and len(self.kernel_sizes) != len(self.channels):
      raise config_lib.ConfigError(
          f'config.inpaint.kernel_sizes={self.kernel_sizes} needs one kernel per level of '
          f'config.inpaint.channels={self.channels}.')
    if self.image_shape is None:
      return
    h, w, c = self.image_shape
    if self.crop_size is not None and not 1 <= self.crop_size <= min(h, w):
      raise config_lib.ConfigError(f'config.inpaint.crop_size={self.crop_size} must be between 1 '
                                   f'and the image side {min(h, w)} (images are {h}x{w}).')
    if self.feature_net == 'classifier' and c != 1:
      raise config_lib.ConfigError(f"config.inpaint.feature_net='classifier' reads 1-channel "
                                   f"digits; these images have {c} channels: use 'vgg'.")
    if self.feature_net == 'vgg' and c != 3:
      raise config_lib.ConfigError(f"config.inpaint.feature_net='vgg' reads RGB; these images "
                                   f"have {c} channels: use 'classifier' or None.")

  @functools.cached_property
  def network(self):
    """The flax module: (images [B, H, W, C], masks [B, H, W, 1]) -> prediction [B, H, W, C],
    computing in `compute_dtype`."""
    c = 1 if self.image_shape is None else self.image_shape[-1]
    if self.arch == 'ae':
      module = MaskedAutoencoder(channels=tuple(self.channels), out_channels=c)
    else:
      module = PConvUNet(channels=tuple(self.channels), kernel_sizes=tuple(self.kernel_sizes),
                         out_channels=c, output=self.output)
    return precision.with_policy(module, self.compute_dtype)


# -- Features of the perceptual and style losses. --

FeatureFn = Callable[[jax.Array], list[jax.Array]]  # images [B, H, W, C] in [-1, 1] -> maps


def make_feature_fn(name: str | None, vgg_weights: str | None = None) -> FeatureFn | None:
  """images [B, H, W, C] in [-1, 1] -> feature maps [B, h_p, w_p, C_p], p = 1..3, frozen.

  'classifier': the post-ReLU maps of the shipped classifier's three conv blocks (28, 14,
  7 pixels); 'vgg': block1_pool..block3_pool of VGG19 (Liu et al. use trained VGG16
  pool1-3): from `vgg_weights` (a `genjax convert-vgg` .npz) or, when None, random weights
  (He init, seed 0; the style-transfer default offline).
  """
  if name is None:
    return None
  if name == 'classifier':
    params, info = weights_file.load(MNIST_CLASSIFIER)
    model = CNNClassifier(**info.get('model', {}))
    return lambda x: model.apply({'params': params}, to_digit_frame(x),
                                 method=CNNClassifier.feature_maps)
  if vgg_weights:
    variables, _, mode = vgg.load_weights(vgg_weights, 'vgg19')
  else:
    variables, mode = vgg.random_params(0), 'torch'
  layers = ('block1_pool', 'block2_pool', 'block3_pool')

  def vgg_maps(x):
    out = vgg.network('vgg19').apply(variables, vgg.preprocess((x + 1) / 2, mode), layers)
    return [out[k] for k in layers]
  return vgg_maps


# -- Losses (Liu et al. 2018, section 3.3), images in [-1, 1], masks [B, H, W, 1]. --


def composite(images: jax.Array, masks: jax.Array, pred: jax.Array) -> jax.Array:
  """I_comp = M * I_gt + (1 - M) * I_out: the known pixels pasted back. [B, H, W, C]."""
  return masks * images + (1 - masks) * pred


def tv_loss(comp: jax.Array, masks: jax.Array) -> jax.Array:
  """Eq. 6: L1 of neighbour differences of I_comp inside the hole's 1-pixel dilation P,
  both pixels of a pair in P, divided by the image's element count."""
  hole = 1 - masks
  region = jax.lax.reduce_window(hole, 0.0, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1), 'SAME')
  n = comp[0].size
  dh = region[:, 1:] * region[:, :-1] * jnp.abs(comp[:, 1:] - comp[:, :-1])
  dw = region[:, :, 1:] * region[:, :, :-1] * jnp.abs(comp[:, :, 1:] - comp[:, :, :-1])
  return (jnp.sum(dh, (1, 2, 3)) + jnp.sum(dw, (1, 2, 3))).mean() / n


def loss_terms(spec: InpaintSpec, feature_fn: FeatureFn | None, images: jax.Array,
               masks: jax.Array, pred: jax.Array) -> dict[str, jax.Array]:
  """The paper's terms and their weighted sum 'loss' (eq. 7).

  Args:
    images: I_gt [B, H, W, C]; masks: M [B, H, W, 1]; pred: I_out [B, H, W, C].

  Returns:
    {'valid', 'hole', 'perceptual', 'style', 'tv', 'loss'} scalars; valid and hole are
    ||M (I_out - I_gt)||_1 / N_Igt and the same over the hole (eq. 1).
  """
  comp = composite(images, masks, pred)
  terms = {'valid': jnp.mean(jnp.abs(masks * (pred - images))),
           'hole': jnp.mean(jnp.abs((1 - masks) * (pred - images))),
           'tv': tv_loss(comp, masks)}
  zero = jnp.zeros((), pred.dtype)
  terms['perceptual'], terms['style'] = zero, zero
  if feature_fn is not None and (spec.perceptual_weight or spec.style_weight):
    b = images.shape[0]
    feats = feature_fn(jnp.concatenate([images, pred, comp]))  # One pass for the three.
    for f in feats:
      f_gt, f_out, f_comp = jax.lax.stop_gradient(f[:b]), f[b:2 * b], f[2 * b:]
      terms['perceptual'] += jnp.mean(jnp.abs(f_out - f_gt)) + jnp.mean(jnp.abs(f_comp - f_gt))
      # Eq. 4-5: K_p = 1 / (C_p H_p W_p); the L1 is averaged over the C_p^2 entries.
      k = f.shape[-1]
      g_gt = gram_matrix(f_gt) / k
      terms['style'] += (jnp.mean(jnp.abs(gram_matrix(f_out) / k - g_gt)) +
                         jnp.mean(jnp.abs(gram_matrix(f_comp) / k - g_gt)))
  terms['loss'] = (spec.valid_weight * terms['valid'] + spec.hole_weight * terms['hole'] +
                   spec.perceptual_weight * terms['perceptual'] +
                   spec.style_weight * terms['style'] + spec.tv_weight * terms['tv'])
  return terms


# -- Training. --


@functools.lru_cache(maxsize=4)  # Drawn when the step is first traced, not by eval or the CLI.
def training_masks(spec: InpaintSpec, seed: int) -> np.ndarray:
  """The bank of training masks [mask_bank_size, H, W] (uint8, 1 = known) from `seed`; H = W =
  crop_size when set."""
  h, w, _ = spec.image_shape
  if spec.crop_size:
    h = w = spec.crop_size
  # Entropy (seed, 1, 1, i): four numbers, never one of eval_masks' three (seed, bin, i).
  bank = masks_lib.masks_in_range((seed, 1, 1), spec.mask_bank_size, h, w, spec.min_hole_ratio,
                                  spec.max_hole_ratio, kind=spec.train_masks)
  return bank.astype(np.uint8)


def init(spec: InpaintSpec, state_spec: StateSpec, rng: jax.Array, batch: dict) -> TrainState:
  """A fresh state; `batch['image']` [B, H, W, C] gives the input shape."""
  images = batch['image']
  params = spec.network.init(rng, images, jnp.ones(images.shape[:3] + (1,), images.dtype))
  return state_spec.create(params['params'])


def predict(spec: InpaintSpec, params, images: jax.Array, masks: jax.Array) -> jax.Array:
  """The network's raw output I_out [B, H, W, C] for images [B, H, W, C], masks [B, H, W, 1]."""
  return spec.network.apply({'params': params}, images * masks, masks)


def train_step(spec: InpaintSpec, feature_fn: FeatureFn | None, seed: int,
               state: TrainState, batch: dict, rng: jax.Array):
  """One update on batch {'image' [B, H, W, C]} (a random crop of each when `crop_size`), each
  image with a mask of the bank of `seed`."""
  bank = training_masks(spec, seed)
  mask_rng, flip_rng = jax.random.split(rng)
  images = batch['image']
  if spec.crop_size:  # Apart from the mask draws: runs without crops draw as before.
    images = resize.random_crops(images, spec.crop_size, jax.random.fold_in(rng, 2))
  b = images.shape[0]
  masks = jnp.asarray(bank)[jax.random.randint(mask_rng, (b,), 0, len(bank))]
  # Flips and transposes multiply the bank's variety by 8 for free (square images).
  flips = jax.random.bernoulli(flip_rng, 0.5, (3,))
  masks = jnp.where(flips[0], masks[:, ::-1], masks)
  masks = jnp.where(flips[1], masks[:, :, ::-1], masks)
  if masks.shape[1] == masks.shape[2]:
    masks = jnp.where(flips[2], masks.transpose(0, 2, 1), masks)
  masks = masks[..., None].astype(images.dtype)

  def loss(params):
    terms = loss_terms(spec, feature_fn, images, masks, predict(spec, params, images, masks))
    return terms['loss'], terms

  (_, terms), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
  return state.apply_gradients(grads), {**terms, 'grad_norm': optax.tree.norm(grads)}


# -- Filling. --


def fill(spec: InpaintSpec, params, images: jax.Array, masks: jax.Array) -> jax.Array:
  """Filled images [B, H, W, C] in [-1, 1]: the network's output in the holes, the input's
  pixels (exactly) where masks [B, H, W] are 1 (checked: `masks_lib.check_masks`)."""
  if not isinstance(masks, jax.core.Tracer):
    masks_lib.check_masks(np.asarray(masks), images.shape)
  return _fill(spec, params, images, masks)


@functools.partial(jax.jit, static_argnums=0)
def _fill(spec: InpaintSpec, params, images: jax.Array, masks: jax.Array) -> jax.Array:
  m = masks[..., None].astype(images.dtype)
  pred = jnp.clip(predict(spec, params, images, m), -1.0, 1.0)
  return jnp.where(m > 0, images, pred)


def biharmonic_fill(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
  """The classical baseline: skimage.restoration.inpaint_biharmonic, image by image.

  Args:
    images: [N, H, W, C] in [-1, 1]; masks: [N, H, W], 1 = known.

  Returns:
    [N, H, W, C] in [-1, 1]; known pixels are the input's exactly; an all-hole mask
    (nothing to extrapolate from) gives a mid-grey (0) image.
  """
  from skimage.restoration import inpaint_biharmonic  # pylint: disable=g-import-not-at-top

  masks = masks_lib.check_masks(masks, images.shape)
  out = np.array(images, np.float32, copy=True)
  for i, (image, mask) in enumerate(zip(images, masks)):
    if mask.all():
      continue
    if not mask.any():
      out[i] = 0.0
      continue
    filled = inpaint_biharmonic(image, mask == 0, channel_axis=-1)
    out[i] = np.where(mask[..., None] > 0, image, np.clip(filled, -1.0, 1.0))
  return out


def make_repaint_fn(diffusion_spec, sample_spec, *, jump_length: int = 5,
                    jump_n_sample: int = 5, num_steps: int | None = None):
  """RePaint with a trained unconditional diffusion model (genjax.methods.diffusion).

  Args:
    diffusion_spec, sample_spec: the run's decoded specs (`diffusion.decode_specs`).
    jump_length, jump_n_sample: RePaint's resampling knobs (`sample_repaint`).
    num_steps: levels of the run's sigma schedule (default: sample.num_steps).

  Returns:
    A jitted (params, images [n, H, W, C], masks [n, H, W], keys [n]) -> [n, H, W, C] in
    [-1, 1]; image i uses keys[i] alone (its noise does not depend on the batch).
  """
  from genjax.diffusion.samplers import sample_repaint  # pylint: disable=g-import-not-at-top
  from genjax.methods import diffusion  # pylint: disable=g-import-not-at-top

  steps = diffusion.sigmas(diffusion_spec, sample_spec, sample_spec.sigma_schedule,
                           num_steps or sample_spec.num_steps)

  @jax.jit
  def run(params, images, masks, keys):
    def one(image, mask, key):
      d = diffusion.denoiser(diffusion_spec, params, None)
      if diffusion_spec.conditional:  # The null class: the unconditional model.
        d = diffusion.denoiser(diffusion_spec, params, jnp.full((1,), diffusion_spec.num_classes))
      x = steps[0] * jax.random.normal(jax.random.fold_in(key, 0), (1, *image.shape))
      x = sample_repaint(d, x, steps, rng=jax.random.fold_in(key, 1), known=image[None],
                         mask=mask[None, ..., None], jump_length=jump_length,
                         jump_n_sample=jump_n_sample)
      return jnp.where(mask[..., None] > 0, image, jnp.clip(x[0], -1.0, 1.0))
    return jax.vmap(one)(images, masks.astype(images.dtype), keys)

  def checked(params, images, masks, keys):
    masks_lib.check_masks(np.asarray(masks), images.shape)
    return run(params, images, masks, keys)
  return checked


# -- Evaluation and pictures. --

# Every evaluation of a run scores the same masks: draw them once per process.
_eval_masks = functools.lru_cache(maxsize=4)(masks_lib.eval_masks)


def evaluate(spec: InpaintSpec, state: TrainState, ctx: EvalContext) -> dict:
  """Fills `eval.split` (at most `eval.num_examples`) with every bin's fixed masks and scores
  it (`inpaint_eval.score_bins`): L1 / PSNR / SSIM whole and hole-only, and for digits
  the FID against the real-data floor and the classifier's label accuracy."""
  c = ctx.config
  data = ctx.load_split(c.eval.split, c.eval.num_examples)
  h, w, _ = spec.image_shape
  bins = _eval_masks(spec.eval_mask_seed, len(data['image']), h, w)
  params = state.eval_params
  fill_fn = lambda x, m: batched_apply(lambda b: fill(spec, params, b['x'], b['m']),
                                       {'x': x, 'm': m}, c.data.eval_batch_size)
  reference = None
  if spec.image_shape[-1] == 1:  # A seeded random subset of the train digits, as sampling's floor.
    train = ctx.load_split(c.data.train_split, None)['image']
    n = min(len(train), len(data['image']))
    reference = train[np.random.default_rng(c.seed).choice(len(train), n, replace=False)]
  return inpaint_eval.score_bins(fill_fn, data, bins, reference=reference)


def write_images(spec: InpaintSpec, state: TrainState, ctx: EvalContext) -> list[str]:
  """For small, middle and large holes: rows of input (holes grey), mask, fill, truth."""
  c = ctx.config
  data = ctx.load_split(c.eval.split, 10)
  h, w, _ = spec.image_shape
  bins = {k: v[:10] for k, v in _eval_masks(spec.eval_mask_seed, len(data['image']), h, w).items()}
  paths = []
  for name in PICTURED_BINS:
    m = bins[name]
    filled = batched_apply(lambda b: fill(spec, state.eval_params, b['x'], b['m']),
                           {'x': data['image'], 'm': m}, c.data.eval_batch_size)  # Eval's shape.
    rows = inpaint_eval.picture_rows(data['image'], m, {'fill': filled})
    paths.append(save_grid(rows, os.path.join(ctx.images_dir, f'inpaint_{name}.png'),
                           ncol=len(m)))
  return paths


def make(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Method:
  """The inpaint method: `config.inpaint` decoded once, the functions bound to it."""
  spec = config_lib.decode(InpaintSpec, config, 'inpaint', image_shape=tuple(image_shape),
                           compute_dtype=config.train.compute_dtype)
  state_spec = StateSpec.from_config(config)
  feature_fn = make_feature_fn(spec.feature_net if (spec.perceptual_weight or spec.style_weight)
                               else None, spec.vgg_weights)
  if feature_fn is not None and spec.feature_net == 'vgg':  # Say which network: weights matter.
    print('inpaint: perceptual and style losses on VGG19 pool1-3 ' +
          (f'from {spec.vgg_weights}.' if spec.vgg_weights else
           'with random weights (seed 0; no inpaint.vgg_weights file given).'))
  bind = lambda fn: functools.partial(fn, spec)
  return Method(init=functools.partial(init, spec, state_spec),
                train_step=functools.partial(train_step, spec, feature_fn, config.seed),
                evaluate=bind(evaluate), write_images=bind(write_images))
