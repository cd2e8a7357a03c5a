"""The seed document's MLP GAN and DCGAN (Radford et al. 2016), optionally label-conditional.

MLP GAN (the seed's `SimpleGAN`): generator z -> Dense 128, 256, 512 (ReLU, then
BatchNorm, in the seed's order) -> Dense H*W*C, tanh; discriminator flattened
image -> Dense 512, 256, 128 (ReLU, dropout 0.3) -> one logit.

DCGAN (the seed's `DCGAN`): generator z -> Dense 4*4*c0 -> reshape -> transposed
convs 4x4 stride 2 with BatchNorm and ReLU, doubling the side each time, the
last to the image channels with tanh; discriminator convs 4x4 stride 2 with
LeakyReLU(0.2) (BatchNorm on all but the first), flatten, one logit. The
seed's 64x64x3 layout is gen_channels=(1024, 512, 256, 128),
disc_channels=(64, 128, 256, 512); 32x32 grayscale uses (256, 128, 64) and
(64, 128, 256).

Departures from the seed, each a fix:
- Discriminators return logits, not sigmoid probabilities: the losses use
  softplus on logits, which is the same binary cross-entropy without the
  saturation of log(sigmoid) in float32.
- The DCGAN generator applies BatchNorm and ReLU after the projection (as in
  Radford et al.); the seed feeds the linear projection straight into a
  linear transposed convolution, two linear maps in a row.
- Keras' `trainable=False` trick is not needed: the method differentiates each
  loss with respect to one network's parameters only (genjax/methods/gan.py).

Conditional variants: the generator concatenates a learned label embedding to
z; the discriminator is a projection discriminator (Miyato & Koyama 2018):
logit = dense(phi(x)) + <embed(y), phi(x)>.

BatchNorm statistics live in the `batch_stats` collection; `train=False` uses
the running averages, so a sample does not depend on the rest of its batch.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn.conv import Conv, ConvTranspose

# DCGAN's initialisation (Radford et al. 2016, sec. 4): weights ~ N(0, 0.02).
_DCGAN_INIT = nn.initializers.normal(0.02)


def _label_embedding(labels: jax.Array, num_classes: int, features: int, name: str) -> jax.Array:
  return nn.Embed(num_classes, features, name=name)(labels)


class ProjectionHead(nn.Module):
  """Logit of a (projection) discriminator from its feature vector.

  Unconditional: dense(phi). Conditional (Miyato & Koyama 2018, eq. 3):
  dense(phi) + <embed(y), phi>.

  Attributes:
    num_classes: 0 for unconditional, K for the projection term.
    kernel_init: initializer of the dense layer.
  """
  num_classes: int = 0
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init

  @nn.compact
  def __call__(self, phi: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """phi [B, F] (and labels [B], or [B, m] for packs of m samples) -> logits [B].

    A pack's projection term is the sum of its members' terms (PacGAN).
    """
    out = nn.Dense(1, kernel_init=self.kernel_init, name='out')(phi)[:, 0]
    if self.num_classes:
      if labels is None:
        raise ValueError('A conditional discriminator needs labels.')
      emb = nn.Embed(self.num_classes, phi.shape[-1], embedding_init=self.kernel_init,
                     name='label_proj')(labels)
      if emb.ndim == 3:
        emb = jnp.sum(emb, axis=1)
      out = out + jnp.sum(emb * phi, axis=-1)
    return out


class MLPGenerator(nn.Module):
  """The seed's MLP generator: z [B, Z] (and labels [B]) -> images [B, H, W, C] in (-1, 1).

  Attributes:
    image_shape: (H, W, C).
    widths: hidden widths (the seed: 128, 256, 512), each Dense -> ReLU -> BatchNorm.
    num_classes: 0, or K for a label embedding concatenated to z.
    bn_momentum: BatchNorm running-average momentum.
  """
  image_shape: Sequence[int] = (28, 28, 1)
  widths: Sequence[int] = (128, 256, 512)
  num_classes: int = 0
  bn_momentum: float = 0.99

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None, *, train: bool = False):
    h = z
    if self.num_classes:
      h = jnp.concatenate([h, _label_embedding(labels, self.num_classes, z.shape[-1], 'label_emb')], -1)
    for i, w in enumerate(self.widths):
      h = nn.relu(nn.Dense(w, name=f'dense{i}')(h))
      h = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, name=f'bn{i}')(h)
    x = jnp.tanh(nn.Dense(math.prod(self.image_shape), name='out')(h))
    return x.reshape(z.shape[0], *self.image_shape)


class MLPDiscriminator(nn.Module):
  """The seed's MLP discriminator: images [B, H, W, C] (and labels [B]) -> logits [B].

  Attributes:
    widths: hidden widths (the seed: 512, 256, 128), each Dense -> ReLU -> Dropout.
    dropout: dropout rate (the seed: 0.3), active when `train`.
    num_classes: 0, or K for a projection discriminator.
  """
  widths: Sequence[int] = (512, 256, 128)
  dropout: float = 0.3
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array | None = None, *, train: bool = False):
    h = x.reshape(x.shape[0], -1)
    for i, w in enumerate(self.widths):
      h = nn.relu(nn.Dense(w, name=f'dense{i}')(h))
      h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return ProjectionHead(self.num_classes, name='head')(h, labels)


class DCGANGenerator(nn.Module):
  """DCGAN generator: z [B, Z] (and labels [B]) -> images [B, H, W, C] in (-1, 1).

  Starts at 4x4 with channels[0] feature maps; each transposed conv (4x4,
  stride 2) doubles the side, so H = W = 4 * 2**len(channels).

  Attributes:
    image_shape: (H, W, C).
    channels: feature maps at 4x4, 8x8, ... (the last transposed conv maps to C).
    num_classes: 0, or K for a label embedding concatenated to z.
    bn_momentum: BatchNorm running-average momentum.
  """
  image_shape: Sequence[int] = (32, 32, 1)
  channels: Sequence[int] = (256, 128, 64)
  num_classes: int = 0
  bn_momentum: float = 0.9

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None, *, train: bool = False):
    h, w, c = self.image_shape
    side = 4 * 2 ** len(self.channels)
    if (h, w) != (side, side):
      raise ValueError(f'DCGAN generator with {len(self.channels)} upsamplings makes {side}x{side} '
                       f'images, but the data is {h}x{w}; set gan.gen_channels to '
                       f'{int(math.log2(max(h, 4) / 4))} widths or data.pad_to/resize_to.')
    bn = lambda name: nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                   name=name)
    if self.num_classes:
      z = jnp.concatenate([z, _label_embedding(labels, self.num_classes, z.shape[-1], 'label_emb')], -1)
    x = nn.Dense(4 * 4 * self.channels[0], kernel_init=_DCGAN_INIT, name='project')(z)
    x = nn.relu(bn('bn_project')(x.reshape(z.shape[0], 4, 4, self.channels[0])))  # [B, 4, 4, c0]
    for i, ch in enumerate(self.channels[1:]):
      x = ConvTranspose(ch, (4, 4), (2, 2), kernel_init=_DCGAN_INIT, name=f'up{i}')(x)
      x = nn.relu(bn(f'bn{i}')(x))
    x = ConvTranspose(c, (4, 4), (2, 2), kernel_init=_DCGAN_INIT, name='to_image')(x)
    return jnp.tanh(x)  # [B, H, W, C]


class DCGANDiscriminator(nn.Module):
  """DCGAN discriminator: images [B, H, W, C] (and labels [B]) -> logits [B].

  Convs 4x4 stride 2 halve the side; BatchNorm follows every conv but the
  first (Radford et al.), LeakyReLU(0.2) every conv.

  Attributes:
    channels: feature maps after each conv (the seed: 64, 128, 256, 512).
    num_classes: 0, or K for a projection discriminator.
    bn_momentum: BatchNorm running-average momentum.
  """
  channels: Sequence[int] = (64, 128, 256)
  num_classes: int = 0
  bn_momentum: float = 0.9

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array | None = None, *, train: bool = False):
    for i, ch in enumerate(self.channels):
      x = Conv(ch, (4, 4), (2, 2), kernel_init=_DCGAN_INIT, name=f'conv{i}')(x)
      if i:
        x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                         name=f'bn{i}')(x)
      x = nn.leaky_relu(x, 0.2)
    phi = x.reshape(x.shape[0], -1)  # [B, h * w * c_last]
    return ProjectionHead(self.num_classes, kernel_init=_DCGAN_INIT, name='head')(phi, labels)
