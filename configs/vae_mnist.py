"""The seed's convolutional VAE on the 4,000 mnist5k training digits.

Launch:
  genjax train --config=configs/vae_mnist.py --workdir=runs/vae
  genjax eval --config=configs/vae_mnist.py --config.vae.iwae_k=5000 --workdir=runs/vae

Bernoulli likelihood on dynamically binarized digits (test digits binarized
once); latent 32; encoder conv 32, 64 at stride 2 and dense 256, decoder
mirrored. Expected (RESULTS.md): IWAE NLL (k=1000) and negative ELBO on the
1,000 test digits below the PyTorch anchor of the same model (102.03 / 111.91
nats), plus FID/IS/precision/recall against the real-data floor.
"""
from configs import base


def get_config(variant=None):
  c = base.get_config('vae')
  c.vae.channels = (32, 64)
  c.vae.latent_dim = 32
  c.vae.iwae_k = 100
  c.optim.lr = 1e-3
  c.train.num_steps = 6000
  c.train.ema_decay = 0.999
  c.train.eval_every_steps = 2000
  c.train.checkpoint_every_steps = 1000
  c.train.images_every_steps = 2000
  return base.with_variant(c, variant, {'smoke': smoke})


def smoke(c):
  c = base.smoke(c)
  c.vae.iwae_k = 10
  return c
