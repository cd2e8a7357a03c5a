"""StyleGAN2 at 32x32 on the 4,000 mnist5k training digits (padded to 32x32).

Launch:
  genjax train --config=configs/stylegan_mnist.py --workdir=runs/stylegan
  genjax train --config=configs/stylegan_mnist.py --workdir=runs/stylegan_adain --config.model.style_mode=adain

Mapping network of 8 layers (w 128, lr multiplier 0.01); learned 4x4
constant; modulated 3x3 convs with demodulation at 4, 8, 16 and 32 (256,
128, 64, 32 maps), per-layer noise of learned strength; skip generator and
residual discriminator with minibatch stddev. Style mixing on 90% of the
fakes, w_avg tracked with beta 0.995 for truncation, EMA generator, lazy R1
every 16 steps, Adam 2e-3 with betas (0, 0.99) as in StyleGAN2.
Pictures: samples, style mixing, truncation sweep, interpolation in z and w.
Measured figures: RESULTS.md (GAN family). On mnist5k this config, and every
variant tried so far (DiffAugment via method.diff_augment, StyleGAN2's update
order via method.g_first, model.mbstd_group 32, two time-scale Adam, half
width, PacGAN via method.d_pack, a slow D, slow style affines via
model.affine_lr_mult, StyleGAN2's path-length regularization via
method.pl_weight=2, DCGAN's BatchNorm discriminator via
model.stylegan_discriminator=dcgan), mode-collapses within about 1,000 steps,
even with D at chance, and a 4,000-step run stayed collapsed (FID 70-87); diagnose
a run with
experiments/gan_mnist/diagnose_stylegan.py, and compare how fast generators
learn to follow z with experiments/gan_mnist/fit_generators.py.
"""
from configs import base


def get_config(variant=None):
  c = base.get_config()
  c.method.name = 'gan'
  c.model.name = 'stylegan'
  c.data.pad_to = 32
  c.data.batch_size = 64
  c.model.latent_dim = 128
  c.model.w_dim = 128
  c.model.gen_channels = (256, 128, 64, 32)
  c.model.disc_channels = (32, 64, 128, 256)
  c.method.r1_gamma = 0.1
  c.method.r1_every = 16
  c.optim.lr = 2e-3
  c.optim.b1 = 0.0
  c.optim.b2 = 0.99
  c.train.ema_decay = 0.995
  c.train.num_steps = 4000
  c.train.log_every_steps = 100
  c.train.eval_every_steps = 1000
  c.train.checkpoint_every_steps = 500
  c.train.images_every_steps = 1000
  return base.with_variant(c, variant, {'smoke': smoke})


def smoke(c):
  c = base.smoke(c)
  c.model.w_dim = 16
  c.model.latent_dim = 16
  c.model.mapping_layers = 2
  c.model.gen_channels = (16, 16, 8, 8)
  c.model.disc_channels = (8, 8, 16, 16)
  c.method.r1_every = 2
  return c
