"""ESRGAN x4 on the bundled photos, started from configs/rrdb_psnr_photos.py's run.

Launch (after the RRDB-PSNR photo run):
  genjax train --config=configs/esrgan_photos.py --workdir=runs/esrgan_photos \
      --config.sr.init_from=runs/rrdb_psnr_photos [--config.sr.vgg_weights=vgg19.npz]

Perceptual loss: VGG19 pre-activation features from a `genjax convert-vgg` file when
sr.vgg_weights is given (then use the paper's sr.vgg_layer='block5_conv4'); offline, a
random-weight VGG19 (seed 0) at block2_conv2, which is all this config uses by default
(random deep features carry little; said in the study). Same crops and RRDB as the PSNR run.
"""
from configs import base
from configs import rrdb_psnr_mnist
from configs import rrdb_psnr_photos


def smoke(c):
  c = rrdb_psnr_photos.smoke(c)
  c.sr.disc_widths = (8, 16)
  c.sr.vgg_layer = 'block1_conv2'
  c.sr.init_from = 'runs/smoke_rrdb_psnr_photos'
  return c


def get_config(variant=None):
  c = rrdb_psnr_photos.photos(rrdb_psnr_mnist.small_rrdb(base.get_config('sr')))
  c.sr.arch = 'esrgan'
  c.sr.init_from = 'runs/rrdb_psnr_photos'
  c.sr.perceptual = 'vgg'
  c.sr.vgg_layer = 'block2_conv2'
  c.sr.disc_widths = (32, 64, 128, 256)
  c.optim.lr = 1e-4
  c.optim.b2 = 0.99
  c.train.num_steps = 150
  c.train.log_every_steps = 25
  c.train.eval_every_steps = 150
  c.train.checkpoint_every_steps = 150
  c.train.images_every_steps = 150
  c.train.ema_decay = 0.999
  return base.with_variant(c, variant, {'smoke': smoke})
