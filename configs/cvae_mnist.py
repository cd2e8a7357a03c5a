"""Conditional VAE (Sohn et al. 2015) on mnist5k: label -> features -> image.

Launch:
  genjax train --config=configs/cvae_mnist.py --workdir=runs/cvae

The label (one-hot) enters both encoder and decoder. Pictures: samples per
label, one row per digit. Measured: label accuracy of conditional samples
under the bundled classifier, besides the VAE figures (RESULTS.md).
"""
from configs import base
from configs import vae_mnist


def get_config(variant=None):
  c = vae_mnist.get_config()
  c.unlock()
  c.vae.conditional = True
  return base.with_variant(c, variant, {'smoke': vae_mnist.smoke})
