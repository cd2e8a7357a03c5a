"""Weights files: a pytree as a flat .npz ('/'-joined keys) with a .json beside it holding
its sha256 and provenance. Loading checks the hash, so a changed or damaged
file never scores silently."""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

import flax
import jax
import numpy as np

from genjax.core.file_manifest import sha256  # Part of this module's API.


def save(tree: Any, path: str, info: Mapping | None = None) -> str:
  """Writes `tree` (nested dicts of arrays) to `path` and `<path>.json`; returns the sha256."""
  flat = flax.traverse_util.flatten_dict(jax.device_get(dict(tree)), sep='/')
  with open(path, 'wb') as f:  # A file object: np.savez would append '.npz' to a bare name.
    np.savez(f, **{k: np.asarray(v) for k, v in flat.items()})
  digest = sha256(path)
  with open(path + '.json', 'w') as f:
    json.dump({**(info or {}), 'sha256': digest}, f, indent=2, sort_keys=True)
    f.write('\n')
  return digest


def load(path: str) -> tuple[dict, dict]:
  """(tree, info) from `save`; raises ValueError if the file's hash differs from its .json."""
  info = {}
  if os.path.isfile(path + '.json'):
    with open(path + '.json') as f:
      info = json.load(f)
    digest = sha256(path)
    if info.get('sha256') not in (None, digest):
      raise ValueError(f'{path} has sha256 {digest}, but {path}.json records {info["sha256"]}: '
                       'the weights file was changed or damaged.')
  with np.load(path) as z:
    tree = flax.traverse_util.unflatten_dict({k: z[k] for k in z.files}, sep='/')
  return tree, info
