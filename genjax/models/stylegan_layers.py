"""StyleGAN's equalized-learning-rate building blocks (Karras et al. 2018, 2019, 2020).

All layers use the equalized learning rate (weights ~ N(0, 1) scaled at run
time by 1/sqrt(fan_in)) and leaky ReLU(0.2) with gain sqrt(2), as in the
papers; bilinear up-sampling and average-pool down-sampling stand in for the
FIR (1, 3, 3, 1) filters. Shared by the generator (`genjax.models.stylegan`)
and the discriminator (`genjax.models.stylegan_discriminator`).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_GAIN = math.sqrt(2.0)


def lrelu(x: jax.Array) -> jax.Array:
  """Leaky ReLU(0.2) times sqrt(2), keeping unit variance (the papers' `lrelu` with gain)."""
  return nn.leaky_relu(x, 0.2) * _GAIN


def normalize_2nd_moment(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """x / sqrt(mean(x^2) + eps) over the last axis: [..., D] -> [..., D] (StyleGAN's pixel norm)."""
  return x * lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)


def upsample2x(x: jax.Array) -> jax.Array:
  """Bilinear 2x up-sampling [B, H, W, C] -> [B, 2H, 2W, C]."""
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), 'bilinear')


def downsample2x(x: jax.Array) -> jax.Array:
  """2x2 average pooling [B, H, W, C] -> [B, H/2, W/2, C]."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def conv2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """SAME, stride-1 convolution: x [B, H, W, Cin], kernel [k, k, Cin, Cout] -> [B, H, W, Cout]."""
  return lax.conv_general_dilated(x, kernel, (1, 1), 'SAME',
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def modulated_conv(x: jax.Array, kernel: jax.Array, styles: jax.Array, *,
                   demodulate: bool = True, eps: float = 1e-8) -> jax.Array:
  """Modulated convolution with optional demodulation (Karras et al. 2020, eqs. 1 and 3).

  Equal to convolving sample b with its own kernel w'_{k,i,o} = s_{b,i} w_{k,i,o}
  (eq. 1), demodulated as w''_{k,i,o} = w'_{k,i,o} / sqrt(sum_{k,i} w'^2 + eps)
  (eq. 3). Computed without per-sample kernels: scale the input channels by
  s, convolve with the shared kernel, scale each output channel by the
  demodulation factor (the papers' non-fused form), so it is one ordinary
  convolution. With unit-variance i.i.d. inputs the output then has unit
  variance (eq. 2).

  Args:
    x: [B, H, W, Cin].
    kernel: [k, k, Cin, Cout] (any equalized-lr scale already applied).
    styles: [B, Cin], the per-sample input-channel scales s.
    demodulate: apply eq. 3.
    eps: the epsilon of eq. 3.

  Returns:
    [B, H, W, Cout].
  """
  y = conv2d(x * styles[:, None, None, :], kernel)
  if demodulate:
    # sum_{k,i} (s_i w_{k,i,o})^2 = (s^2) @ (sum_k w^2): [B, Cin] @ [Cin, Cout].
    d = lax.rsqrt(jnp.square(styles) @ jnp.sum(jnp.square(kernel), axis=(0, 1)) + eps)
    y = y * d[:, None, None, :]
  return y


def adain(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Adaptive instance normalization (Huang & Belongie 2017; StyleGAN eq. 1).

  Args:
    x: [B, H, W, C].
    scale, bias: [B, C], the style y_s and y_b.
    eps: added to the variance.

  Returns:
    y_s * (x - mean_HW(x)) / std_HW(x) + y_b, [B, H, W, C].
  """
  mean = jnp.mean(x, axis=(1, 2), keepdims=True)
  var = jnp.var(x, axis=(1, 2), keepdims=True)
  return scale[:, None, None, :] * (x - mean) * lax.rsqrt(var + eps) + bias[:, None, None, :]



class EqualDense(nn.Module):
  """Dense layer with equalized learning rate: y = x (W lr_mult / sqrt(fan_in)) + b lr_mult.

  Attributes:
    features: output width.
    lr_mult: learning-rate multiplier (0.01 in the mapping network).
    bias_init: initial value of the effective bias (1 for style affines).
    use_bias: add a bias.
  """
  features: int
  lr_mult: float = 1.0
  bias_init: float = 0.0
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, Din] -> [B, features]."""
    fan_in = x.shape[-1]
    kernel = self.param('kernel', nn.initializers.normal(1.0 / self.lr_mult),
                        (fan_in, self.features))
    y = x @ (kernel * (self.lr_mult / math.sqrt(fan_in)))
    if self.use_bias:
      bias = self.param('bias', nn.initializers.constant(self.bias_init / self.lr_mult),
                        (self.features,))
      y = y + bias * self.lr_mult
    return y


class EqualConv(nn.Module):
  """SAME stride-1 convolution with equalized learning rate.

  Attributes:
    features: output channels.
    kernel_size: k (square).
    use_bias: add a bias.
  """
  features: int
  kernel_size: int = 3
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, Cin] -> [B, H, W, features]."""
    k, cin = self.kernel_size, x.shape[-1]
    kernel = self.param('kernel', nn.initializers.normal(1.0), (k, k, cin, self.features))
    y = conv2d(x, kernel / math.sqrt(k * k * cin))
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return y

