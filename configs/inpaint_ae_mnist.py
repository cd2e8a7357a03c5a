"""The seed's masked conv autoencoder (`ImageInpainting('conv_autoencoder')`) on mnist5k digits.

Launch:
  genjax train --config=configs/inpaint_ae_mnist.py --workdir=runs/inpaint_ae
  genjax eval --workdir=runs/inpaint_ae

The seed's network (stride-2 3x3 convs up to 512 channels at 256x256) scaled to 28x28:
three halvings (32, 64, 128 channels) and their transposed mirror, tanh out, cropped to
28x28; GroupNorm for the seed's BatchNorm. The seed gives no loss: this trains an L1
reconstruction of the whole image (valid and hole weights 1, no perceptual, style or TV
term), with the same free-form masks as configs/pconv_mnist.py. Numbers:
experiments/inpainting/README.md.
"""
from configs import base


def get_config(variant=None):
  c = base.get_config('inpaint')
  c.inpaint.arch = 'ae'
  c.inpaint.channels = (32, 64, 128)
  c.inpaint.feature_net = None
  c.inpaint.valid_weight = 1.0
  c.inpaint.hole_weight = 1.0
  c.inpaint.perceptual_weight = 0.0
  c.inpaint.style_weight = 0.0
  c.inpaint.tv_weight = 0.0
  return base.with_variant(training(c), variant, {'smoke': smoke})


def training(c):
  """The schedule both inpainting networks train with on mnist5k (this file and pconv_mnist)."""
  c.data.batch_size = 64
  c.optim.lr = 1e-3
  c.optim.schedule = 'warmup_cosine'
  c.optim.warmup_steps = 100
  c.train.num_steps = 3000
  c.train.eval_every_steps = 3000
  c.train.checkpoint_every_steps = 500
  c.train.images_every_steps = 3000
  return c


def smoke(c):
  c = base.smoke(c)
  c.inpaint.channels = (8, 16)
  c.inpaint.mask_bank_size = 16
  c.eval.num_examples = 16
  c.data.eval_batch_size = 16
  return c
