"""The seed's MLP GAN on the 4,000 mnist5k training digits (28x28).

Launch:
  genjax train --config=configs/gan_mnist.py --workdir=runs/gan

The seed's `SimpleGAN`: generator z (100) -> Dense 128, 256, 512 (ReLU, then
BatchNorm) -> 784 tanh; discriminator 784 -> Dense 512, 256, 128 (ReLU,
dropout 0.3) -> one logit; Adam 2e-4 for both, non-saturating loss, the
seed's 10,000 iterations at batch 128. Unlike the seed run in Keras 3 (its
`trainable=False` froze the discriminator: pure noise, FID 112x the
real-data floor, IS 1.3), both networks train here. Measured figures:
RESULTS.md (GAN family).
"""
from configs import base


def get_config(variant=None):
  c = base.get_config('gan')
  c.gan.arch = 'mlp_gan'
  c.data.batch_size = 128
  c.gan.latent_dim = 100
  c.gan.gen_channels = (128, 256, 512)
  c.gan.disc_channels = (512, 256, 128)
  c.gan.dropout = 0.3
  c.gan.standing_stats_size = 1000
  c.optim.lr = 2e-4
  c.train.num_steps = 10000
  c.train.log_every_steps = 200
  c.train.eval_every_steps = 2500
  c.train.checkpoint_every_steps = 2500
  c.train.images_every_steps = 2500
  return base.with_variant(c, variant, {'smoke': smoke})


def smoke(c):
  c = base.smoke(c)
  c.gan.standing_stats_size = 64
  c.gan.gen_channels = (16, 32)
  c.gan.disc_channels = (32, 16)
  return c
