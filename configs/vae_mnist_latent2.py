"""The seed's VAE with a 2-D latent space, for its latent-grid picture.

Launch:
  genjax train --config=configs/vae_mnist_latent2.py --workdir=runs/vae2d

Writes images/latent_grid.png: the decoder over a 20x20 grid of Gaussian
quantiles of (z1, z2), the seed's `plot_latent_space`.
"""
from configs import base
from configs import vae_mnist


def get_config(variant=None):
  c = vae_mnist.get_config()
  c.unlock()
  c.vae.latent_dim = 2
  return base.with_variant(c, variant, {'smoke': vae_mnist.smoke})
