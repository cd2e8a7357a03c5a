"""Partial-convolution U-Net inpainting (Liu et al. 2018) on the bundled photos.

Launch:
  genjax train --config=configs/pconv_photos.py --workdir=runs/pconv_photos
  genjax eval --workdir=runs/pconv_photos     # every bin's fixed masks on the test tiles
  python experiments/inpainting/photos.py --pconv=runs/pconv_photos   # beside biharmonic

Data: every photo cut into 64x64 tiles (`data.tile_to`: all pixels at their own scale;
990 tiles of the eight training photos), a random 48x48 crop of each per step
(`inpaint.crop_size`); evaluation fills the 120 whole tiles of the two held-out photos
(flower, rocket; 60 each) with the fixed masks of every hole-ratio bin. The paper's loss
(valid, hole x6, perceptual x0.05, style x120, TV x0.1) on a random-weight VGG19's pool1-3
(He init, seed 0: no ImageNet weights offline; random VGG features still carry texture
statistics, see experiments/style_transfer); with a `genjax convert-vgg` file, pass
--config.inpaint.vgg_weights=FILE. 48x48 crops, batch 8
(the paper's 6) and 1,500 steps keep the VGG loss affordable on 2 CPU cores. No FID or label accuracy for photos: L1, PSNR and
SSIM, whole and hole-only, over RGB. Numbers: experiments/inpainting/README.md.
"""
from configs import base
from configs import pconv_mnist


def get_config(variant=None):
  c = base.get_config('inpaint')
  c.data.name = 'photos'
  c.data.tile_to = 64
  c.data.batch_size = 8
  c.data.eval_batch_size = 40
  c.eval.feature_extractor = None
  c.eval.num_examples = None  # All 120 test tiles.
  c.inpaint.arch = 'pconv'
  c.inpaint.channels = (32, 64, 128, 128)
  c.inpaint.kernel_sizes = (7, 5, 5, 3)
  c.inpaint.feature_net = 'vgg'
  c.inpaint.crop_size = 48
  c.optim.lr = 1e-3
  c.optim.schedule = 'warmup_cosine'
  c.optim.warmup_steps = 100
  c.train.num_steps = 1500
  c.train.log_every_steps = 50
  c.train.eval_every_steps = 1500
  c.train.checkpoint_every_steps = 500
  c.train.images_every_steps = 1500
  return base.with_variant(c, variant, {'smoke': smoke})


def smoke(c):
  c = pconv_mnist.smoke(c)
  c.data.batch_size = 8
  c.data.eval_batch_size = 16
  c.eval.num_examples = 16
  c.inpaint.channels = (8, 16)
  c.inpaint.kernel_sizes = (3, 3)
  c.inpaint.crop_size = 32
  return c
