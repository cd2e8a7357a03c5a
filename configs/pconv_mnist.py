"""Partial-convolution U-Net inpainting (Liu et al. 2018) on the 4,000 mnist5k training digits.

Launch:
  genjax train --config=configs/pconv_mnist.py --workdir=runs/pconv
  genjax eval --workdir=runs/pconv        # every hole-ratio bin's fixed masks, the test split
  genjax inpaint --workdir=runs/pconv --image=digit.png --mask=random:0.3 --out=filled.png

The paper's loss (valid, hole x6, perceptual x0.05, style x120, TV x0.1) with the shipped
mnist5k classifier's feature maps as the feature network; free-form training masks with
hole ratios in [0.01, 0.6]. Measured numbers per bin (beside the biharmonic baseline, the
seed's autoencoder and RePaint): experiments/inpainting/README.md.
"""
from configs import base
from configs import inpaint_ae_mnist


def get_config(variant=None):
  c = base.get_config('inpaint')
  c.inpaint.arch = 'pconv'
  c.inpaint.channels = (32, 64, 128)
  c.inpaint.kernel_sizes = (5, 3, 3)
  c.inpaint.feature_net = 'classifier'
  # The paper's last layer is linear; clipped to [-1, 1] in training too, the black background
  # is hit exactly: +3.5 dB of hole PSNR in the 0.01-0.1 bin, +0.6-1.2 dB in the others
  # (experiments/inpainting/README.md).
  c.inpaint.output = 'clip'
  return base.with_variant(inpaint_ae_mnist.training(c), variant, {'smoke': smoke})


def smoke(c):
  c = inpaint_ae_mnist.smoke(c)
  c.inpaint.kernel_sizes = (3, 3)
  return c
