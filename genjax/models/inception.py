"""InceptionV3 as used for FID: the 2015-12-05 TensorFlow graph, as ported by pytorch-fid.

This is the network behind published FID/IS/KID numbers. It differs from the
Inception of torchvision/Keras (Szegedy et al. 2016) in ways that change
the features, so they are reproduced here:
  * the pooling branch of the A, C and first E blocks averages with
    count_include_pad=False (TF's 'SAME' average pool ignores padding);
  * the last E block (Mixed_7c) max-pools in its pooling branch;
  * the classifier has 1008 outputs (1000 ImageNet classes + unused ones);
  * BatchNorm eps is 1e-3, in inference mode (running statistics).
Parameter names mirror pytorch-fid's state_dict (Conv2d_1a_3x3/conv,
Mixed_5b/branch1x1/bn, ...), so converted weights map one to one
(genjax.metrics.inception_weights).

Input: float NHWC images in `input_range` ([-1, 1] by default, the project's
convention; (0, 1) gives pytorch-fid's convention), any size, 1 or 3
channels. Grayscale is replicated to 3 channels (the usual way to feed MNIST
to Inception). Images are resized to 299x299 by bilinear interpolation with
half-pixel centres and no antialiasing (`resize_bilinear`), the same map as
pytorch-fid's `F.interpolate(x, (299, 299), mode='bilinear',
align_corners=False)` when up- or downsampling. (`jax.image.resize(...,
'bilinear')` agrees when upsampling but antialiases when downsampling; the
original TF FID code resizes inside the graph with TF1's ResizeBilinear,
align_corners=False without half-pixel centres, which samples a slightly
shifted grid: FIDs from TF and from pytorch-fid differ slightly, and ours
follow pytorch-fid.)

Output: pool3 features [N, 2048] (the mean of the last 8x8x2048 map, FID's
features) and logits [N, 1008].
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008
BN_EPSILON = 1e-3
# Full float32 convolutions and matmuls: the default precision of TPUs (bfloat16
# passes) and of recent GPUs (TF32) would move the features, and FID with them.
PRECISION = jax.lax.Precision.HIGHEST


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] float64 weights of 1-D bilinear resampling with half-pixel centres.

  Output pixel i reads source coordinate s = (i + 0.5) * n_in / n_out - 0.5,
  clamped below at 0, interpolating pixels floor(s) and floor(s) + 1 (clamped
  at n_in - 1): the definition of torch's `F.interpolate(mode='bilinear',
  align_corners=False)`, with no antialiasing.
  """
  src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
  i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
  i1 = np.minimum(i0 + 1, n_in - 1)
  frac = src - i0
  weights = np.zeros((n_out, n_in))
  np.add.at(weights, (np.arange(n_out), i0), 1.0 - frac)
  np.add.at(weights, (np.arange(n_out), i1), frac)
  return weights


def resize_bilinear(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """Resizes [N, H, W, C] to [N, size, size, C] like pytorch-fid (`bilinear_matrix` per axis).

  Two matmuls with weights computed in float64, so the result is as exact as
  float32 allows (jax.image.scale_and_translate(..., antialias=False) is the
  same map but builds its weights in float32: ~1e-4 off when downsampling).
  """
  _, h, w, _ = images.shape
  if (h, w) == (size, size):
    return images
  rows = jnp.asarray(bilinear_matrix(h, size), images.dtype)  # [size, H]
  cols = jnp.asarray(bilinear_matrix(w, size), images.dtype)  # [size, W]
  x = jnp.einsum('oh,nhwc->nowc', rows, images, precision=jax.lax.Precision.HIGHEST)
  return jnp.einsum('pw,nowc->nopc', cols, x, precision=jax.lax.Precision.HIGHEST)


def preprocess(images: jax.Array, input_range: Sequence[float] = (-1.0, 1.0),
               resize: bool = True) -> jax.Array:
  """Images -> the network's input: 3 channels, 299x299, values in [-1, 1].

  Args:
    images: [N, H, W, C] floats in input_range, C in {1, 3}.
    input_range: (low, high) of the pixel values.
    resize: resize to 299x299 (pytorch-fid's default); without it the
      network is applied at the given size (it is fully convolutional up to
      pool3; H, W >= 75).

  Returns:
    [N, 299, 299, 3] (or [N, H, W, 3] without resize) float32 in [-1, 1].
  """
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError('InceptionV3 takes images [N, H, W, C] with C in {1, 3}; '
                     f'got shape {images.shape}.')
  low, high = input_range
  if not high > low:
    raise ValueError(f'input_range must be (low, high) with high > low; got {input_range}.')
  x = images.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if resize:
    x = resize_bilinear(x)
  return (x - low) * (2.0 / (high - low)) - 1.0


class BasicConv(nn.Module):
  """Conv (no bias) -> BatchNorm (inference, eps 1e-3) -> ReLU; torchvision's BasicConv2d."""
  features: int
  kernel_size: tuple[int, int]
  strides: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel_size, strides=self.strides, padding=((ph, ph), (pw, pw)),
                use_bias=False, precision=PRECISION, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name='bn')(x)
    return nn.relu(x)


def _avg_pool_3x3(x):
  # TF's 'SAME' average pool divides by the number of real (unpadded) pixels.
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding='VALID')


class InceptionA(nn.Module):
  """Mixed_5b/c/d (35x35): 1x1, 5x5, double 3x3 and pooling branches."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(64, (1, 1), name='branch1x1')(x)
    b5 = BasicConv(48, (1, 1), name='branch5x5_1')(x)
    b5 = BasicConv(64, (5, 5), padding=(2, 2), name='branch5x5_2')(b5)
    b3 = BasicConv(64, (1, 1), name='branch3x3dbl_1')(x)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(b3)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name='branch3x3dbl_3')(b3)
    bp = BasicConv(self.pool_features, (1, 1), name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: 35x35 -> 17x17 reduction."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, (3, 3), strides=2, name='branch3x3')(x)
    bd = BasicConv(64, (1, 1), name='branch3x3dbl_1')(x)
    bd = BasicConv(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
    bd = BasicConv(96, (3, 3), strides=2, name='branch3x3dbl_3')(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b..6e (17x17): factorized 7x7 branches (1x7 then 7x1)."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    b1 = BasicConv(192, (1, 1), name='branch1x1')(x)
    b7 = BasicConv(c, (1, 1), name='branch7x7_1')(x)
    b7 = BasicConv(c, (1, 7), padding=(0, 3), name='branch7x7_2')(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name='branch7x7_3')(b7)
    bd = BasicConv(c, (1, 1), name='branch7x7dbl_1')(x)
    bd = BasicConv(c, (7, 1), padding=(3, 0), name='branch7x7dbl_2')(bd)
    bd = BasicConv(c, (1, 7), padding=(0, 3), name='branch7x7dbl_3')(bd)
    bd = BasicConv(c, (7, 1), padding=(3, 0), name='branch7x7dbl_4')(bd)
    bd = BasicConv(192, (1, 7), padding=(0, 3), name='branch7x7dbl_5')(bd)
    bp = BasicConv(192, (1, 1), name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: 17x17 -> 8x8 reduction."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(192, (1, 1), name='branch3x3_1')(x)
    b3 = BasicConv(320, (3, 3), strides=2, name='branch3x3_2')(b3)
    b7 = BasicConv(192, (1, 1), name='branch7x7x3_1')(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = BasicConv(192, (3, 3), strides=2, name='branch7x7x3_4')(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b/7c (8x8): expanded 1x3 / 3x1 branches.

  Attributes:
    max_pool: the pooling branch max-pools (Mixed_7c of the FID graph, see
      the module docstring) instead of averaging (Mixed_7b).
  """
  max_pool: bool = False

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(320, (1, 1), name='branch1x1')(x)
    b3 = BasicConv(384, (1, 1), name='branch3x3_1')(x)
    b3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name='branch3x3_2a')(b3),
                          BasicConv(384, (3, 1), padding=(1, 0), name='branch3x3_2b')(b3)], axis=-1)
    bd = BasicConv(448, (1, 1), name='branch3x3dbl_1')(x)
    bd = BasicConv(384, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name='branch3x3dbl_3a')(bd),
                          BasicConv(384, (3, 1), padding=(1, 0), name='branch3x3dbl_3b')(bd)], axis=-1)
    if self.max_pool:
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    else:
      pooled = _avg_pool_3x3(x)
    bp = BasicConv(192, (1, 1), name='branch_pool')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
  """The FID InceptionV3: images -> (pool3 features [N, 2048], logits [N, 1008]).

  Attributes:
    input_range: (low, high) of input pixel values; (-1, 1) or (0, 1).
    resize: bilinearly resize inputs to 299x299 first (as pytorch-fid does).
    num_classes: outputs of the final dense layer (1008 for the FID weights).
  """
  input_range: tuple[float, float] = (-1.0, 1.0)
  resize: bool = True
  num_classes: int = NUM_CLASSES

  def _trunk(self, x: jax.Array) -> jax.Array:
    """Pool3 features [N, 2048] of preprocessed inputs [N, H, W, 3]; called from `__call__`."""
    x = BasicConv(32, (3, 3), strides=2, name='Conv2d_1a_3x3')(x)  # 149x149
    x = BasicConv(32, (3, 3), name='Conv2d_2a_3x3')(x)  # 147x147
    x = BasicConv(64, (3, 3), padding=(1, 1), name='Conv2d_2b_3x3')(x)
    x = _max_pool_3x3_s2(x)  # 73x73
    x = BasicConv(80, (1, 1), name='Conv2d_3b_1x1')(x)
    x = BasicConv(192, (3, 3), name='Conv2d_4a_3x3')(x)  # 71x71
    x = _max_pool_3x3_s2(x)  # 35x35
    x = InceptionA(32, name='Mixed_5b')(x)
    x = InceptionA(64, name='Mixed_5c')(x)
    x = InceptionA(64, name='Mixed_5d')(x)
    x = InceptionB(name='Mixed_6a')(x)  # 17x17
    x = InceptionC(128, name='Mixed_6b')(x)
    x = InceptionC(160, name='Mixed_6c')(x)
    x = InceptionC(160, name='Mixed_6d')(x)
    x = InceptionC(192, name='Mixed_6e')(x)
    x = InceptionD(name='Mixed_7a')(x)  # 8x8
    x = InceptionE(name='Mixed_7b')(x)
    x = InceptionE(max_pool=True, name='Mixed_7c')(x)
    return jnp.mean(x, axis=(1, 2))  # [N, 2048]

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Pool3 features and logits.

    Args:
      images: [N, H, W, C] floats in input_range, C in {1, 3}.

    Returns:
      (features [N, 2048], logits [N, num_classes]).
    """
    features = self._trunk(preprocess(images, self.input_range, self.resize))
    return features, nn.Dense(self.num_classes, precision=PRECISION, name='fc')(features)
