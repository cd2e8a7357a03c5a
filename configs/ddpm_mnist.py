"""Diffusion on the 4,000 mnist5k training digits: the flagship.

Launch:
  genjax train --config=configs/ddpm_mnist.py --workdir=runs/ddpm
  genjax eval --config=configs/ddpm_mnist.py --config.eval.bpd_num_examples=1000 --workdir=runs/ddpm

The textbook recipe (eps, linear betas) needs far more steps than 2 CPU cores
give in half an hour (ANCHORS.md: 78x the FID floor). This config takes what
works: EDM preconditioning and loss weighting (Karras et al. 2022), a small
U-Net, EMA, and DPM-Solver++(2M) SDE at 20 steps on Karras sigmas. Expected
figures (FID ratio to the real-data floor, IS, precision/recall, bits/dim) are
in RESULTS.md and experiments/sampler_nfe/.
"""
from configs import base


def get_config(variant=None):
  c = base.get_config('diffusion')
  # 2x2 patches: the U-Net runs at 14 and 7 pixels, 4x fewer positions than 28x28 for
  # the same receptive field (1.0M parameters, 137 img/s per train step on 2 cores).
  c.diffusion.channels = (32, 64)
  c.diffusion.num_res_blocks = 2
  c.diffusion.patch_size = 2
  c.diffusion.attention_resolutions = (7,)
  c.diffusion.parameterization = 'edm'
  c.diffusion.loss_weighting = 'edm'
  c.optim.lr = 1e-3
  c.optim.schedule = 'warmup_constant'
  c.optim.warmup_steps = 200
  c.data.batch_size = 128
  c.train.num_steps = 2000
  # A U-Net of 3x3 stride-1 convolutions: XLA:CPU runs its step 1.24x and its sampler 1.49x
  # faster on Eigen than on YNNPACK at batch 128 (genjax/core/xla_cpu.py; GPU/TPU ignore it).
  c.train.xla_cpu_convolutions = 'eigen'
  c.train.ema_decay = 0.999
  c.train.eval_every_steps = 1000
  c.train.checkpoint_every_steps = 500
  c.train.images_every_steps = 1000
  # The best 20-NFE sampler of experiments/sampler_nfe/ on this model.
  c.sample.sampler = 'dpmpp_2m_sde'
  c.sample.num_steps = 20
  return base.with_variant(c, variant, {'smoke': smoke, 'demo': demo})


def demo(c):
  """`make demo`: the same model for a few minutes (900 steps of 32), 1,000 samples."""
  c.data.batch_size = 32  # More updates for the same images: better early in training.
  c.optim.warmup_steps = 100
  c.train.num_steps = 900
  c.train.ema_decay = 0.99
  c.train.eval_every_steps = 900
  c.train.checkpoint_every_steps = 900
  c.train.images_every_steps = 900
  return c


def smoke(c):
  c = base.smoke(c)
  c.diffusion.channels = (8, 16)
  c.diffusion.num_res_blocks = 1
  c.diffusion.attention_resolutions = (7,)
  c.sample.num_steps = 3
  return c
