"""ESRGAN x4 on mnist5k, started from the RRDB-PSNR run (configs/rrdb_psnr_mnist.py).

Launch (after the RRDB-PSNR run):
  genjax train --config=configs/esrgan_mnist.py --workdir=runs/esrgan_mnist \
      --config.sr.init_from=runs/rrdb_psnr_mnist

Relativistic average GAN, perceptual loss on the shipped mnist5k classifier's conv3
pre-activation features (offline stand-in for VGG on digits), L1; weights 1, 5e-3, 1e-2
(the paper's). The same small RRDB as the PSNR run. Network interpolation with the PSNR
run: `genjax upscale --workdir=runs/esrgan_mnist --alpha=0.5 ...`, and the sweep in
experiments/super_resolution/. Measured (2026-12-06): FID 2.28 (RRDB-PSNR 4.68, floor 0.50),
label accuracy 0.970, PSNR 18.19 dB: that study's README.
"""
from configs import base
from configs import rrdb_psnr_mnist


def smoke(c):
  c = rrdb_psnr_mnist.smoke(c)
  c.sr.disc_widths = (8, 16)
  c.sr.init_from = 'runs/smoke_rrdb_psnr_mnist'
  return c


def get_config(variant=None):
  c = rrdb_psnr_mnist.small_rrdb(base.get_config('sr'))
  c.sr.arch = 'esrgan'
  c.sr.init_from = 'runs/rrdb_psnr_mnist'
  c.sr.disc_widths = (32, 64, 128)
  c.data.batch_size = 32
  c.optim.lr = 1e-4
  c.optim.b1 = 0.9
  c.optim.b2 = 0.99
  c.train.num_steps = 300
  c.train.log_every_steps = 50
  c.train.eval_every_steps = 300
  c.train.checkpoint_every_steps = 300
  c.train.images_every_steps = 300
  c.train.ema_decay = 0.999
  return base.with_variant(c, variant, {'smoke': smoke})
