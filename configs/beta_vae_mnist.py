"""beta-VAE (Higgins et al. 2017) on mnist5k: the seed's VAE with the KL weighted by beta=4.

Launch:
  genjax train --config=configs/beta_vae_mnist.py --workdir=runs/beta_vae
  genjax train --config=configs/beta_vae_mnist.py --config.vae.beta=8 --workdir=runs/beta8

Pictures: a latent traversal (one row per latent dimension, most used first),
interpolations, reconstructions. The beta sweep (1, 2, 4, 8) is in RESULTS.md:
larger beta trades likelihood for fewer, more disentangled active dimensions.
"""
from configs import base
from configs import vae_mnist


def get_config(variant=None):
  c = vae_mnist.get_config()
  c.unlock()
  c.vae.beta = 4.0
  return base.with_variant(c, variant, {'smoke': vae_mnist.smoke})
