"""Converts a user's VGG16/VGG19 weights to the .npz genjax.models.vgg loads, once.

    genjax convert-vgg --input=vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 --output=vgg19.npz
    genjax convert-vgg --input=vgg19-dcbb9e9d.pth --output=vgg19_torch.npz
    genjax convert-vgg --input=vgg16-397923af.pth --output=vgg16.npz --arch=vgg16
    genjax stylize --content=photo.jpg --style=painting.png --out=out.png --weights=vgg19.npz

Keras' `.h5` (the legacy weights layout, a full saved model's `model_weights/`, or a Keras 3
`.weights.h5`) is read with h5py: each 4-D dataset under a path naming `block{b}_conv{i}` is
that layer's kernel (HWIO, as genjax), each 1-D one its bias. torchvision's `.pth` state dict
(`features.N.weight` [C_out, C_in, 3, 3], `features.N.bias`) is read with
`torch.load(weights_only=True)`, which refuses pickled code, and transposed to HWIO. h5py and
torch are imported here only, when needed. The result is checked against the architecture
(the first layer whose shape differs is named) and written with its preprocessing: 'caffe' for
Keras' weights, 'torch' for torchvision's. `python -m genjax.tools.convert_vgg IN OUT` (VGG19)
still works.
"""
from __future__ import annotations

import os
import re
import sys

import numpy as np

from genjax.models import vgg

_KERAS_LAYER = re.compile(r'(block\d_conv\d)')


def torch_conv_indices(arch: str = 'vgg19') -> dict[str, int]:
  """layer -> index N of `features.N` in torchvision's VGG (conv, ReLU, ..., max pool)."""
  out, index = {}, 0
  for b, n in enumerate(vgg.ARCHS[arch]):
    for i in range(n):
      out[f'block{b + 1}_conv{i + 1}'] = index
      index += 2  # The conv and its ReLU.
    index += 1  # The max pool.
  return out


def read_keras_h5(path: str) -> dict:
  """layer -> {'kernel', 'bias'} from a Keras VGG .h5 (any of Keras' layouts)."""
  try:
    import h5py  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('reading Keras .h5 weights needs h5py: pip install h5py') from e
  params = {}

  def visit(name, obj):
    if not isinstance(obj, h5py.Dataset):
      return
    match = _KERAS_LAYER.search(name)
    if match is None:
      return
    part = {4: 'kernel', 1: 'bias'}.get(obj.ndim)
    if part is None:
      raise vgg.WeightsError(f'{path}: dataset {name} has shape {obj.shape}, neither a 3x3 '
                             'kernel nor a bias.')
    params.setdefault(match.group(1), {})[part] = np.asarray(obj[()], np.float32)

  try:
    with h5py.File(path, 'r') as f:
      f.visititems(visit)
  except OSError as e:
    raise vgg.WeightsError(f'{path} is not an HDF5 file: {e}') from e
  return params


def read_torch_state_dict(path: str, arch: str = 'vgg19') -> dict:
  """layer -> {'kernel' HWIO, 'bias'} from torchvision's VGG state dict (`features.N.*`)."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('reading a .pth state dict needs torch: pip install torch') from e
  try:
    state = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  # torch raises many kinds.
    raise vgg.WeightsError(f'{path} is not a torch state dict of tensors: '
                           f'{" ".join(str(e).split())[:300]}') from e
  if not isinstance(state, dict):
    raise vgg.WeightsError(f'{path} holds a {type(state).__name__}, not a state dict.')
  state = {k.removeprefix('module.'): v for k, v in state.items()}
  convs = sorted({int(m.group(1)) for k in state
                  if (m := re.fullmatch(r'features\.(\d+)\.weight', k))})
  expected = torch_conv_indices(arch)
  params = {}
  for name, index in expected.items():
    if index not in convs:
      have = f'features.{convs}' if convs else 'no features.N.weight keys'
      raise vgg.WeightsError(f'{path}: {name} should be features.{index}.weight in '
                             f'torchvision\'s {arch.upper()}, but the file has {have}.')
    weight = state[f'features.{index}.weight'].detach().cpu().numpy()
    bias = state[f'features.{index}.bias'].detach().cpu().numpy()
    kernel = weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight
    params[name] = {'kernel': kernel.astype(np.float32), 'bias': bias.astype(np.float32)}
  extra = sorted(set(convs) - set(expected.values()))
  if extra:
    raise vgg.WeightsError(f'{path} has features.{extra[0]}.weight, which torchvision\'s '
                           f'{arch.upper()} lacks: not {arch.upper()} weights.')
  return params


def convert(source: str, output: str, arch: str = 'vgg19') -> str:
  """Reads `source` (.h5 Keras or .pth/.pt torchvision), checks it, writes `output`.

  Returns:
    the preprocessing the weights need ('caffe' | 'torch').

  Raises:
    FileNotFoundError: no `source`.
    WeightsError: not VGG weights of `arch` (the first mismatching layer and shapes named).
  """
  if not os.path.isfile(source):
    raise FileNotFoundError(f'weights file {source} does not exist.')
  with open(source, 'rb') as f:
    magic = f.read(8)
  if magic == b'\x89HDF\r\n\x1a\n':
    params, mode = read_keras_h5(source), 'caffe'
  elif magic[:2] == b'PK' or source.endswith(('.pth', '.pt')):
    params, mode = read_torch_state_dict(source, arch), 'torch'
  else:
    raise vgg.WeightsError(f'{source} is neither an HDF5 (.h5, Keras) nor a zip (.pth, torch) '
                           'file.')
  try:
    vgg.check_params(params, arch)
  except vgg.WeightsError as e:
    raise vgg.WeightsError(f'{source}: {e}') from e
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  vgg.save_weights(output, params, arch, mode)
  return mode


def main(argv: list[str]) -> int:
  """`python -m genjax.tools.convert_vgg INPUT OUTPUT`: 0, or 2 with one line on stderr."""
  if len(argv) != 2:
    print('usage: python -m genjax.tools.convert_vgg INPUT(.h5|.pth) OUTPUT.npz', file=sys.stderr)
    return 2
  try:
    mode = convert(*argv)
  except (FileNotFoundError, ImportError, vgg.WeightsError) as e:
    print(f'convert_vgg: {type(e).__name__}: {" ".join(str(e).split())}', file=sys.stderr)
    return 2
  print(f'Wrote {argv[1]} (VGG19, {mode} preprocessing).')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
