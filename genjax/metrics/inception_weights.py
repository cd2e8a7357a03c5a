"""Pretrained FID InceptionV3 weights: from pytorch-fid's state_dict to a local .npz, and back.

The weights cannot be downloaded at run time. A user fetches pytorch-fid's
`pt_inception-2015-12-05-6726825d.pth` once on a machine with internet
access, converts it with `genjax convert-inception` (genjax.tools.convert_inception,
no torch needed) and passes the .npz path. The .npz holds the flax variables
{'params', 'batch_stats'} flattened with '/' keys; a `<path>.json` beside it
records the source file and the .npz's sha256, checked on load.
"""
from __future__ import annotations

import functools
import os
from typing import Callable, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np

from genjax.metrics import weights_file
from genjax.models.inception import INPUT_SIZE, InceptionV3

WEIGHTS_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
               'pt_inception-2015-12-05-6726825d.pth')
# torch.hub names files <name>-<first 8 hex digits of their sha256>.pth.
SHA256_PREFIX = '6726825d'
CONVERT_COMMAND = ('genjax convert-inception '
                   '--input=pt_inception-2015-12-05-6726825d.pth --output=inception_fid.npz')

# state_dict entries with no counterpart in the FID network.
_IGNORED_SUFFIXES = ('num_batches_tracked',)
_IGNORED_PREFIXES = ('AuxLogits.',)
_BN_LEAVES = {'weight': ('params', 'scale'), 'bias': ('params', 'bias'),
              'running_mean': ('batch_stats', 'mean'), 'running_var': ('batch_stats', 'var')}


def _missing_file_message(path: str) -> str:
  return (f'InceptionV3 weights file {path!r} is missing. Weights cannot be downloaded at run time; '
          f'make the file once on a machine with internet access: download {WEIGHTS_URL} and run\n'
          f'  {CONVERT_COMMAND}\n'
          '(no torch needed; `genjax convert-inception --help`), then pass the .npz path. '
          'Offline alternative: the bundled MNIST classifier feature extractor '
          "(--config.eval.feature_extractor='mnist5k_classifier'), whose numbers are comparable only "
          'with other runs of that extractor.')


def variables_from_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict:
  """Maps pytorch-fid's InceptionV3 state_dict to flax variables.

  'X.conv.weight' [O, I, kh, kw] -> params X/conv/kernel [kh, kw, I, O] (OIHW -> HWIO);
  'X.bn.weight/bias/running_mean/running_var' -> params X/bn/scale, bias and
  batch_stats X/bn/mean, var; 'fc.weight' [1008, 2048] -> params fc/kernel
  [2048, 1008] (transposed), 'fc.bias' -> fc/bias. num_batches_tracked and
  AuxLogits entries are dropped. Does not check completeness: see `check_variables`.

  Args:
    state_dict: name -> numpy array, in PyTorch layouts.

  Returns:
    {'params': ..., 'batch_stats': ...} nested dicts of float32 numpy arrays.

  Raises:
    ValueError: on a name or rank that is not part of the network.
  """
  flat = {}
  for name, value in state_dict.items():
    if name.endswith(_IGNORED_SUFFIXES) or name.startswith(_IGNORED_PREFIXES):
      continue
    value = np.asarray(value, np.float32)
    *path, kind, leaf = name.split('.')
    if kind == 'conv' and leaf == 'weight' and value.ndim == 4:
      flat[('params', *path, 'conv', 'kernel')] = value.transpose(2, 3, 1, 0)
    elif kind == 'bn' and leaf in _BN_LEAVES and value.ndim == 1:
      collection, new_leaf = _BN_LEAVES[leaf]
      flat[(collection, *path, 'bn', new_leaf)] = value
    elif not path and kind == 'fc' and leaf == 'weight' and value.ndim == 2:
      flat[('params', 'fc', 'kernel')] = value.T
    elif not path and kind == 'fc' and leaf == 'bias' and value.ndim == 1:
      flat[('params', 'fc', 'bias')] = value
    else:
      raise ValueError(f'Unexpected state_dict entry {name!r} of shape {value.shape}: not a weight of '
                       "pytorch-fid's FID InceptionV3 (is this the right .pth file?).")
  return flax.traverse_util.unflatten_dict(flat)


@functools.lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
  """'collection/module/.../leaf' -> shape of every variable of `InceptionV3()`."""
  images = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
  shapes = jax.eval_shape(InceptionV3().init, jax.random.key(0), images)
  return {k: tuple(v.shape) for k, v in flax.traverse_util.flatten_dict(shapes, sep='/').items()}


def check_variables(variables: Mapping) -> None:
  """Raises ValueError naming missing, unexpected and mis-shaped variables, if any."""
  flat = flax.traverse_util.flatten_dict(dict(variables), sep='/')
  got = {k: tuple(np.shape(v)) for k, v in flat.items()}
  want = expected_shapes()
  missing = sorted(set(want) - set(got))
  unexpected = sorted(set(got) - set(want))
  wrong = sorted(f'{k}: {got[k]} (expected {want[k]})'
                 for k in set(got) & set(want) if got[k] != want[k])
  if missing or unexpected or wrong:
    show = lambda items: ', '.join(items[:5]) + (f' ... ({len(items)} in all)' if len(items) > 5 else '')
    problems = (('missing', missing), ('unexpected', unexpected), ('wrong shape', wrong))
    raise ValueError('These are not the FID InceptionV3 variables: '
                     + '; '.join(f'{what}: {show(items)}' for what, items in problems if items))


def save_variables(variables: Mapping, path: str, info: Mapping | None = None) -> str:
  """Writes checked variables to `path` (.npz, '/' keys) and `<path>.json`; returns the sha256."""
  check_variables(variables)
  return weights_file.save(jax.tree.map(lambda v: np.asarray(v, np.float32), dict(variables)),
                           path, info)


def load_inception_variables(path: str) -> dict:
  """Loads converted FID InceptionV3 weights.

  Args:
    path: the .npz written by `genjax convert-inception`.

  Returns:
    {'params': ..., 'batch_stats': ...} for `InceptionV3().apply`.

  Raises:
    FileNotFoundError: if the file is missing (the message says how to make it).
    ValueError: if the file's hash differs from its .json, or the arrays are
      not the network's.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(_missing_file_message(path))
  variables, _ = weights_file.load(path)
  check_variables(variables)
  return variables


def make_inception_apply(variables: Mapping, input_range: tuple[float, float] = (-1.0, 1.0)
                         ) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
  """A jitted images -> (pool3 features, class probabilities) function.

  Args:
    variables: from `load_inception_variables`.
    input_range: (low, high) of the images' pixel values.

  Returns:
    fn(images [B, H, W, C] in input_range, C in {1, 3}) -> (pool3 features
    [B, 2048], class probabilities [B, 1008]): the inputs of FID/KID/
    precision-recall and of the Inception Score. The probabilities are the
    softmax of the 1008 logits *without* the fc bias, pool3 @ W, as the
    original Inception Score code computes them (torch-fidelity's default
    'logits_unbiased' too).
  """
  model = InceptionV3(input_range=tuple(input_range))

  @jax.jit
  def apply(variables, images):
    features, _ = model.apply(variables, images)
    unbiased_logits = jnp.matmul(features, variables['params']['fc']['kernel'],
                                 precision=jax.lax.Precision.HIGHEST)
    return features, jax.nn.softmax(unbiased_logits, axis=-1)

  # Variables are an argument, not closed-over constants baked into the program.
  return functools.partial(apply, jax.tree.map(jnp.asarray, dict(variables)))
