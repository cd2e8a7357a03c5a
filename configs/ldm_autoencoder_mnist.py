"""Stage 1 of latent diffusion on mnist5k: LDM's KL autoencoder, 28x28x1 -> 7x7x4 latents.

Launch (alone; `genjax train --config=configs/ldm_mnist.py` runs it as its first stage):
  genjax train --config=configs/ldm_autoencoder_mnist.py --workdir=runs/ldm/autoencoder

Expected: reconstruction PSNR / SSIM / FID ratio in eval.json and
experiments/latent_diffusion/README.md; the export autoencoder.npz (+ .json with the
measured latent scale) is what the LDM stage loads.
"""
from configs import base


def get_config(variant=None):
  c = base.get_config('ldm_autoencoder')
  c.data.name = 'mnist5k'  # Images only; the same split as the captioned view.
  c.data.batch_size = 64
  c.ldm_autoencoder.channels = (16, 32, 64)  # 28 -> 14 -> 7; narrow at 28x28, where it costs.
  c.ldm_autoencoder.latent_channels = 4
  c.ldm_autoencoder.kl_weight = 1e-6  # LDM's weight: the latent keeps detail.
  c.optim.lr = 1e-3
  c.optim.schedule = 'warmup_cosine'
  c.optim.warmup_steps = 100
  c.optim.end_lr_factor = 0.1
  c.train.num_steps = 600
  c.train.eval_every_steps = 600
  c.train.checkpoint_every_steps = 300
  c.train.images_every_steps = 600
  c.train.xla_cpu_convolutions = 'eigen'
  return base.with_variant(c, variant, {'smoke': smoke})


def smoke(c):
  c = base.smoke(c)
  c.ldm_autoencoder.channels = (8, 8, 8)
  c.ldm_autoencoder.scale_examples = 64
  c.eval.feature_extractor = None  # No reconstruction FID: seconds matter in the smoke test.
  return c
