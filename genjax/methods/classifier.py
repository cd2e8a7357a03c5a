"""Supervised classification: the article's CNN on labelled images.

Trained with cross-entropy (optional label smoothing), random-translation
augmentation and dropout; evaluated by test accuracy; pictured by its filters,
feature maps and feature space.
"""
from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genjax import config as config_lib
from genjax.core import precision
from genjax.core.batching import batched_apply
from genjax.core.state import TrainState
from genjax.methods.api import EvalContext, Method, StateSpec
from genjax.models.classifier import CNNClassifier
from genjax.nn import conv
from genjax.viz import features as viz_features


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
  """`config.classifier`: the article's CNN and how it trains.

  Attributes:
    num_classes: K.
    channels: conv widths per resolution level.
    feature_dim: the feature vector before the logits (the article's 128 numbers).
    dropout: dropout rate before the logits.
    conv_method: genjax.nn.conv formulation of every conv (gemm | im2col | lax |
      split); None: its per-layer rule. Speed only.
    augment_shift: random translation in pixels.
    label_smoothing: optax.smooth_labels' alpha.
    compute_dtype: `train.compute_dtype` (float32 | bfloat16); not a field of this group.
  """
  num_classes: int = 10
  channels: tuple[int, ...] = (32, 64, 128)
  feature_dim: int = 128
  dropout: float = 0.0
  conv_method: str | None = None
  augment_shift: int = 0
  label_smoothing: float = 0.0
  compute_dtype: str = dataclasses.field(default='float32', metadata={'config': False})

  def __post_init__(self):
    config_lib.check_choice('classifier.conv_method', self.conv_method, (None,) + conv.METHODS)
    config_lib.check_range('classifier.num_classes', self.num_classes, low=2)
    config_lib.check_range('classifier.dropout', self.dropout, low=0.0, high=1.0, high_open=True)
    config_lib.check_range('classifier.augment_shift', self.augment_shift, low=0)
    config_lib.check_range('classifier.label_smoothing', self.label_smoothing, low=0.0, high=1.0)

  @functools.cached_property
  def network(self) -> CNNClassifier:
    """The flax module (built once per spec), computing in `compute_dtype`."""
    return precision.with_policy(
        CNNClassifier(num_classes=self.num_classes, channels=tuple(self.channels),
                      feature_dim=self.feature_dim, dropout=self.dropout,
                      conv_method=self.conv_method), self.compute_dtype)


def random_shift(images: jax.Array, rng: jax.Array, max_shift: int) -> jax.Array:
  """Translates each image by up to `max_shift` pixels, filling with background (-1).

  Args:
    images: [B, H, W, C].
    rng: key.
    max_shift: s >= 0.

  Returns:
    [B, H, W, C].
  """
  if max_shift == 0:
    return images
  b, h, w, c = images.shape
  s = max_shift
  padded = jnp.pad(images, ((0, 0), (s, s), (s, s), (0, 0)), constant_values=-1.0)
  offsets = jax.random.randint(rng, (b, 2), 0, 2 * s + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, offsets)


def init(spec: ClassifierSpec, state_spec: StateSpec, rng: jax.Array, batch: dict) -> TrainState:
  """A fresh state; `batch['image']` [B, H, W, C] gives the input shape."""
  params = spec.network.init({'params': rng}, batch['image'])['params']
  return state_spec.create(params)


def loss_fn(spec: ClassifierSpec, params, images: jax.Array, labels: jax.Array,
            rng: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Cross-entropy (with label smoothing) of images [B, H, W, C] against labels [B].

  Returns:
    (mean loss [], logits [B, K]); dropout draws from `rng`.
  """
  targets = optax.smooth_labels(jax.nn.one_hot(labels, spec.num_classes), spec.label_smoothing)
  logits = spec.network.apply({'params': params}, images, train=True, rngs={'dropout': rng})
  return optax.softmax_cross_entropy(logits, targets).mean(), logits


def train_step(spec: ClassifierSpec, state: TrainState, batch: dict, rng: jax.Array):
  """One update on batch {'image' [B, H, W, C], 'label' [B]} -> (state, metrics)."""
  aug_rng, drop_rng = jax.random.split(rng)
  images = random_shift(batch['image'], aug_rng, spec.augment_shift)
  (loss, logits), grads = jax.value_and_grad(
      lambda p: loss_fn(spec, p, images, batch['label'], drop_rng), has_aux=True)(state.params)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
  return state.apply_gradients(grads), {
      'loss': loss, 'accuracy': accuracy, 'grad_norm': optax.tree.norm(grads)}


@functools.partial(jax.jit, static_argnums=0)
def logits_fn(spec: ClassifierSpec, params, images: jax.Array) -> jax.Array:
  """Logits [B, K] of images [B, H, W, C] in inference mode."""
  return spec.network.apply({'params': params}, images)


def evaluate(spec: ClassifierSpec, state: TrainState, ctx: EvalContext) -> dict:
  """Accuracy and loss on `eval.split` (at most `eval.num_examples` images)."""
  c = ctx.config
  data = ctx.load_split(c.eval.split, c.eval.num_examples)
  logits = batched_apply(lambda x: logits_fn(spec, state.eval_params, x), data['image'],
                         c.data.eval_batch_size)
  labels = data['label']
  loss = optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits), labels).mean()
  return {'accuracy': float(np.mean(logits.argmax(-1) == labels)), 'loss': float(loss),
          'num_examples': int(len(labels))}


def write_images(spec: ClassifierSpec, state: TrainState, ctx: EvalContext) -> list[str]:
  """The article's pictures: first-layer filters, one digit's feature maps, the feature space."""
  c = ctx.config
  data = ctx.load_split(c.eval.split, c.eval.num_examples)
  params, model = state.eval_params, spec.network
  feats = batched_apply(
      jax.jit(lambda x: model.apply({'params': params}, x, method=CNNClassifier.features)),
      data['image'], c.data.eval_batch_size)
  digit = data['image'][:1]
  maps = model.apply({'params': params}, digit, method=CNNClassifier.feature_maps)
  out = ctx.images_dir
  return [
      viz_features.plot_filters(np.asarray(params['conv1']['kernel']),
                                os.path.join(out, 'filters_layer1.png')),
      viz_features.plot_feature_maps(digit[0], [np.asarray(m[0]) for m in maps],
                                     os.path.join(out, 'feature_maps.png')),
      viz_features.plot_feature_space(feats, data['label'],
                                      os.path.join(out, 'feature_space.png')),
  ]


def make(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Method:
  """The classifier method: `config.classifier` decoded once, the functions bound to it."""
  del image_shape  # Convolutions and a dense layer adapt to any size at init.
  spec = config_lib.decode(ClassifierSpec, config, 'classifier',
                           compute_dtype=config.train.compute_dtype)
  state_spec = StateSpec.from_config(config)
  bind = lambda fn: functools.partial(fn, spec)
  return Method(init=functools.partial(init, spec, state_spec), train_step=bind(train_step),
                evaluate=bind(evaluate), write_images=bind(write_images))
