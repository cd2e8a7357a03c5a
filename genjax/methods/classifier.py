"""Supervised classification: the article's CNN on labelled images.

Trained with cross-entropy (optional label smoothing), random-translation
augmentation and dropout; evaluated by test accuracy; pictured by its filters,
feature maps and feature space.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genjax.methods.api import EvalContext, Method, batched_apply
from genjax.models.classifier import CNNClassifier
from genjax.train.optim import make_optimizer
from genjax.train.state import TrainState
from genjax.viz import features as viz_features

MODELS = ('cnn_classifier',)


def make_model(config: ml_collections.ConfigDict) -> CNNClassifier:
  """The classifier network described by `config.model`."""
  m = config.model
  if m.name not in MODELS:
    raise ValueError(f'method.name=classifier takes model.name in {MODELS}, got {m.name!r}.')
  return CNNClassifier(num_classes=m.num_classes, channels=tuple(m.channels),
                       feature_dim=m.feature_dim, dropout=m.dropout, conv_method=m.conv_method)


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


def make(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Method:
  """The classifier method bound to `config` (see `genjax.methods.api.Method`)."""
  del image_shape  # Convolutions and a dense layer adapt to any size at init.
  model = make_model(config)
  tx = make_optimizer(config.optim, config.train.num_steps)
  num_classes = config.model.num_classes
  smoothing = config.method.label_smoothing
  shift = config.method.augment_shift

  def init(rng, batch):
    params = model.init({'params': rng}, batch['image'])['params']
    return TrainState.create(params=params, tx=tx, ema_decay=config.train.ema_decay,
                             ema_warmup=config.train.ema_warmup)

  def train_step(state, batch, rng):
    aug_rng, drop_rng = jax.random.split(rng)
    images = random_shift(batch['image'], aug_rng, shift)
    targets = optax.smooth_labels(jax.nn.one_hot(batch['label'], num_classes), smoothing)

    def loss_fn(params):
      logits = model.apply({'params': params}, images, train=True, rngs={'dropout': drop_rng})
      return optax.softmax_cross_entropy(logits, targets).mean(), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
    return state.apply_gradients(grads), {
        'loss': loss, 'accuracy': accuracy, 'grad_norm': optax.tree.norm(grads)}

  @jax.jit
  def _logits(params, images):
    return model.apply({'params': params}, images)

  def evaluate(state, ctx: EvalContext):
    data = ctx.load_split(config.eval.split, config.eval.num_examples)
    logits = batched_apply(lambda x: _logits(state.eval_params, x), data['image'],
                           config.data.eval_batch_size)
    labels = data['label']
    loss = optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits), labels).mean()
    return {'accuracy': float(np.mean(logits.argmax(-1) == labels)), 'loss': float(loss),
            'num_examples': int(len(labels))}

  def write_images(state, ctx: EvalContext):
    data = ctx.load_split(config.eval.split, config.eval.num_examples)
    params = state.eval_params
    feats = batched_apply(
        jax.jit(lambda x: model.apply({'params': params}, x, method=CNNClassifier.features)),
        data['image'], config.data.eval_batch_size)
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

  return Method(init=init, train_step=train_step, evaluate=evaluate, write_images=write_images)
