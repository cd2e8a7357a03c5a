"""StyleGAN (Karras et al. 2019) and StyleGAN2 (Karras et al. 2020), small enough for CPU.

Generator = mapping network (8 equalized-lr dense layers, lr multiplier 0.01,
z -> w) + synthesis network (a learned 4x4 constant; per resolution an
upsampling styled 3x3 conv and a styled 3x3 conv, each followed by per-pixel
noise of learned strength, bias and leaky ReLU; the StyleGAN2 "skip"
architecture sums the upsampled RGB outputs of every resolution).
A styled conv is a modulated convolution with demodulation (StyleGAN2,
`style_mode='modulated'`) or a conv followed by AdaIN (StyleGAN,
`style_mode='adain'`). The synthesis network reads one w per layer, so style
mixing and truncation are operations on `ws` [B, num_ws, w_dim]
(`mix_styles`, `truncate`, below).

Discriminator (`genjax.models.stylegan_discriminator`, exported here too): the
StyleGAN2 residual discriminator (from-RGB 1x1 conv, per resolution two 3x3
convs with a 2x2 average-pool down-sampling and a 1x1 skip, minibatch standard
deviation, a 3x3 conv and two dense layers), optionally a projection
discriminator for labels.

All layers (`genjax.models.stylegan_layers`) use the equalized learning rate
(weights ~ N(0, 1) scaled at run time by 1/sqrt(fan_in)) and leaky ReLU(0.2)
with gain sqrt(2), as in both papers. Simplifications, all documented here: bilinear up-sampling and
average-pool down-sampling stand in for the FIR (1, 3, 3, 1) filters; one
noise strength per layer (StyleGAN2) in both modes. Path-length
regularisation is the GAN method's (`stylegan.pl_weight`). An optional tanh on
the output (`SynthesisNetwork.output`, off in the papers) is what makes the
model train on mnist5k (RESULTS.md, GAN family).
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# The layers and the discriminator have their own modules; this one also exports their names
# (`stylegan.StyleDiscriminator`, `stylegan.modulated_conv`, ...).
from genjax.models.stylegan_discriminator import StyleDiscriminator, minibatch_stddev  # noqa: F401
from genjax.models.stylegan_layers import (  # noqa: F401
    EqualConv, EqualDense, adain, conv2d, downsample2x, lrelu, modulated_conv,
    normalize_2nd_moment, upsample2x)

STYLE_MODES = ('modulated', 'adain')
OUTPUTS = ('linear', 'tanh')  # The synthesis network's last activation.


def mix_styles(w1: jax.Array, w2: jax.Array, crossover: jax.Array) -> jax.Array:
  """Style mixing: layers before `crossover` read w1, layers from it on read w2.

  Args:
    w1, w2: [B, W] or [B, num_ws, W].
    crossover: [B] int layer index in [0, num_ws]; num_ws means no mixing.
    num_ws is taken from w1 when it has 3 axes.

  Returns:
    ws [B, num_ws, W].
  """
  if w1.ndim != 3 or w2.ndim != 3:
    raise ValueError('mix_styles takes per-layer styles [B, num_ws, W]; broadcast w first.')
  layer = jnp.arange(w1.shape[1])[None, :, None]
  return jnp.where(layer < crossover[:, None, None], w1, w2)


def truncate(w: jax.Array, w_avg: jax.Array, psi: float | jax.Array) -> jax.Array:
  """The truncation trick (StyleGAN sec. 3.4): w' = w_avg + psi (w - w_avg).

  Written as psi w + (1 - psi) w_avg so psi = 1 returns w and psi = 0 returns
  w_avg exactly.

  Args:
    w: [..., W].
    w_avg: broadcastable to w.
    psi: scalar in [0, 1] (larger keeps more variety).
  """
  return psi * w + (1.0 - psi) * w_avg


def update_w_avg(w_avg: jax.Array, w: jax.Array, labels: jax.Array | None, beta: float) -> jax.Array:
  """One step of the tracked average of w: w_avg <- beta w_avg + (1 - beta) mean(w).

  Conditional models track one average per class, and update a class's row
  with the mean of that class's w in the batch (rows of absent classes stay).

  Args:
    w_avg: [K, W] (K = 1 for unconditional models).
    w: [B, W] mapped latents of the batch.
    labels: [B] int classes, or None (unconditional).
    beta: the decay (StyleGAN2: 0.995).

  Returns:
    [K, W].
  """
  if labels is None:
    target, present = jnp.mean(w, axis=0, keepdims=True), jnp.ones((1, 1), bool)
  else:
    one_hot = jax.nn.one_hot(labels, w_avg.shape[0], dtype=w.dtype)  # [B, K]
    counts = one_hot.sum(0)[:, None]  # [K, 1]
    target = (one_hot.T @ w) / jnp.maximum(counts, 1.0)
    present = counts > 0
  return jnp.where(present, beta * w_avg + (1.0 - beta) * target, w_avg)

class ModulatedConv(nn.Module):
  """A style affine (w -> s, bias 1) and `modulated_conv` with an equalized-lr kernel.

  Attributes:
    features: output channels.
    kernel_size: k.
    demodulate: apply demodulation (False for to-RGB layers).
    affine_lr_mult: learning-rate multiplier of the style affine (1 in the papers).
  """
  features: int
  kernel_size: int = 3
  demodulate: bool = True
  affine_lr_mult: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    """x [B, H, W, Cin], w [B, W] -> [B, H, W, features]."""
    k, cin = self.kernel_size, x.shape[-1]
    styles = EqualDense(cin, lr_mult=self.affine_lr_mult, bias_init=1.0, name='affine')(w)
    kernel = self.param('kernel', nn.initializers.normal(1.0), (k, k, cin, self.features))
    return modulated_conv(x, kernel / math.sqrt(k * k * cin), styles, demodulate=self.demodulate)


class StyledLayer(nn.Module):
  """One synthesis layer: [up-sample], styled 3x3 conv, noise, bias, leaky ReLU.

  'modulated' (StyleGAN2): modulated conv with demodulation, then noise, bias,
  activation. 'adain' (StyleGAN): conv, noise, bias, activation, then AdaIN
  with the style of w.

  Attributes:
    features: output channels.
    up: bilinear 2x up-sampling first.
    style_mode: 'modulated' or 'adain'.
    affine_lr_mult: learning-rate multiplier of the style affine.
  """
  features: int
  up: bool = False
  style_mode: str = 'modulated'
  affine_lr_mult: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array, noise: jax.Array) -> jax.Array:
    """x [B, H, W, Cin], w [B, W], noise [B, H', W', 1] -> [B, H', W', features]."""
    if self.up:
      x = upsample2x(x)
    if self.style_mode == 'modulated':
      x = ModulatedConv(self.features, 3, affine_lr_mult=self.affine_lr_mult, name='conv')(x, w)
    else:
      x = EqualConv(self.features, 3, use_bias=False, name='conv')(x)
    # Learned noise strength, zero at init (StyleGAN2).
    x = x + self.param('noise_strength', nn.initializers.zeros_init(), ()) * noise
    x = lrelu(x + self.param('bias', nn.initializers.zeros_init(), (self.features,)))
    if self.style_mode == 'adain':
      style = EqualDense(2 * self.features, lr_mult=self.affine_lr_mult, name='affine')(w)
      x = adain(x, 1.0 + style[:, :self.features], style[:, self.features:])
    return x


class ToRGB(nn.Module):
  """Modulated 1x1 conv without demodulation, plus bias: features -> image channels.

  Attributes:
    channels: image channels C.
    affine_lr_mult: learning-rate multiplier of the style affine.
  """
  channels: int
  affine_lr_mult: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    """x [B, H, W, Cin], w [B, W] -> [B, H, W, C]."""
    y = ModulatedConv(self.channels, 1, demodulate=False, affine_lr_mult=self.affine_lr_mult,
                      name='conv')(x, w)
    return y + self.param('bias', nn.initializers.zeros_init(), (self.channels,))


class MappingNetwork(nn.Module):
  """z [B, Z] (and labels [B]) -> w [B, W]: normalized z (and label embedding), 8 dense layers.

  Attributes:
    w_dim: W (also the width of every layer).
    num_layers: 8 in the papers.
    lr_mult: 0.01 in the papers.
    num_classes: 0, or K: a label embedding is normalized and concatenated to z
      (as in StyleGAN2-ADA).
  """
  w_dim: int = 128
  num_layers: int = 8
  lr_mult: float = 0.01
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    x = normalize_2nd_moment(z)
    if self.num_classes:
      if labels is None:
        raise ValueError('A conditional StyleGAN needs labels.')
      emb = EqualDense(self.w_dim, name='label_emb')(jax.nn.one_hot(labels, self.num_classes))
      x = jnp.concatenate([x, normalize_2nd_moment(emb)], axis=-1)
    for i in range(self.num_layers):
      x = lrelu(EqualDense(self.w_dim, lr_mult=self.lr_mult, name=f'dense{i}')(x))
    return x


def num_styles(num_resolutions: int) -> int:
  """Number of ws the synthesis network reads: 2 * (number of resolutions), 4x4 included."""
  return 2 * num_resolutions


def noise_shapes(image_shape: Sequence[int]) -> list[tuple[int, int, int]]:
  """Per-layer noise shapes [(r, r, 1)] for a square image: 4, then 8, 8, 16, 16, ... H, H."""
  side = image_shape[0]
  sides = [4] + [r for r in (4 * 2 ** i for i in range(1, int(math.log2(side // 4)) + 1))
                 for _ in range(2)]
  return [(r, r, 1) for r in sides]


class SynthesisNetwork(nn.Module):
  """ws [B, num_ws, W] and per-layer noise -> images [B, H, W, C] (skip architecture).

  Layer indices: the 4x4 conv reads ws[0] and its to-RGB ws[1]; the block at
  resolution 4 * 2**i reads ws[2i - 1] (up-sampling conv), ws[2i] (conv) and
  ws[2i + 1] (to-RGB), as in StyleGAN2 where a to-RGB shares its w with the
  next block's first conv.

  Attributes:
    image_shape: (H, W, C), H = W = 4 * 2**(len(channels) - 1).
    channels: feature maps at 4x4, 8x8, ..., HxW.
    style_mode: 'modulated' or 'adain'.
    affine_lr_mult: learning-rate multiplier of every style affine (see StyleGenerator).
    output: 'linear' (the papers: the summed to-RGB outputs as they are) or 'tanh' (squashed
      into (-1, 1), as DCGAN's output).
  """
  image_shape: Sequence[int] = (32, 32, 1)
  channels: Sequence[int] = (256, 128, 64, 32)
  style_mode: str = 'modulated'
  affine_lr_mult: float = 1.0
  output: str = 'linear'

  @nn.compact
  def __call__(self, ws: jax.Array, noise: Sequence[jax.Array]) -> jax.Array:
    h, w, c = self.image_shape
    side = 4 * 2 ** (len(self.channels) - 1)
    if (h, w) != (side, side):
      raise ValueError(f'StyleGAN synthesis with {len(self.channels)} resolutions makes '
                       f'{side}x{side} images, but the data is {h}x{w}; give gan.gen_channels '
                       'one width per resolution from 4x4 up, or set data.pad_to/resize_to.')
    if self.style_mode not in STYLE_MODES:
      raise ValueError(f'stylegan.style_mode={self.style_mode!r}; accepted: {STYLE_MODES}.')
    if self.output not in OUTPUTS:
      raise ValueError(f'stylegan.output={self.output!r}; accepted: {OUTPUTS}.')
    b = ws.shape[0]
    const = self.param('const', nn.initializers.normal(1.0), (4, 4, self.channels[0]))
    x = jnp.broadcast_to(const, (b, 4, 4, self.channels[0]))
    layer = functools.partial(StyledLayer, style_mode=self.style_mode,
                              affine_lr_mult=self.affine_lr_mult)
    to_rgb = functools.partial(ToRGB, c, affine_lr_mult=self.affine_lr_mult)
    x = layer(self.channels[0], name='b4_conv')(x, ws[:, 0], noise[0])
    img = to_rgb(name='b4_torgb')(x, ws[:, 1])
    for i, ch in enumerate(self.channels[1:], start=1):
      r = 4 * 2 ** i
      x = layer(ch, up=True, name=f'b{r}_conv0')(x, ws[:, 2 * i - 1], noise[2 * i - 1])
      x = layer(ch, name=f'b{r}_conv1')(x, ws[:, 2 * i], noise[2 * i])
      img = upsample2x(img) + to_rgb(name=f'b{r}_torgb')(x, ws[:, 2 * i + 1])
    # [B, H, W, C]; 'linear' is not squashed (clip to [-1, 1] for viewing).
    return jnp.tanh(img) if self.output == 'tanh' else img


class StyleGenerator(nn.Module):
  """Mapping + synthesis. `__call__(z, labels, noise)` is the plain generator (one w for all layers).

  Attributes:
    image_shape: (H, W, C).
    channels: synthesis feature maps per resolution from 4x4 up.
    w_dim: W.
    mapping_layers: 8.
    mapping_lr_mult: 0.01.
    num_classes: 0, or K for a conditional generator.
    style_mode: 'modulated' (StyleGAN2) or 'adain' (StyleGAN).
    affine_lr_mult: learning-rate multiplier of the style affines w -> s (1 in the papers).
      Below 1 the styles stay near their random projection of w (tried against the mode
      collapse of the linear-output model on mnist5k; it did not prevent it, RESULTS.md).
    output: the synthesis network's last activation, 'linear' (the papers) or 'tanh'.
  """
  image_shape: Sequence[int] = (32, 32, 1)
  channels: Sequence[int] = (256, 128, 64, 32)
  w_dim: int = 128
  mapping_layers: int = 8
  mapping_lr_mult: float = 0.01
  num_classes: int = 0
  style_mode: str = 'modulated'
  affine_lr_mult: float = 1.0
  output: str = 'linear'

  def setup(self):
    self.mapping = MappingNetwork(self.w_dim, self.mapping_layers, self.mapping_lr_mult,
                                  self.num_classes)
    self.synthesis = SynthesisNetwork(self.image_shape, self.channels, self.style_mode,
                                      self.affine_lr_mult, self.output)

  @property
  def num_ws(self) -> int:
    return num_styles(len(self.channels))

  def map(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """z [B, Z] (labels [B]) -> w [B, W]."""
    return self.mapping(z, labels)

  def synthesize(self, ws: jax.Array, noise: Sequence[jax.Array]) -> jax.Array:
    """ws [B, num_ws, W], noise (one [B, r, r, 1] per layer, see `noise_shapes`) -> [B, H, W, C]."""
    return self.synthesis(ws, noise)

  def __call__(self, z: jax.Array, labels: jax.Array | None, noise: Sequence[jax.Array]) -> jax.Array:
    """z [B, Z] -> images [B, H, W, C] with the same w at every layer."""
    w = self.map(z, labels)
    return self.synthesize(jnp.repeat(w[:, None], self.num_ws, axis=1), noise)
