"""The article's CNN classifier: image -> feature maps -> 128-d feature vector -> label.

Each conv block extracts features and halves the resolution (28 -> 14 -> 7 -> 4);
a dense layer gathers everything into the feature vector, the article's
"feature space", which also serves as the offline feature extractor of the
metrics suite (FID, precision/recall on MNIST).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn.conv import Conv
from genjax.nn.pool import max_pool


class CNNClassifier(nn.Module):
  """Conv blocks (3x3 conv, ReLU, 2x2 max-pool), a dense feature layer and a linear head.

  Attributes:
    num_classes: K.
    channels: conv channels per block; each block halves the resolution.
    feature_dim: D, the size of the feature vector.
    dropout: dropout rate on the feature vector during training.
    conv_method: genjax.nn.conv formulation of every conv ('lax', 'im2col', ...); None: the
      per-layer rule (`genjax.nn.conv.conv_method`). Speed only: the parameters are the same.
  """
  num_classes: int = 10
  channels: Sequence[int] = (32, 64, 128)
  feature_dim: int = 128
  dropout: float = 0.0
  conv_method: str | None = None

  def setup(self):
    self.convs = [Conv(c, (3, 3), method=self.conv_method, name=f'conv{i + 1}')
                  for i, c in enumerate(self.channels)]
    self.feature = nn.Dense(self.feature_dim, name='feature')
    self.head = nn.Dense(self.num_classes, name='head')
    self.drop = nn.Dropout(self.dropout)

  def feature_maps(self, x: jax.Array) -> list[jax.Array]:
    """Post-ReLU activation of every conv block, before pooling.

    Args:
      x: images [B, H, W, C] in [-1, 1].

    Returns:
      One [B, H_i, W_i, channels[i]] array per block (H_0 = H, then halved).
    """
    maps = []
    for conv in self.convs:
      x = nn.relu(conv(x))
      maps.append(x)
      x = max_pool(x, 2)
    return maps

  def features(self, x: jax.Array) -> jax.Array:
    """The feature vector [B, feature_dim] (post-ReLU) of images [B, H, W, C]."""
    x = max_pool(self.feature_maps(x)[-1], 2)
    return nn.relu(self.feature(x.reshape(x.shape[0], -1)))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Logits [B, num_classes] of images [B, H, W, C] in [-1, 1]."""
    h = self.drop(self.features(x), deterministic=not train)
    return self.head(h)

  def features_and_logits(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(features [B, D], logits [B, K]) in one pass, for metrics."""
    h = self.features(x)
    return h, self.head(h)
