"""`config.sr`: the super-resolution family's spec, its networks and its perceptual features."""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import config as config_lib
from genjax.core import precision
from genjax.diffusion.spec import EDMFields
from genjax.models import vgg
from genjax.models.classifier import CNNClassifier
from genjax.models.rrdb import Discriminator, RRDBNet
from genjax.models.unet import UNet
from genjax.nn.conv import Conv
from genjax.nn.pool import max_pool

ARCHS = ('rrdb_psnr', 'esrgan', 'diffusion')
PERCEPTUAL = ('auto', 'classifier', 'vgg')
PIXEL_LOSSES = ('l1', 'l2')


@dataclasses.dataclass(frozen=True)
class SRSpec(EDMFields):
  """`config.sr`: x`scale` super-resolution of the data's images (LR made by MATLAB bicubic).

  Attributes:
    arch: rrdb_psnr (RRDB trained with L1) | esrgan (RRDB + relativistic average
      GAN + perceptual + L1, from an RRDB-PSNR run) | diffusion (SR3: the U-Net on
      concat(x_t, bicubic(LR)), EDM's loss and preconditioning).
    scale: the upscaling factor (a power of 2 for the RRDB).
    crop_size: HR training crop side (random crop of each batch image); None: whole images.
    random_flip: random horizontal flips of the HR crops (photos, not digits).
    random_rotate: also random vertical flips and transposes (with random_flip: all 8
      rotations and reflections, BasicSR's `augment`); needs square crops (crop_size).
    features, growth, num_blocks: the RRDB's nf, gc and block count (paper: 64, 32, 23;
      the seed: 16 blocks).
    bicubic_skip: the RRDB adds bicubic(LR) to its output (learns the residual).
    self_ensemble: evaluation and `genjax upscale`: EDSR's geometric self-ensemble (Lim et
      al. 2017, their '+'): the mean of the model over the 8 rotations and reflections of
      the input, each mapped back; 8x the inference cost, no training change.
    disc_widths: the discriminator's stage widths (esrgan).
    init_from: esrgan: the RRDB-PSNR run (workdir) whose generator starts the GAN and is
      the alpha = 1 end of network interpolation; rrdb_psnr: optional, a run whose
      generator this one fine-tunes (for example with pixel_loss 'l2' after 'l1').
    pixel_loss: rrdb_psnr's loss: 'l1' (ESRGAN's, the default) | 'l2' (the mean squared
      error, which PSNR measures).
    l1_weight, perceptual_weight, adversarial_weight: esrgan's generator loss weights
      (paper: 1e-2, 1, 5e-3).
    perceptual: auto (classifier for 1-channel digits, VGG19 otherwise) | classifier (the
      shipped mnist5k classifier's conv3, pre-activation) | vgg (VGG19 pre-activation of
      `vgg_layer`, from `vgg_weights` or random weights (seed 0) when None).
    vgg_layer: the VGG19 layer of the perceptual loss (paper: block5_conv4).
    vgg_weights: a `genjax convert-vgg` .npz, or None.
    unet_channels, unet_num_res_blocks, unet_attention: diffusion's U-Net.
    sigma_data, p_mean, p_std, sigma_min, sigma_max: diffusion's EDM settings
      (genjax.diffusion.spec.EDMFields).
    image_shape: (H, W, C) of the HR data (not a config field; None until the data is known).
    compute_dtype: `train.compute_dtype` (float32 | bfloat16) of the generator, the
      discriminator and the U-Net; not a field of this group. The perceptual features
      (`make_perceptual_fn`) stay float32.
  """
  arch: str = 'rrdb_psnr'
  scale: int = 4
  crop_size: int | None = None
  random_flip: bool = False
  random_rotate: bool = False
  features: int = 64
  growth: int = 32
  num_blocks: int = 16
  bicubic_skip: bool = True
  self_ensemble: bool = False
  disc_widths: tuple[int, ...] = (64, 128, 256, 512, 512)
  init_from: str | None = None
  pixel_loss: str = 'l1'
  l1_weight: float = 1e-2
  perceptual_weight: float = 1.0
  adversarial_weight: float = 5e-3
  perceptual: str = 'auto'
  vgg_layer: str = 'block5_conv4'
  vgg_weights: str | None = None
  unet_channels: tuple[int, ...] = (32, 64, 64)
  unet_num_res_blocks: int = 1
  unet_attention: tuple[int, ...] = ()
  # None while only the config is known (no data yet): the checks against the data wait.
  image_shape: tuple[int, int, int] | None = dataclasses.field(default=None,
                                                               metadata={'config': False})
  compute_dtype: str = dataclasses.field(default='float32', metadata={'config': False})

  def __post_init__(self):
    config_lib.check_choice('sr.arch', self.arch, ARCHS)
    self.check_diffusion_fields('sr')
    config_lib.check_choice('sr.scale', self.scale, (2, 4, 8))
    config_lib.check_choice('sr.perceptual', self.perceptual, PERCEPTUAL)
    config_lib.check_choice('sr.pixel_loss', self.pixel_loss, PIXEL_LOSSES)
    for key in ('features', 'growth', 'num_blocks'):
      config_lib.check_range(f'sr.{key}', getattr(self, key), low=1)
    for key in ('l1_weight', 'perceptual_weight', 'adversarial_weight'):
      config_lib.check_range(f'sr.{key}', getattr(self, key), low=0.0)
    h, w, _ = self.image_shape or (self.crop_size or self.scale,) * 2 + (1,)
    side = self.crop_size or min(h, w)
    if self.crop_size is not None and not self.scale <= self.crop_size <= min(h, w):
      raise config_lib.ConfigError(f'config.sr.crop_size={self.crop_size} must be between the '
                                   f'scale {self.scale} and the image side {min(h, w)}.')
    if side % self.scale:
      raise config_lib.ConfigError(f'config.sr: HR training images of side {side} do not divide '
                                   f'by sr.scale={self.scale}; set sr.crop_size to a multiple.')
    if self.random_rotate and not self.crop_size and h != w:
      raise config_lib.ConfigError(f'config.sr.random_rotate transposes the HR images, which needs '
                                   f'square ones: set sr.crop_size (images are {h}x{w}).')
    if self.arch == 'diffusion' and self.init_from:
      raise config_lib.ConfigError("config.sr.init_from starts an RRDB from another run's "
                                   "generator; sr.arch='diffusion' has none: set it to None.")
    if self.arch == 'esrgan' and not self.init_from:
      raise config_lib.ConfigError("config.sr.arch='esrgan' needs sr.init_from, the workdir of a "
                                   'finished rrdb_psnr run (ESRGAN starts from it).')
    if self.vgg_layer not in vgg.conv_layers('vgg19'):
      raise config_lib.ConfigError(f'config.sr.vgg_layer={self.vgg_layer!r} is not a VGG19 conv; '
                                   f'choose one of {list(vgg.conv_layers("vgg19"))}.')

  @property
  def channels(self) -> int:
    return self.image_shape[-1]

  @property
  def hr_side(self) -> tuple[int, int]:
    """The HR training shape (crop or whole image)."""
    if self.crop_size:
      return self.crop_size, self.crop_size
    return self.image_shape[0], self.image_shape[1]

  @functools.cached_property
  def generator(self) -> RRDBNet:
    """The RRDB (built once per spec), computing in `compute_dtype`."""
    return precision.with_policy(
        RRDBNet(out_channels=self.channels, features=self.features, growth=self.growth,
                num_blocks=self.num_blocks, scale=self.scale, bicubic_skip=self.bicubic_skip),
        self.compute_dtype)

  @functools.cached_property
  def discriminator(self) -> Discriminator:
    """ESRGAN's discriminator (built once per spec), computing in `compute_dtype`."""
    return precision.with_policy(Discriminator(widths=tuple(self.disc_widths)),
                                 self.compute_dtype)

  @functools.cached_property
  def unet(self) -> UNet:
    """SR3's U-Net (built once per spec), computing in `compute_dtype`."""
    return precision.with_policy(
        UNet(out_channels=self.channels, channels=tuple(self.unet_channels),
             num_res_blocks=self.unet_num_res_blocks,
             attention_resolutions=tuple(self.unet_attention)), self.compute_dtype)

  @property
  def perceptual_source(self) -> str:
    if self.perceptual != 'auto':
      return self.perceptual
    return 'classifier' if self.channels == 1 else 'vgg'


def classifier_preactivation(params, images: jax.Array, channels=(32, 64, 128)) -> jax.Array:
  """The mnist5k classifier's last conv before its ReLU: [B, 28, 28, 1] -> [B, 7, 7, 128].

  The classifier's own layers (genjax.models.classifier.CNNClassifier.feature_maps), stopped
  before the last ReLU, as ESRGAN takes VGG's conv5_4 before its activation.
  """
  x = images
  for i, width in enumerate(channels):
    y = Conv(width, (3, 3)).apply({'params': params[f'conv{i + 1}']}, x)
    if i == len(channels) - 1:
      return y
    x = max_pool(nn.relu(y), 2)
  return x


def make_perceptual_fn(spec: SRSpec) -> tuple[Callable[[jax.Array], jax.Array], str]:
  """(features(images [B, H, W, C] in [-1, 1]) -> [B, h, w, D], what it is) for the loss.

  The weights are constants of the returned function (not trained).
  """
  from genjax.metrics import weights_file  # pylint: disable=g-import-not-at-top
  from genjax.metrics.extractors import MNIST_CLASSIFIER  # pylint: disable=g-import-not-at-top

  if spec.perceptual_source == 'classifier':
    if spec.channels != 1:
      raise config_lib.ConfigError("config.sr.perceptual='classifier' reads 1-channel digits; "
                                   f'these images have {spec.channels} channels. Use vgg.')
    params, info = weights_file.load(MNIST_CLASSIFIER)
    chans = tuple(info.get('model', {}).get('channels', (32, 64, 128)))
    return (lambda x: classifier_preactivation(params, x, chans),
            'mnist5k classifier conv3 (pre-activation)')
  if spec.vgg_weights:
    params, _, mode = vgg.load_weights(spec.vgg_weights, 'vgg19')
    params = params['params']
    about = f'VGG19 {spec.vgg_layer} (pre-activation) from {spec.vgg_weights}'
  else:
    params, mode = vgg.random_params(0, 'vgg19')['params'], 'torch'
    about = f'random-weight VGG19 {spec.vgg_layer} (pre-activation; no weights file given)'
  net = vgg.network('vgg19')

  def features(x):
    rgb = jnp.repeat(x, 3, -1) if x.shape[-1] == 1 else x[..., :3]
    inputs = vgg.preprocess((rgb + 1.0) / 2.0, mode)
    return net.apply({'params': params}, inputs, [spec.vgg_layer], pre_relu=True)[spec.vgg_layer]
  return features, about
