"""Conditional DCGAN on mnist5k (label -> image), padded to 32x32.

Launch:
  genjax train --config=configs/cdcgan_mnist.py --workdir=runs/cdcgan

configs/dcgan_mnist.py with labels: the generator concatenates a learned
label embedding to z, the discriminator is a projection discriminator
(Miyato & Koyama 2018). Pictures add samples per label (one row per digit).
Measured (label accuracy of samples under the bundled classifier besides the
unconditional figures): RESULTS.md (GAN family).
"""
from configs import base
from configs import dcgan_mnist


def get_config(variant=None):
  c = dcgan_mnist.get_config()
  c.unlock()
  c.gan.conditional = True
  return base.with_variant(c, variant, {'smoke': dcgan_mnist.smoke})
