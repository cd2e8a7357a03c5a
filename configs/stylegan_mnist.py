"""StyleGAN2 at 32x32 on the 4,000 mnist5k training digits (padded to 32x32).

Launch:
  genjax train --config=configs/stylegan_mnist.py --workdir=runs/stylegan
  genjax train --config=configs/stylegan_mnist.py --workdir=runs/stylegan_adain --config.stylegan.style_mode=adain

Mapping network of 8 layers (w 128, lr multiplier 0.01); learned 4x4
constant; modulated 3x3 convs with demodulation at 4, 8, 16 and 32 (128,
64, 32, 16 maps), per-layer noise of learned strength; skip generator whose
summed to-RGB outputs go through tanh (stylegan.output; the papers
leave them linear); residual discriminator (16, 32, 64, 128 maps) with
minibatch stddev. Style mixing on 90% of the fakes, w_avg tracked with beta
0.995 for truncation, EMA generator, lazy R1 every 16 steps, Adam 2e-3 with
betas (0, 0.99), and G's update before D's (gan.g_first), as in StyleGAN2;
D sees every image through random translations (DiffAugment).
Pictures: samples, style mixing, truncation sweep, interpolation in z and w.

The tanh output is what made this model work on mnist5k (RESULTS.md, GAN
family, seventh round): with the papers' linear output, this config and
every variant tried (DiffAugment, update order, minibatch-stddev groups, two
time-scale Adam, PacGAN, slow D or style affines, path-length
regularization, DCGAN's BatchNorm discriminator) mode-collapsed within about
1,000 steps and stayed collapsed through 5,000 (FID 62-87, recall 0). With it,
FID 16.4 (33x the floor) and all 10 classes at step 1,000; later figures in
RESULTS.md.
"""
from configs import base


def get_config(variant=None):
  c = base.get_config('gan', 'stylegan')
  c.gan.arch = 'stylegan'
  c.data.pad_to = 32
  c.data.batch_size = 64
  c.gan.latent_dim = 128
  c.stylegan.w_dim = 128
  c.gan.gen_channels = (128, 64, 32, 16)
  c.gan.disc_channels = (16, 32, 64, 128)
  c.stylegan.output = 'tanh'
  c.gan.diff_augment = 'translation'
  c.gan.g_first = True
  c.gan.r1_gamma = 0.1
  c.gan.r1_every = 16
  c.optim.lr = 2e-3
  c.optim.b1 = 0.0
  c.optim.b2 = 0.99
  c.train.ema_decay = 0.995
  c.train.num_steps = 4000
  c.train.log_every_steps = 100
  c.train.eval_every_steps = 1000
  c.train.checkpoint_every_steps = 500
  c.train.images_every_steps = 500
  return base.with_variant(c, variant, {'smoke': smoke})


def smoke(c):
  c = base.smoke(c)
  c.stylegan.w_dim = 16
  c.gan.latent_dim = 16
  c.stylegan.mapping_layers = 2
  c.gan.gen_channels = (16, 16, 8, 8)
  c.gan.disc_channels = (8, 8, 16, 16)
  c.gan.r1_every = 2
  return c
