"""VGG16 / VGG19 feature extractors (Simonyan & Zisserman 2015) with Keras' layer names.

The convolutional part only (no classifier head): `block{b}_conv{i}` 3x3 SAME convolutions,
each followed by a ReLU, and a 2x2 max pool `block{b}_pool` closing each of the five blocks.
`VGG.__call__` returns the activations of the layers asked for, post-ReLU (as Keras' layers
output them) or pre-ReLU, and stops after the deepest one.

Weights come from a converted `.npz` (`python -m genjax.tools.convert_vgg IN OUT`):
flat keys `block1_conv1/kernel` [3, 3, C_in, C_out] (HWIO, as Keras and flax) and
`block1_conv1/bias` [C_out], plus `meta/arch` ('vgg16' | 'vgg19') and `meta/preprocessing`
('caffe' for Keras' ImageNet weights, 'torch' for torchvision's). The file is read with
`allow_pickle=False`: nothing in it can run code. Without a file, `random_params` gives He et
al. (2015) initialised weights from a seed.
"""
from __future__ import annotations

import functools
import os
from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.nn import conv
from genjax.nn.pool import max_pool

# Convolutions per block; widths per block.
ARCHS = {'vgg16': (2, 2, 3, 3, 3), 'vgg19': (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)
PREPROCESSING = ('caffe', 'torch')
# Keras' "caffe" mode: BGR channel means on 0..255.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# torchvision's ImageNet normalisation on 0..1 (RGB).
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


class WeightsError(ValueError):
  """A weights file that is not VGG weights of the expected architecture."""


def conv_layers(arch: str = 'vgg19') -> tuple[str, ...]:
  """The convolution names in order: ('block1_conv1', 'block1_conv2', 'block2_conv1', ...)."""
  if arch not in ARCHS:
    raise ValueError(f'VGG arch {arch!r} unknown; choose one of {list(ARCHS)}.')
  return tuple(f'block{b + 1}_conv{i + 1}' for b, n in enumerate(ARCHS[arch]) for i in range(n))


def layer_names(arch: str = 'vgg19') -> tuple[str, ...]:
  """Every named layer in order: convolutions and the five `block{b}_pool` layers."""
  names = []
  for b, n in enumerate(ARCHS[arch]):
    names += [f'block{b + 1}_conv{i + 1}' for i in range(n)] + [f'block{b + 1}_pool']
  return tuple(names)


def param_shapes(arch: str = 'vgg19') -> dict[str, dict[str, tuple[int, ...]]]:
  """layer -> {'kernel': (3, 3, C_in, C_out), 'bias': (C_out,)} in network order."""
  shapes, c_in = {}, 3
  for b, n in enumerate(ARCHS[arch]):
    for i in range(n):
      shapes[f'block{b + 1}_conv{i + 1}'] = {'kernel': (3, 3, c_in, WIDTHS[b]),
                                             'bias': (WIDTHS[b],)}
      c_in = WIDTHS[b]
  return shapes


def preprocess(images: jax.Array, mode: str) -> jax.Array:
  """RGB images in [0, 1] -> the network's input for weights trained with `mode`.

  Args:
    images: [..., H, W, 3] RGB, values in [0, 1].
    mode: 'caffe' (Keras' VGG weights: RGB->BGR, x255, minus the BGR ImageNet means) or
      'torch' (torchvision's: (x - mean) / std per RGB channel).

  Returns:
    [..., H, W, 3] float32.
  """
  images = jnp.asarray(images, jnp.float32)
  if mode == 'caffe':
    return images[..., ::-1] * 255.0 - jnp.asarray(CAFFE_MEAN_BGR, jnp.float32)
  if mode == 'torch':
    return (images - jnp.asarray(TORCH_MEAN, jnp.float32)) / jnp.asarray(TORCH_STD, jnp.float32)
  raise ValueError(f'VGG preprocessing {mode!r} unknown; choose one of {list(PREPROCESSING)}.')


class VGG(nn.Module):
  """VGG16/VGG19 convolutional features (Keras' `include_top=False` network).

  Attributes:
    arch: 'vgg16' | 'vgg19'.
    conv_method: genjax.nn.conv formulation (None: its per-layer rule). Speed only.
  """
  arch: str = 'vgg19'
  conv_method: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, layers: Sequence[str], pre_relu: bool = False,
               input_grad_kernels: Mapping[str, jax.Array] | None = None
               ) -> dict[str, jax.Array]:
    """Activations of `layers`.

    Args:
      x: [B, H, W, 3] preprocessed images (`preprocess`).
      layers: names from `layer_names(arch)`.
      pre_relu: convolution outputs before their ReLU (pool layers are unaffected).
      input_grad_kernels: `input_grad_kernels(params)`, computed once, when the weights stay
        fixed over many image gradients (style transfer): each convolution's input gradient
        then uses them instead of transposing its kernel at every call. Values unchanged.

    Returns:
      name -> [B, H / 2^k, W / 2^k, C] for every name in `layers` (k pools before it).
    """
    known = layer_names(self.arch)
    unknown = [name for name in layers if name not in known]
    if unknown:
      raise ValueError(f'{self.arch} has no layer {unknown[0]!r}; its layers: {list(known)}.')
    wanted, last = set(layers), max(known.index(name) for name in layers)
    out = {}
    for b, n in enumerate(ARCHS[self.arch]):
      for i in range(n):
        name = f'block{b + 1}_conv{i + 1}'
        y = conv.Conv(WIDTHS[b], (3, 3), padding='SAME', method=self.conv_method,
                 kernel_init=nn.initializers.he_normal(), name=name)(
                     x, None if input_grad_kernels is None else input_grad_kernels[name])
        x = nn.relu(y)
        if name in wanted:
          out[name] = y if pre_relu else x
        if known.index(name) == last:
          return out
      name = f'block{b + 1}_pool'
      x = max_pool(x, 2, 'VALID')  # flax's values; its gradient is 10x faster on CPU.
      if name in wanted:
        out[name] = x
      if known.index(name) == last:
        return out
    return out


def input_grad_kernels(params: Mapping) -> dict[str, jax.Array]:
  """conv name -> `genjax.nn.conv.input_grad_kernel` of its kernel, [3, 3, C_out, C_in].

  Args:
    params: {'params': {name: {'kernel', 'bias'}}} as `random_params` or `load_weights` give.
  """
  return {name: conv.input_grad_kernel(p['kernel']) for name, p in params['params'].items()}


def random_params(seed: int = 0, arch: str = 'vgg19') -> dict:
  """He et al. (2015) normal kernels (std sqrt(2 / fan_in)), zero biases: {'params': {...}}."""
  rng = np.random.default_rng(seed)
  params = {}
  for name, shapes in param_shapes(arch).items():
    fan_in = int(np.prod(shapes['kernel'][:3]))
    params[name] = {
        'kernel': (rng.standard_normal(shapes['kernel']) * np.sqrt(2.0 / fan_in)).astype(
            np.float32),
        'bias': np.zeros(shapes['bias'], np.float32)}
  return {'params': params}


def check_params(params: Mapping, arch: str) -> None:
  """Raises WeightsError naming the first layer whose weights are missing or mis-shaped.

  Args:
    params: layer -> {'kernel', 'bias'} arrays (the inside of {'params': ...}).
    arch: the architecture they must fit.
  """
  for name, shapes in param_shapes(arch).items():
    if name not in params:
      raise WeightsError(f'the weights have no layer {name} that {arch.upper()} needs '
                         f'(kernel {shapes["kernel"]}); is the file another network?')
    for part, shape in shapes.items():
      got = np.shape(params[name].get(part)) if part in params[name] else None
      if got != shape:
        raise WeightsError(f'{name}/{part} has shape {got} in the weights, {arch.upper()} needs '
                           f'{shape}: not {arch.upper()} weights.')
  extra = [name for name in params if name not in param_shapes(arch)]
  if extra:
    raise WeightsError(f'the weights have a layer {extra[0]} that {arch.upper()} lacks: '
                       f'not {arch.upper()} weights.')


def save_weights(path: str, params: Mapping, arch: str, preprocessing: str) -> None:
  """Writes `params` (layer -> {'kernel', 'bias'}) as the flat .npz `load_weights` reads."""
  check_params(params, arch)
  if preprocessing not in PREPROCESSING:
    raise ValueError(f'preprocessing {preprocessing!r}; choose one of {list(PREPROCESSING)}.')
  flat = {f'{name}/{part}': np.asarray(params[name][part], np.float32)
          for name in param_shapes(arch) for part in ('kernel', 'bias')}
  flat['meta/arch'] = np.asarray(arch)
  flat['meta/preprocessing'] = np.asarray(preprocessing)
  with open(path, 'wb') as f:  # A file object: np.savez would append '.npz' to a bare name.
    np.savez(f, **flat)


def load_weights(path: str, arch: str | None = None) -> tuple[dict, str, str]:
  """Reads a converted VGG .npz without unpickling.

  Args:
    path: the .npz (`python -m genjax.tools.convert_vgg`).
    arch: the architecture expected, or None for the one the file records.

  Returns:
    ({'params': ...} for `VGG(arch).apply`, arch, preprocessing).

  Raises:
    FileNotFoundError: no such file.
    WeightsError: not a converted VGG .npz, or weights of another architecture.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f'VGG weights file {path} does not exist.')
  with open(path, 'rb') as f:
    if f.read(2) != b'PK':
      raise WeightsError(f'{path} is not a converted VGG .npz (not a zip file); convert Keras\' '
                         '.h5 or torchvision\'s .pth with genjax.tools.convert_vgg.')
  try:
    with np.load(path, allow_pickle=False) as z:
      flat = {k: z[k] for k in z.files}
  except (ValueError, OSError, EOFError) as e:
    raise WeightsError(f'{path} is not a converted VGG .npz ({_one_line(e)}); convert Keras\' '
                       '.h5 or torchvision\'s .pth with genjax.tools.convert_vgg.') from e
  if 'meta/arch' not in flat or 'meta/preprocessing' not in flat:
    raise WeightsError(f'{path} has no meta/arch and meta/preprocessing: not written by '
                       '`python -m genjax.tools.convert_vgg`.')
  file_arch, mode = str(flat.pop('meta/arch')), str(flat.pop('meta/preprocessing'))
  params = {}
  for key, value in flat.items():
    name, _, part = key.partition('/')
    params.setdefault(name, {})[part] = value
  try:
    check_params(params, arch or file_arch)
  except WeightsError as e:
    raise WeightsError(f'{path}: {e}') from e
  return {'params': params}, arch or file_arch, mode


def _one_line(text: object) -> str:
  return ' '.join(str(text).split())


@functools.lru_cache(maxsize=None)
def network(arch: str = 'vgg19', conv_method: str | None = None) -> VGG:
  """The flax module (one per arch and method)."""
  return VGG(arch=arch, conv_method=conv_method)
