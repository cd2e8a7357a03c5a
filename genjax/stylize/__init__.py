"""Neural style transfer (Gatys et al. 2016) on VGG19 features: `stylize(content, style)`.

A method of its own shape: one optimisation of one image's pixels per (content, style) pair,
not a model trained on a data set (genjax/stylize/transfer.py says why).

  losses     Gram matrix, content / style / total-variation losses, YIQ colour conversions
  transfer   StylizeSpec, stylize (Adam or L-BFGS, coarse-to-fine, colour preservation), evaluate
  images     reading any image file as RGB [0, 1], writing PNGs
"""
from genjax.stylize.losses import content_loss, gram_matrix, style_layer_loss, total_variation
from genjax.stylize.images import ImageError, read_rgb, write_png
from genjax.stylize.transfer import StylizeSpec, evaluate, load_network, stylize, working_size

__all__ = ['ImageError', 'StylizeSpec', 'content_loss', 'evaluate', 'gram_matrix', 'load_network',
           'read_rgb', 'style_layer_loss', 'stylize', 'total_variation', 'working_size',
           'write_png']
