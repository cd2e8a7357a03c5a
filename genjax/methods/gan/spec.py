"""The GAN family's config groups, decoded once: `config.gan` and, for StyleGAN, `config.stylegan`."""
from __future__ import annotations

import dataclasses

from genjax import config as config_lib
from genjax.methods.gan import augment, losses
from genjax.models import stylegan

ARCHS = ('mlp_gan', 'dcgan', 'stylegan')
STYLEGAN_DISCRIMINATORS = ('stylegan', 'dcgan')


@dataclasses.dataclass(frozen=True)
class GanSpec:
  """`config.gan`: the networks and the adversarial training of every GAN.

  Attributes:
    arch: mlp_gan (the seed's MLP GAN) | dcgan | stylegan (then `config.stylegan` too).
    num_classes: K, for conditional GANs.
    conditional: condition G and D on labels.
    latent_dim: size of z.
    gen_channels: MLP: hidden widths; DCGAN/StyleGAN: feature maps from 4x4 up.
    disc_channels: MLP: hidden widths; DCGAN/StyleGAN: feature maps from full size down.
    bn_momentum: BatchNorm running-average momentum (MLP GAN, DCGAN).
    dropout: the MLP discriminator's dropout.
    loss: non_saturating (the seed's BCE, on logits) | hinge.
    d_lr, d_b1, d_b2: the discriminator's optimizer settings; None: config.optim's.
    r1_gamma: R1 weight gamma (penalty gamma / 2 E||grad D(x)||^2); 0: off.
    r1_every: lazy R1: every k steps, weighted by k (StyleGAN2).
    g_first: G's update first, then D's on fresh fakes (StyleGAN2); False: D first.
    diff_augment: DiffAugment policy for D's inputs, e.g. 'translation,cutout'; '': off.
    d_pack: PacGAN: D judges packs of this many samples; 1: off.
    mode_seeking: weight of MSGAN's mode-seeking term in G's loss; 0: off.
    monitor_classifier: class entropy of fakes in the step, by this extractor; None: off.
    standing_stats_size: BatchNorm generators sample with the batch statistics of
      this many fixed latents (BigGAN's standing stats); 0: the running averages.
  """
  arch: str = 'dcgan'
  num_classes: int = 10
  conditional: bool = False
  latent_dim: int = 32
  gen_channels: tuple[int, ...] = (256, 128, 64)
  disc_channels: tuple[int, ...] = (64, 128, 256)
  bn_momentum: float = 0.9
  dropout: float = 0.0
  loss: str = 'non_saturating'
  d_lr: float | None = None
  d_b1: float | None = None
  d_b2: float | None = None
  r1_gamma: float = 0.0
  r1_every: int = 16
  g_first: bool = False
  diff_augment: str = ''
  d_pack: int = 1
  mode_seeking: float = 0.0
  monitor_classifier: str | None = 'mnist5k_classifier'
  standing_stats_size: int = 0

  def __post_init__(self):
    config_lib.check_choice('gan.arch', self.arch, ARCHS)
    config_lib.check_choice('gan.loss', self.loss, sorted(losses.LOSSES))
    config_lib.check_range('gan.r1_every', self.r1_every, low=1)
    config_lib.check_range('gan.d_pack', self.d_pack, low=1)
    config_lib.check_range('gan.r1_gamma', self.r1_gamma, low=0.0)
    config_lib.check_range('gan.mode_seeking', self.mode_seeking, low=0.0)
    config_lib.check_range('gan.standing_stats_size', self.standing_stats_size, low=0)
    config_lib.check_range('gan.latent_dim', self.latent_dim, low=1)
    if self.d_lr is not None:  # None: optim.lr's (checked there).
      config_lib.check_range('gan.d_lr', self.d_lr, low=0.0, low_open=True)
    for key in ('d_b1', 'd_b2'):
      if getattr(self, key) is not None:
        config_lib.check_range(f'gan.{key}', getattr(self, key), low=0.0, high=1.0, high_open=True)
    try:
      augment.parse_policy(self.diff_augment)
    except ValueError as e:
      raise config_lib.ConfigError(f'config.{e}') from e


@dataclasses.dataclass(frozen=True)
class StyleGANSpec:
  """`config.stylegan`: StyleGAN's generator, discriminator and regularizers (gan.arch='stylegan').

  Attributes:
    w_dim: size of w (and of the mapping network's layers).
    mapping_layers: mapping network depth.
    mapping_lr_mult: the mapping network's learning-rate multiplier.
    affine_lr_mult: the style affines' learning-rate multiplier (1 in the papers).
    style_mode: modulated (StyleGAN2, demodulation) | adain (StyleGAN).
    mbstd_group: the discriminator's minibatch-stddev group size.
    discriminator: stylegan (residual, minibatch stddev) | dcgan (DCGAN's, BatchNorm).
    output: the generator's last activation: linear (papers) | tanh.
    pl_weight: path-length regularization weight (2 in StyleGAN2); 0: off.
    pl_every: lazy path-length regularization: every k steps, weighted by k.
    pl_batch_shrink: its batch is the step's divided by this.
    pl_decay: decay of the running mean of path lengths it pulls towards.
    style_mixing_prob: fraction of fakes with two ws and a crossover.
    w_avg_beta: decay of the tracked average of w.
    truncation_psi: sampling (and metrics): 1 = no truncation.
  """
  w_dim: int = 128
  mapping_layers: int = 8
  mapping_lr_mult: float = 0.01
  affine_lr_mult: float = 1.0
  style_mode: str = 'modulated'
  mbstd_group: int = 4
  discriminator: str = 'stylegan'
  output: str = 'linear'
  pl_weight: float = 0.0
  pl_every: int = 4
  pl_batch_shrink: int = 2
  pl_decay: float = 0.01
  style_mixing_prob: float = 0.9
  w_avg_beta: float = 0.995
  truncation_psi: float = 1.0

  def __post_init__(self):
    config_lib.check_choice('stylegan.style_mode', self.style_mode, stylegan.STYLE_MODES)
    config_lib.check_choice('stylegan.output', self.output, stylegan.OUTPUTS)
    config_lib.check_choice('stylegan.discriminator', self.discriminator, STYLEGAN_DISCRIMINATORS)
    config_lib.check_range('stylegan.pl_every', self.pl_every, low=1)
    config_lib.check_range('stylegan.pl_batch_shrink', self.pl_batch_shrink, low=1)
    config_lib.check_range('stylegan.pl_weight', self.pl_weight, low=0.0)
    config_lib.check_range('stylegan.style_mixing_prob', self.style_mixing_prob, low=0.0, high=1.0)
    config_lib.check_range('stylegan.w_avg_beta', self.w_avg_beta, low=0.0, high=1.0)
    config_lib.check_range('stylegan.mapping_layers', self.mapping_layers, low=1)
    for key in ('mapping_lr_mult', 'affine_lr_mult'):  # Equalized lr divides by them.
      config_lib.check_range(f'stylegan.{key}', getattr(self, key), low=0.0, low_open=True)
