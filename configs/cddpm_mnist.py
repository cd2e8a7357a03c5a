"""Class-conditional diffusion on mnist5k with classifier-free guidance (Ho & Salimans 2022).

Launch:
  genjax train --config=configs/cddpm_mnist.py --workdir=runs/cddpm
  genjax eval --config=configs/cddpm_mnist.py --config.sample.guidance_scale=3 --workdir=runs/cddpm

The flagship's recipe with a class embedding and 10% label dropout (the null
class). Guidance weight w: 0 unconditional, 1 plain conditional, > 1 guided.
Measured: label accuracy of samples under the bundled classifier for w = 0,
1 and 3, with FID/IS/precision/recall (RESULTS.md).
"""
from configs import base
from configs import ddpm_mnist


def get_config(variant=None):
  c = ddpm_mnist.get_config()
  c.unlock()
  c.diffusion.conditional = True
  c.diffusion.label_dropout = 0.1
  c.sample.guidance_scale = 1.0
  return base.with_variant(c, variant, {'smoke': ddpm_mnist.smoke})
