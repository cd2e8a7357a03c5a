"""ESRGAN's networks (Wang et al. 2018): the RRDB generator and a VGG-style discriminator.

Generator: a 3x3 stem, `num_blocks` residual-in-residual dense blocks (RRDB:
three dense blocks, each added back with residual scaling 0.2, and the three
together added back with 0.2), a 3x3 trunk conv added to the stem's output
(the global residual), pixel shuffle (depth to space) x2 as many times as the
scale needs, a 3x3 conv and the output conv. No BatchNorm anywhere (the
paper's point: it brings artefacts). The dense block is the seed's: five 3x3
convs of `growth` channels, each with LeakyReLU(0.2) and each seeing the
concatenation of everything before it, then a 1x1 fusion back to `features`
channels. `bicubic_skip` adds the bicubic upsampling of the input to the
output, so the network learns the residual, and zeroes the output conv's initial kernel, so
training starts from bicubic (an option, on in genjax's configs; ESRGAN has neither).

Everything is convolutional: any H x W input.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.data import resize
from genjax.nn.conv import Conv

RESIDUAL_SCALE = 0.2  # ESRGAN's residual scaling, in the dense blocks and in each RRDB.


def pixel_shuffle(x: jax.Array, r: int) -> jax.Array:
  """Depth to space, [B, H, W, r*r*C] -> [B, rH, rW, C] (TensorFlow's `depth_to_space` order).

  Output pixel (r h + i, r w + j, c) is input channel (i r + j) C + c at (h, w).
  (PyTorch's `pixel_shuffle` on NCHW reads channel c r^2 + i r + j instead.)
  """
  b, h, w, c = x.shape
  if c % (r * r):
    raise ValueError(f'pixel_shuffle by {r} needs channels divisible by {r * r}; got {c}.')
  x = x.reshape(b, h, w, r, r, c // (r * r)).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * r, w * r, c // (r * r))


def pixel_unshuffle(x: jax.Array, r: int) -> jax.Array:
  """Space to depth, [B, rH, rW, C] -> [B, H, W, r*r*C]: the inverse of `pixel_shuffle`."""
  b, h, w, c = x.shape
  if h % r or w % r:
    raise ValueError(f'pixel_unshuffle by {r} needs sides divisible by {r}; got {h}x{w}.')
  x = x.reshape(b, h // r, r, w // r, r, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // r, w // r, r * r * c)


def _lrelu(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, 0.2)


class DenseBlock(nn.Module):
  """The seed's residual dense block: 5 dense 3x3 convs, 1x1 fusion, x + 0.2 * fused.

  Attributes:
    features: channels in and out (nf).
    growth: channels each dense conv adds (gc).
  """
  features: int = 64
  growth: int = 32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, nf] -> [B, H, W, nf]."""
    h = x
    for i in range(5):
      h = jnp.concatenate([h, _lrelu(Conv(self.growth, (3, 3), name=f'conv{i + 1}')(h))], -1)
    fused = Conv(self.features, (1, 1), name='fusion')(h)
    return x + RESIDUAL_SCALE * fused


class RRDB(nn.Module):
  """Residual in residual dense block: three dense blocks, x + 0.2 * DB3(DB2(DB1(x)))."""
  features: int = 64
  growth: int = 32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, nf] -> [B, H, W, nf]."""
    h = x
    for i in range(3):
      h = DenseBlock(self.features, self.growth, name=f'dense{i + 1}')(h)
    return x + RESIDUAL_SCALE * h


class RRDBNet(nn.Module):
  """The ESRGAN generator: [B, h, w, C] -> [B, scale h, scale w, out_channels].

  Attributes:
    out_channels: C of the output (the images' channels).
    features: nf (64 in the paper).
    growth: gc (32).
    num_blocks: RRDBs (the seed's 16, the paper's 23).
    scale: a power of 2; log2(scale) pixel-shuffle x2 stages.
    bicubic_skip: add the bicubic upsampling of the input to the output.
  """
  out_channels: int = 3
  features: int = 64
  growth: int = 32
  num_blocks: int = 16
  scale: int = 4
  bicubic_skip: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """LR images [B, h, w, C] in [-1, 1] -> SR images [B, scale h, scale w, out_channels]."""
    if self.scale < 2 or self.scale & (self.scale - 1):
      raise ValueError(f'RRDBNet upsamples by powers of 2 (pixel shuffle x2 stages); got {self.scale}.')
    nf = self.features
    stem = Conv(nf, (3, 3), name='conv_first')(x)
    h = stem
    for i in range(self.num_blocks):
      h = RRDB(nf, self.growth, name=f'rrdb{i}')(h)
    h = stem + Conv(nf, (3, 3), name='conv_body')(h)  # The global residual.
    for i in range(self.scale.bit_length() - 1):
      h = _lrelu(pixel_shuffle(Conv(4 * nf, (3, 3), name=f'conv_up{i + 1}')(h), 2))
    h = _lrelu(Conv(nf, (3, 3), name='conv_hr')(h))
    # With the bicubic skip the output conv starts at zero: training starts from bicubic.
    init = nn.initializers.zeros if self.bicubic_skip else nn.linear.default_kernel_init
    out = Conv(self.out_channels, (3, 3), kernel_init=init, name='conv_last')(h)
    if self.bicubic_skip:
      out = out + resize.upsample_bicubic(x[..., :self.out_channels], self.scale)
    return out


def conv_params(k: int, c_in: int, c_out: int) -> int:
  """Parameters of a k x k conv with bias: k*k*c_in*c_out + c_out."""
  return k * k * c_in * c_out + c_out


def rrdbnet_num_params(in_channels: int, out_channels: int, features: int, growth: int,
                       num_blocks: int, scale: int = 4) -> int:
  """RRDBNet's parameter count, by the formula (for checking the module, and for the README)."""
  nf, gc = features, growth
  dense = sum(conv_params(3, nf + i * gc, gc) for i in range(5)) + conv_params(1, nf + 5 * gc, nf)
  ups = (scale.bit_length() - 1) * conv_params(3, nf, 4 * nf)
  return (conv_params(3, in_channels, nf) + num_blocks * 3 * dense + conv_params(3, nf, nf) + ups
          + conv_params(3, nf, nf) + conv_params(3, nf, out_channels))


class Discriminator(nn.Module):
  """ESRGAN's VGG-style discriminator, without BatchNorm: [B, H, W, C] -> logits [B].

  A 3x3 conv, then per width a 3x3 conv and a 4x4 stride-2 SAME conv (LeakyReLU 0.2
  after each), global average pooling (so any input size works), dense 100, dense 1.
  No BatchNorm: the relativistic loss compares each image with the batch's mean
  already, and batch statistics would need state the step would have to carry.

  Attributes:
    widths: channels of each stride-2 stage.
  """
  widths: Sequence[int] = (64, 128, 256, 512, 512)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Images [B, H, W, C] in [-1, 1] -> real-vs-fake logits [B]."""
    h = _lrelu(Conv(self.widths[0], (3, 3), name='conv0')(x))
    for i, width in enumerate(self.widths):
      if i:
        h = _lrelu(Conv(width, (3, 3), name=f'conv{i}_0')(h))
      h = _lrelu(Conv(width, (4, 4), strides=2, name=f'conv{i}_1')(h))
    h = jnp.mean(h, axis=(1, 2))
    h = _lrelu(nn.Dense(100, name='dense0')(h))
    return nn.Dense(1, name='dense1')(h)[:, 0]
