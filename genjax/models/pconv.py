"""Inpainting networks: partial convolutions (Liu et al. 2018) and the seed's masked autoencoder.

Masks are [B, H, W, 1] with 1 = known pixel (genjax/data/masks.py).

A partial convolution (Liu et al. 2018, eq. 1-2) at each window with mask M:

    x' = W^T (X * M) sum(1) / sum(M) + b   where sum(M) > 0,   0 otherwise;
    m' = 1 if sum(M) > 0 else 0,

sum(1) the window's size (kh kw; the mask has one channel). The seed's `PartialConv2D`
scales the conv *with* its bias by k^2 / (sum(M) + 1e-8), so empty windows blow the bias
up by 1e8 and the bias is re-scaled with the data; here the ratio multiplies the bias-free
conv and empty windows give exactly 0 (then the bias, as the paper's eq. 1 has b only for
sum(M) > 0: 0 everywhere for an empty window).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from genjax.nn.conv import Conv, ConvTranspose


def window_sums(mask: jax.Array, kernel_size: Sequence[int], strides: Sequence[int]
                ) -> jax.Array:
  """sum(M) over each SAME-padded conv window of a [B, H, W, 1] mask: [B, Ho, Wo, 1].

  The padding counts as known (mask 1): the conv sees zeros there, as an ordinary
  zero-padded conv does, so an all-ones mask gives exactly the ordinary convolution.
  (NVIDIA's implementation pads the mask with 0, re-weighting border windows even without
  holes: Liu et al.'s later "partial convolution based padding".)
  """
  window, stride = (1, *kernel_size, 1), (1, *strides, 1)
  pads = lax.padtype_to_pads(mask.shape, window, stride, 'SAME')
  padded = jnp.pad(mask, pads, constant_values=1.0)
  return lax.reduce_window(padded, 0.0, lax.add, window, stride, 'VALID')


def renormalize(conv_out: jax.Array, bias: jax.Array | None, sums: jax.Array,
                window_size: int) -> tuple[jax.Array, jax.Array]:
  """The partial conv from a bias-free conv of X * M: (output, updated mask).

  Args:
    conv_out: W^T (X * M), [B, Ho, Wo, C].
    bias: [C] or None.
    sums: sum(M) per window, [B, Ho, Wo, 1].
    window_size: sum(1) = kh kw.

  Returns:
    (x' [B, Ho, Wo, C], m' [B, Ho, Wo, 1]).
  """
  # The ratio in float32 (the sums are counts, exact in any float), rounded once to the
  # conv's dtype: a float32 ratio would promote a bf16 network's later layers to float32.
  sums = sums.astype(jnp.float32)
  known = sums > 0
  ratio = jnp.where(known, window_size / jnp.where(known, sums, 1.0), 0.0)
  out = conv_out * ratio.astype(conv_out.dtype)
  if bias is not None:
    # The add in float32, so that the bias's gradient (a sum of the output gradient over
    # every position) is summed in float32: summed in bf16 it loses the small terms.
    total = out.astype(jnp.float32) + bias.astype(jnp.float32)
    out = jnp.where(known, total.astype(out.dtype), 0.0)
  return out, known.astype(conv_out.dtype)


class PartialConv2D(nn.Module):
  """A partial convolution with mask update and sum(1)/sum(M) re-normalisation.

  Attributes:
    features: C_out.
    kernel_size: (kh, kw).
    strides: (sh, sw).
    use_bias: add a bias after the re-normalisation (where the window saw a known pixel).
  """
  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: Sequence[int] = (1, 1)
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(x [B, H, W, C], mask [B, H, W, 1]) -> (x' [B, Ho, Wo, features], m' [B, Ho, Wo, 1])."""
    ks, st = tuple(self.kernel_size), tuple(self.strides)
    out = Conv(self.features, ks, st, padding='SAME', use_bias=False, name='conv')(x * mask)
    bias = (self.param('bias', nn.initializers.zeros_init(), (self.features,))
            if self.use_bias else None)
    sums = window_sums(mask.astype(jnp.float32), ks, st)  # Counts <= kh kw, in float32.
    return renormalize(out, bias, sums, ks[0] * ks[1])


def _upsample(x: jax.Array, like: jax.Array) -> jax.Array:
  """Nearest 2x upsampling of [B, h, w, C], cropped to the skip's size (28 -> 14 -> 7 -> 4
  comes back as 4 -> 8 -> 7): [B, H, W, C] with (H, W) = like's."""
  x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  return x[:, :like.shape[1], :like.shape[2]]


@jax.custom_vjp
def clip_to_range(x: jax.Array) -> jax.Array:
  """clip(x, -1, 1) exactly (any shape). Its gradient: the identity inside [-1, 1]; past a
  bound, only the part that would move x back inside (a plain clip passes none there, and a
  network whose outputs all fall below -1 then never learns again)."""
  return jnp.clip(x, -1.0, 1.0)


def _clip_to_range_fwd(x):
  return clip_to_range(x), x


def _clip_to_range_bwd(x, g):
  # Gradient descent moves x by -g: below -1 keep g < 0 (x goes up), above 1 keep g > 0.
  return (jnp.where(x < -1.0, jnp.minimum(g, 0.0), jnp.where(x > 1.0, jnp.maximum(g, 0.0), g)),)


clip_to_range.defvjp(_clip_to_range_fwd, _clip_to_range_bwd)


# The last layer's choices (`PConvUNet.output`).
OUTPUTS = ('linear', 'tanh', 'clip')


class PConvUNet(nn.Module):
  """The partial-convolution U-Net (Liu et al. 2018), scaled to small images.

  Encoder: partial convs of stride 2 (ReLU). Decoder: nearest upsampling of the features
  and of the mask, concatenated with the encoder's features and mask at that scale (the
  image and the input mask at the last), then a partial conv (LeakyReLU 0.2). The paper's
  BatchNorm is left out: the one training loop's state carries no batch statistics.

  Attributes:
    channels: widths of the encoder levels (each halves the resolution).
    kernel_sizes: kernel of each encoder level (the paper's 7, 5, 5, 3, ...); the decoder
      uses 3x3.
    out_channels: C of the images.
    output: 'linear' (the paper's last layer, no activation) | 'tanh' (as the seed's
      autoencoder: a constant background at -1 is then approached by saturation, where a
      linear output under L1 jitters around it by a few grey levels) | 'clip' (the linear
      output clipped to the data range [-1, 1] in training too (`clip_to_range`): where the
      truth sits at a bound, as MNIST's black background does, an overshoot has zero error
      and costs nothing, so the network need not aim at -1 exactly to hit it; a pixel past
      a bound whose truth is inside still gets the gradient that moves it back, so the
      network cannot die below -1, and nothing saturates as tanh does).
  """
  channels: Sequence[int] = (32, 64, 128)
  kernel_sizes: Sequence[int] = (5, 3, 3)
  out_channels: int = 1
  output: str = 'linear'

  @nn.compact
  def __call__(self, images: jax.Array, mask: jax.Array) -> jax.Array:
    """Raw prediction [B, H, W, C] of images [B, H, W, C] in [-1, 1] with holes mask [B, H, W, 1]."""
    if self.output not in OUTPUTS:
      raise ValueError(f'PConvUNet: output={self.output!r}; use one of {OUTPUTS}.')
    if len(self.kernel_sizes) != len(self.channels):
      raise ValueError(f'PConvUNet: {len(self.channels)} channels but {len(self.kernel_sizes)} '
                       'kernel sizes; give one per level.')
    skips = [(images, mask)]
    x, m = images, mask
    for i, (c, k) in enumerate(zip(self.channels, self.kernel_sizes)):
      x, m = PartialConv2D(c, (k, k), (2, 2), name=f'enc{i}')(x, m)
      x = nn.relu(x)
      skips.append((x, m))
    skips.pop()
    widths = list(self.channels[:-1])[::-1] + [self.out_channels]
    for i, ((skip_x, skip_m), c) in enumerate(zip(skips[::-1], widths)):
      x = jnp.concatenate([_upsample(x, skip_x), skip_x], -1)
      m_up = _upsample(m, skip_m)
      # The paper concatenates the masks channel-wise; with one-channel masks, a pixel is
      # known when either the upsampled or the skip's mask says so.
      m = jnp.maximum(m_up, skip_m)
      x, m = PartialConv2D(c, (3, 3), name=f'dec{i}')(x, m)
      if i < len(widths) - 1:
        x = nn.leaky_relu(x, 0.2)
    if self.output == 'tanh':
      return jnp.tanh(x)
    return clip_to_range(x) if self.output == 'clip' else x


class MaskedAutoencoder(nn.Module):
  """The seed's inpainting autoencoder (`build_conv_autoencoder`), scaled to the image.

  The masked image X * M goes through stride-2 3x3 convs (the seed's 64, 128, 256, 512
  at 256x256; `channels` here), then stride-2 transposed convs back up, the last to C
  channels with tanh (the seed's sigmoid, for [-1, 1] images), cropped to the input size
  where the halvings rounded up (28 -> 14 -> 7 -> 4 -> 8 -> 16 -> 32). GroupNorm stands for
  the seed's BatchNorm (no batch statistics in the loop's state).

  Attributes:
    channels: encoder widths; the decoder mirrors them.
    out_channels: C of the images.
  """
  channels: Sequence[int] = (32, 64, 128)
  out_channels: int = 1

  @nn.compact
  def __call__(self, images: jax.Array, mask: jax.Array) -> jax.Array:
    """Prediction [B, H, W, C] in [-1, 1] of images [B, H, W, C] with mask [B, H, W, 1]."""
    h, w = images.shape[1:3]
    x = images * mask
    for i, c in enumerate(self.channels):
      x = Conv(c, (3, 3), strides=2, name=f'enc{i}')(x)
      x = nn.relu(nn.GroupNorm(num_groups=min(8, c), name=f'enc{i}_norm')(x))
    for i, c in enumerate(list(self.channels[:-1])[::-1]):
      x = ConvTranspose(c, (3, 3), strides=(2, 2), name=f'dec{i}')(x)
      x = nn.relu(nn.GroupNorm(num_groups=min(8, c), name=f'dec{i}_norm')(x))
    x = ConvTranspose(self.out_channels, (3, 3), strides=(2, 2), name='out')(x)
    return jnp.tanh(x[:, :h, :w])
