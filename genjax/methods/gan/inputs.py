"""What the two networks read and return: latents, the step's keys, G(z) and D(x).

Latents are a pure function of one key per sample (per-sample seeds). Every
function here is a pure function of the `Gan` and arrays, used by the D and
G updates, sampling and pictures alike.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from genjax.methods.gan import augment as gan_augment
from genjax.methods.gan import stylegan_extras
from genjax.methods.gan.networks import Gan, pack_for_discriminator


class StepKeys(NamedTuple):
  """The keys of one training step, one per use (split as the first layout did: same draws).

  Attributes:
    latents: G's latents for the step (g_first: fold_in(latents, 1) for D's fresh fakes).
    d_real, d_fake: D's dropout on real images and on fakes.
    g: D's dropout in G's loss.
    augment: DiffAugment's draws (fold_in 0: real, 1: fakes for D, 2: fakes for G).
    step: the step's own key (path-length noise: fold_in(step, 102)).
  """
  latents: jax.Array
  d_real: jax.Array
  d_fake: jax.Array
  g: jax.Array
  augment: jax.Array
  step: jax.Array


class Step(NamedTuple):
  """One training step's data.

  Attributes:
    real: [B, H, W, C] real images.
    labels: [B] int labels (conditional GANs) or None.
    latents: G's inputs for the step (see `draw_inputs`, with style mixing for StyleGAN).
    keys: `StepKeys`.
  """
  real: jax.Array
  labels: jax.Array | None
  latents: dict
  keys: StepKeys


def labels_of(gan: Gan, batch: dict) -> jax.Array | None:
  """batch['label'] [B] for conditional GANs, else None."""
  return batch['label'] if gan.conditional else None


def step_keys(rng: jax.Array) -> StepKeys:
  """The step's keys from its key `rng`."""
  latents, d_real, d_fake, g = jax.random.split(rng, 4)
  aug = jax.random.fold_in(rng, 101)  # Apart from the four above: old runs keep their draws.
  return StepKeys(latents, d_real, d_fake, g, aug, rng)


def make_step(gan: Gan, batch: dict, rng: jax.Array) -> Step:
  """A training step's `Step` from batch {'image' [B, H, W, C], 'label' [B]} and its key."""
  real = batch['image']
  keys = step_keys(rng)
  latents = draw_inputs(gan, jax.random.split(keys.latents, real.shape[0]), mixing=gan.is_style)
  return Step(real, labels_of(gan, batch), latents, keys)


def batch_stats(state) -> dict:
  """The BatchNorm running averages {'generator', 'discriminator'} in `state.extras` ({} each if none)."""
  return state.extras.get('batch_stats', {'generator': {}, 'discriminator': {}})


def _draw_one(gan: Gan, mixing: bool, key: jax.Array) -> dict:
  """One sample's latents from its key (see `draw_inputs`)."""
  # One normal draw per sample, cut into z, z2 and the noise maps: every random op costs
  # seconds of XLA compile time on CPU (threefry), so the step makes as few as it can.
  z_dim, shapes = gan.spec.latent_dim, gan.noise_shapes
  sizes = [z_dim] + ([z_dim] + [math.prod(s) for s in shapes] if gan.is_style else [])
  normal = jax.random.normal(key, (sum(sizes),))
  parts = jnp.split(normal, np.cumsum(sizes)[:-1])
  out = {'z': parts[0]}
  if gan.is_style:
    out['noise'] = [p.reshape(s) for p, s in zip(parts[2:], shapes)]
    if mixing:
      out['z2'] = parts[1]
      out['crossover'] = stylegan_extras.draw_crossover(gan, key)
  return out


def draw_inputs(gan: Gan, keys: jax.Array, mixing: bool) -> dict:
  """G's inputs, sample i a function of keys[i] alone.

  Args:
    gan: the GAN.
    keys: [n] keys.
    mixing: StyleGAN: also draw a second latent and a crossover layer (style mixing).

  Returns:
    {'z' [n, Z]}; StyleGAN adds 'noise' (per layer [n, r, r, 1]) and with mixing
    'z2' [n, Z] and 'crossover' [n].
  """
  return jax.vmap(functools.partial(_draw_one, gan, mixing))(keys)


def g_vars(gan: Gan, params, stats) -> dict:
  """The generator's flax variables: params, and BatchNorm statistics where it has them."""
  return {'params': params, **({'batch_stats': stats} if gan.g_bn else {})}


def generate(gan: Gan, params, stats, latents: dict, labels: jax.Array | None, *, train: bool,
             w_avg: jax.Array | None = None, trunc: float = 1.0):
  """G(latents): (images [n, H, W, C], new BatchNorm stats, w [n, W] or None).

  Args:
    gan: the GAN.
    params, stats: the generator's parameters and BatchNorm statistics ({} for StyleGAN).
    latents: see `draw_inputs`.
    labels: [n] or None.
    train: BatchNorm on the batch's statistics (and updating them).
    w_avg: StyleGAN's tracked w [K, W], for truncation.
    trunc: StyleGAN's truncation psi (1: none).
  """
  if gan.is_style:
    w, ws = stylegan_extras.mixed_styles(gan, params, latents, labels)
    if trunc != 1.0:
      ws = stylegan_extras.truncate_ws(gan, ws, w_avg, labels, trunc)
    return stylegan_extras.synthesize(gan, params, ws, latents['noise']), stats, w
  variables = g_vars(gan, params, stats)
  if train:
    images, updates = gan.generator.apply(variables, latents['z'], labels, train=True,
                                          mutable=['batch_stats'])
    return images, updates['batch_stats'], None
  return gan.generator.apply(variables, latents['z'], labels, train=False), stats, None


def discriminate(gan: Gan, params, stats, images: jax.Array, labels: jax.Array | None,
                 rng: jax.Array):
  """D's logits [n / d_pack] in training mode, packed by `gan.d_pack`: (logits, new BatchNorm stats).

  Args:
    gan: the GAN.
    params, stats: the discriminator's parameters and BatchNorm statistics.
    images: [n, H, W, C].
    labels: [n] or None.
    rng: dropout's key (MLP discriminator).
  """
  images, labels = pack_for_discriminator(images, labels, gan.spec.d_pack)
  if gan.style_d:
    return gan.discriminator.apply({'params': params}, images, labels), stats
  variables = {'params': params, **({'batch_stats': stats} if gan.d_bn else {})}
  rngs = {'dropout': rng} if gan.d_dropout else {}
  if gan.d_bn:
    logits, updates = gan.discriminator.apply(variables, images, labels, train=True, rngs=rngs,
                                              mutable=['batch_stats'])
    return logits, updates['batch_stats']
  return gan.discriminator.apply(variables, images, labels, train=True, rngs=rngs), stats


def augment(gan: Gan, images: jax.Array, key: jax.Array, i: int) -> jax.Array:
  """DiffAugment of what D sees (the identity without a policy); i picks the draw."""
  return gan_augment.diff_augment(images, jax.random.fold_in(key, i), gan.policy)
