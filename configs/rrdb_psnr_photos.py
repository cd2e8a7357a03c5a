"""RRDB-PSNR x4 on the bundled photos: random 64x64 HR crops, tested on flower and rocket whole.

Launch:
  genjax train --config=configs/rrdb_psnr_photos.py --workdir=runs/rrdb_psnr_photos

The input pipeline batches equal shapes only, so the fifteen training photos of `photos_plus`
are first centre-cropped to 288x288 (data.crop_to: no resampling, so the pixel scale is the
photos' own), then each step takes a random 64x64 crop per batch image under a random one of
the square's 8 symmetries; the two held-out photos are evaluated at full size (modcropped to
a multiple of 4): PSNR/SSIM on Y, 4-px border crop, beside bicubic and nearest. The small RRDB
of the digit runs (nf 32, gc 16, 4 blocks). Measured (2026-12-07, 2,000 steps, 377 s wall):
PSNR (Y) 32.57 / 30.23 dB on flower / rocket against bicubic's 30.72 / 30.00, +1.05 dB mean
(seed 1: +1.02): experiments/super_resolution/README.md.
"""
from configs import base
from configs import rrdb_psnr_mnist


def photos(c):
  """The photo data: 288x288 centre crops of the 15 training photos, 64x64 crops, all 8
  flips and rotations, no FID.

  `photos_plus`: `photos`' eight training photos and seven more from the same packages
  (Grace Hopper, cameraman, coins, moon, brick, grass, gravel), tested on the same flower
  and rocket. With `photos`' eight, rocket stayed at bicubic's PSNR whatever the network's
  size, crops or steps; with the fifteen it gains 0.24 dB (experiments/super_resolution).
  Centre crops, not resizes: shrinking the large training photos (up to 1411x1411) to one
  side would change their pixel scale, and x4 SR learns exactly that scale's statistics.
  """
  c.data.name = 'photos_plus'
  c.data.crop_to = 288
  c.data.batch_size = 8
  c.data.eval_batch_size = 8
  c.eval.feature_extractor = None
  c.eval.sample_batch_size = 8
  c.sr.crop_size = 64
  c.sr.random_flip = True
  c.sr.random_rotate = True
  return c


def smoke(c):
  c = rrdb_psnr_mnist.smoke(c)
  c.data.batch_size = 8
  c.sr.crop_size = 32
  return c


def get_config(variant=None):
  c = photos(rrdb_psnr_mnist.small_rrdb(base.get_config('sr')))
  c.sr.arch = 'rrdb_psnr'
  c.optim.lr = 5e-4
  c.optim.schedule = 'cosine'
  c.optim.end_lr_factor = 0.1
  c.train.num_steps = 2000
  c.train.log_every_steps = 50
  c.train.eval_every_steps = 1000
  c.train.checkpoint_every_steps = 500
  c.train.images_every_steps = 2000
  c.train.ema_decay = 0.999
  return base.with_variant(c, variant, {'smoke': smoke})
