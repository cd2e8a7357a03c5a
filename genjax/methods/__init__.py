"""Model families ("methods"), registered by name in an explicit dict."""
from __future__ import annotations

import ml_collections

from genjax.methods import classifier
from genjax.methods.api import EvalContext, Method

# name -> make(config) -> Method
METHODS = {
    'classifier': classifier.make,
}


def make_method(config: ml_collections.ConfigDict) -> Method:
  """Builds the method named by `config.method.name`, bound to `config`."""
  name = config.method.name
  if name not in METHODS:
    raise ValueError(f'Unknown method.name {name!r}; accepted: {sorted(METHODS)}.')
  return METHODS[name](config)
