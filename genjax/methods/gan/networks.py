"""The GAN's two networks, built once from its specs: `Gan` bundles the specs and the data's shape.

`Gan` is frozen and hashable, so it is the static first argument of every
jitted function of the family; its cached properties build the flax modules
(and the facts the step branches on) once per run.
"""
from __future__ import annotations

import dataclasses
import functools

import jax

from genjax import config as config_lib
from genjax.core import precision
from genjax.methods.gan import augment as gan_augment
from genjax.methods.gan import losses as gan_losses
from genjax.methods.gan.spec import GanSpec, StyleGANSpec
from genjax.metrics import extractors
from genjax.models import gan as gan_models
from genjax.models import stylegan


@dataclasses.dataclass(frozen=True)
class Gan:
  """One GAN: its specs and the data's image shape, with the networks they describe.

  Attributes:
    spec: `config.gan`.
    style: `config.stylegan` when spec.arch == 'stylegan', else None.
    image_shape: (H, W, C) of the data.
    compute_dtype: `train.compute_dtype` (float32 | bfloat16) of both networks.
  """
  spec: GanSpec
  style: StyleGANSpec | None = None
  image_shape: tuple[int, int, int] = (32, 32, 1)
  compute_dtype: str = 'float32'

  def __post_init__(self):
    if (self.spec.arch == 'stylegan') != (self.style is not None):
      raise config_lib.ConfigError(
          f'config.gan.arch={self.spec.arch!r} with{"out" if self.style is None else ""} '
          'config.stylegan: StyleGAN (and only StyleGAN) takes the config.stylegan group.')
    object.__setattr__(self, 'image_shape', tuple(self.image_shape))

  @property
  def is_style(self) -> bool:
    """A StyleGAN generator (mapping + synthesis, noise inputs, w_avg)."""
    return self.style is not None

  @property
  def conditional(self) -> bool:
    return bool(self.spec.conditional)

  @property
  def num_classes(self) -> int:
    """K when conditional, else 0 (what the networks and `Method.num_classes` take)."""
    return self.spec.num_classes if self.conditional else 0

  @property
  def g_bn(self) -> bool:
    """The MLP GAN and DCGAN generators use BatchNorm."""
    return not self.is_style

  @property
  def d_bn(self) -> bool:
    """The DCGAN discriminator uses BatchNorm (also behind a StyleGAN generator)."""
    return self.spec.arch == 'dcgan' or (self.is_style and self.style.discriminator == 'dcgan')

  @property
  def style_d(self) -> bool:
    """StyleGAN2's residual discriminator (no BatchNorm, no dropout)."""
    return self.is_style and not self.d_bn

  @property
  def d_dropout(self) -> bool:
    """The MLP discriminator draws dropout."""
    return self.spec.arch == 'mlp_gan'

  @functools.cached_property
  def generator(self):
    """The generator's flax module (computing in `compute_dtype`)."""
    g, k, shape = self.spec, self.num_classes, self.image_shape
    if g.arch == 'mlp_gan':
      module = gan_models.MLPGenerator(shape, tuple(g.gen_channels), k, g.bn_momentum)
    elif g.arch == 'dcgan':
      module = gan_models.DCGANGenerator(shape, tuple(g.gen_channels), k, g.bn_momentum)
    else:
      s = self.style
      module = stylegan.StyleGenerator(shape, tuple(g.gen_channels), s.w_dim, s.mapping_layers,
                                       s.mapping_lr_mult, k, s.style_mode, s.affine_lr_mult,
                                       s.output)
    return precision.with_policy(module, self.compute_dtype)

  @functools.cached_property
  def discriminator(self):
    """The discriminator's flax module (computing in `compute_dtype`)."""
    g, k = self.spec, self.num_classes
    if g.arch == 'mlp_gan':
      module = gan_models.MLPDiscriminator(tuple(g.disc_channels), g.dropout, k)
    elif self.d_bn:
      module = gan_models.DCGANDiscriminator(tuple(g.disc_channels), k, g.bn_momentum)
    else:
      module = stylegan.StyleDiscriminator(tuple(g.disc_channels), k, self.style.mbstd_group)
    return precision.with_policy(module, self.compute_dtype)

  @property
  def num_ws(self) -> int:
    """How many ws StyleGAN's synthesis network reads (0 for other GANs)."""
    return self.generator.num_ws if self.is_style else 0

  @functools.cached_property
  def noise_shapes(self) -> list[tuple[int, int, int]]:
    """StyleGAN's per-layer noise shapes (r, r, 1); [] for other GANs."""
    return stylegan.noise_shapes(self.image_shape) if self.is_style else []

  @property
  def loss(self) -> gan_losses.GanLoss:
    return gan_losses.LOSSES[self.spec.loss]

  @functools.cached_property
  def policy(self) -> tuple[str, ...]:
    """The DiffAugment operations D's inputs go through (() for none)."""
    return gan_augment.parse_policy(self.spec.diff_augment)

  @functools.cached_property
  def monitor(self):
    """The classifier whose labels of the fakes the step monitors, or None."""
    name = self.spec.monitor_classifier
    return extractors.get_extractor(name) if name else None

  @property
  def truncation_psi(self) -> float:
    """Sampling's truncation (1: none; always 1 for GANs without w)."""
    return float(self.style.truncation_psi) if self.is_style else 1.0


def pack_for_discriminator(images: jax.Array, labels: jax.Array | None, m: int):
  """PacGAN packing (Lin et al. 2018): m consecutive samples become one input of D.

  A discriminator that judges m samples at once sees their diversity: m copies
  of one image are an easy fake, which penalizes mode collapse directly.

  Args:
    images: [B, H, W, C], B divisible by m.
    labels: [B] ints or None.
    m: pack size (1: unchanged).

  Returns:
    (images [B/m, H, W, m C], labels [B/m, m] or None); unchanged when m == 1.
  """
  if m == 1:
    return images, labels
  b, h, w, c = images.shape
  if b % m:
    raise ValueError(f'gan.d_pack={m} must divide the batch of {b} images D judges; '
                     'choose a data.batch_size divisible by d_pack.')
  packed = images.reshape(b // m, m, h, w, c).transpose(0, 2, 3, 1, 4).reshape(b // m, h, w, m * c)
  return packed, None if labels is None else labels.reshape(b // m, m)
