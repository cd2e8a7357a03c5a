"""DCGAN (Radford et al. 2016) on the 4,000 mnist5k training digits, padded to 32x32.

Launch:
  genjax train --config=configs/dcgan_mnist.py --workdir=runs/dcgan
  genjax train --config=configs/dcgan_mnist.py --workdir=runs/dcgan_hinge --config.gan.loss=hinge

The seed's DCGAN fitted to 32x32 grayscale: z (100) -> 4x4x256 -> 8x8x128 ->
16x16x64 -> 32x32x1 with transposed 4x4 convs, BatchNorm and ReLU; the
discriminator mirrors it (64, 128, 256, LeakyReLU 0.2, BatchNorm after the
first conv). Adam 2e-4, beta1 0.5, batch 128, non-saturating loss, as the
PyTorch DCGAN anchor (3,000 iterations x 128, FID 4.6x the real-data floor,
IS 8.5 on its own extractor; 9.8x when rerun here and scored by genjax's,
experiments/gan_mnist/torch_dcgan.py). Measured figures: RESULTS.md (GAN family).
"""
from configs import base


def get_config(variant=None):
  c = base.get_config('gan')
  c.gan.arch = 'dcgan'
  c.data.pad_to = 32
  c.data.batch_size = 128
  c.gan.latent_dim = 100
  c.gan.gen_channels = (256, 128, 64)
  c.gan.disc_channels = (64, 128, 256)
  c.gan.standing_stats_size = 1000
  c.optim.lr = 2e-4
  c.optim.b1 = 0.5
  c.train.num_steps = 3000
  c.train.log_every_steps = 100
  c.train.eval_every_steps = 1000
  c.train.checkpoint_every_steps = 500
  c.train.images_every_steps = 500
  return base.with_variant(c, variant, {'smoke': smoke})


def smoke(c):
  c = base.smoke(c)
  c.gan.standing_stats_size = 64
  c.gan.gen_channels = (32, 16, 8)
  c.gan.disc_channels = (8, 16, 32)
  return c
