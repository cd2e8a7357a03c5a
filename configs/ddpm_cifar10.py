"""DDPM on CIFAR-10 as published (Ho et al. 2020): for users with network and accelerators.

Launch (TFDS downloads and prepares cifar10 once; preparing image data sets needs
`pip install tensorflow` for TFDS's decoding; FID needs the converted Inception
weights, see experiments/inception_weights/):
  genjax train --config=configs/ddpm_cifar10.py --workdir=runs/ddpm_cifar10 \
      --config.eval.feature_extractor_path=inception_fid.npz

The 35.7M-parameter U-Net (channels 128, multipliers 1,2,2,2, two residual
blocks per level, attention at 16x16, dropout 0.1), eps prediction, linear
betas 1e-4..0.02 over T=1000, Adam 2e-4 with 5,000 warm-up steps, batch 128,
800k steps, EMA 0.9999, random horizontal flips. Published: FID 3.17 (1,000
ancestral steps), NLL <= 3.75 bits/dim. Sampled here with 1,000-step DDPM
ancestral sampling as in the paper (--config.sample.sampler=... for others).
"""
from configs import base


def get_config(variant=None):
  c = base.get_config('diffusion')
  c.data.name = 'cifar10'
  c.data.download = True
  c.data.cache = False
  c.data.batch_size = 128
  c.diffusion.parameterization = 'eps'
  c.diffusion.loss_weighting = 'simple'
  c.diffusion.beta_schedule = 'linear'
  c.diffusion.num_timesteps = 1000
  c.diffusion.random_flip = True
  c.diffusion.channels = (128, 256, 256, 256)
  c.diffusion.num_res_blocks = 2
  c.diffusion.attention_resolutions = (16,)
  c.diffusion.dropout = 0.1
  c.optim.name = 'adam'
  c.optim.lr = 2e-4
  c.optim.schedule = 'warmup_constant'
  c.optim.warmup_steps = 5000
  c.optim.grad_clip_norm = 1.0
  c.train.num_steps = 800_000
  # A U-Net of 3x3 stride-1 convolutions: XLA:CPU runs its step 1.24x and its sampler 1.49x
  # faster on Eigen than on YNNPACK at batch 128 (genjax/core/xla_cpu.py; GPU/TPU ignore it).
  c.train.xla_cpu_convolutions = 'eigen'
  c.train.ema_decay = 0.9999
  c.train.ema_warmup = False
  c.train.log_every_steps = 100
  c.train.eval_every_steps = 50_000
  c.train.checkpoint_every_steps = 5_000
  c.train.images_every_steps = 10_000
  c.eval.feature_extractor = 'inception_v3'
  c.eval.num_samples = 50_000
  c.eval.bpd_num_examples = 10_000
  c.sample.sampler = 'ddpm'
  c.sample.num_steps = 1000
  c.sample.sigma_schedule = 'vp_uniform'
  return base.with_variant(c, variant, {'smoke': smoke})


def smoke(c):
  """Two steps of a narrow network on whatever data TFDS gives (mock data in tests)."""
  c = base.smoke(c)
  c.diffusion.channels = (8, 16)
  c.diffusion.attention_resolutions = (16,)
  c.eval.feature_extractor = None
  c.eval.bpd_num_examples = 0
  c.sample.num_steps = 3
  return c
