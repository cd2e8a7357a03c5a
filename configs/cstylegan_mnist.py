"""Conditional StyleGAN2 on mnist5k (label -> image), padded to 32x32.

Launch:
  genjax train --config=configs/cstylegan_mnist.py --workdir=runs/cstylegan

configs/stylegan_mnist.py (tanh output, half width, translation, g_first)
with labels: a label embedding is normalized and concatenated to z before
the mapping network (StyleGAN2-ADA), and the discriminator adds a projection
term <embed(y), phi(x)> (Miyato & Koyama 2018). w_avg is tracked per class,
so truncation pulls each sample towards its own class's average. Pictures
add samples per label (one row per digit).
Measured (label accuracy of samples under the bundled classifier besides the
unconditional figures): RESULTS.md (GAN family).
"""
from configs import base
from configs import stylegan_mnist


def get_config(variant=None):
  c = stylegan_mnist.get_config()
  c.unlock()
  c.gan.conditional = True
  return base.with_variant(c, variant, {'smoke': stylegan_mnist.smoke})
