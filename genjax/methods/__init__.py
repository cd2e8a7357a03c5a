"""Model families ("methods"), registered by name in an explicit dict."""
from __future__ import annotations

import ml_collections

from genjax.methods import classifier, diffusion, gan, vae
from genjax.methods.api import EvalContext, Method

# name -> make(config, image_shape (H, W, C)) -> Method
METHODS = {
    'classifier': classifier.make,
    'diffusion': diffusion.make,
    'gan': gan.make,
    'vae': vae.make,
}


def make_method(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Method:
  """Builds the method named by `config.method.name`, bound to `config` and the data's shape."""
  name = config.method.name
  if name not in METHODS:
    raise ValueError(f'Unknown method.name {name!r}; accepted: {sorted(METHODS)}.')
  return METHODS[name](config, tuple(image_shape))
