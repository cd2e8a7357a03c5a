"""Variational autoencoders: VAE, beta-VAE and conditional VAE (Kingma & Welling 2014;
Higgins et al. 2017; Sohn et al. 2015).

Bernoulli likelihood on dynamically binarized digits is the papers' setting
(Burda et al. 2015): every step draws fresh binary images from the grey
levels, and the test digits are binarized once with a fixed seed. A Gaussian
likelihood on the continuous images is the alternative. The loss is the
negative ELBO with the KL weighted by beta.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genjax import config as config_lib
from genjax.core import precision
from genjax.core.batching import batched_apply
from genjax.core.state import TrainState
from genjax.methods import sampling
from genjax.methods.api import EvalContext, Method, StateSpec
from genjax.metrics.likelihood import (bernoulli_log_likelihood, gaussian_log_likelihood,
                                       iwae_log_likelihood)
from genjax.models.vae import VAE
from genjax.viz import latent as viz_latent

LIKELIHOODS = ('bernoulli', 'gaussian')
TEST_BINARIZATION_SEED = 1234  # The test digits are binarized once, identically for every run.


@dataclasses.dataclass(frozen=True)
class VAESpec:
  """`config.vae`: the seed's conv VAE (beta-VAE, conditional VAE) and its training.

  Attributes:
    num_classes: K, for the conditional VAE.
    conditional: condition encoder and decoder on labels (cVAE).
    channels: encoder conv widths (the decoder mirrors them).
    latent_dim: size of z.
    hidden_dim: dense width between the convs and the latent.
    beta: KL weight: 1 is the VAE, > 1 the beta-VAE.
    likelihood: bernoulli (dynamically binarized digits) | gaussian.
    gaussian_sigma: fixed decoder std of the gaussian likelihood.
    iwae_k: importance samples of the IWAE test NLL; 0: not computed.
    iwae_chunk: importance samples per decoder call (memory).
    iwae_batch_size: test images per IWAE call.
    image_shape: (H, W, C) of the data; not a config field (the data gives it).
    compute_dtype: `train.compute_dtype` (float32 | bfloat16); not a field of this group.
  """
  num_classes: int = 10
  conditional: bool = False
  channels: tuple[int, ...] = (32, 64, 128)
  latent_dim: int = 32
  hidden_dim: int = 256
  beta: float = 1.0
  likelihood: str = 'bernoulli'
  gaussian_sigma: float = 0.1
  iwae_k: int = 0
  iwae_chunk: int = 100
  iwae_batch_size: int = 100
  image_shape: tuple[int, int, int] = dataclasses.field(default=(28, 28, 1),
                                                        metadata={'config': False})
  compute_dtype: str = dataclasses.field(default='float32', metadata={'config': False})

  def __post_init__(self):
    config_lib.check_choice('vae.likelihood', self.likelihood, LIKELIHOODS)
    config_lib.check_range('vae.latent_dim', self.latent_dim, low=1)
    config_lib.check_range('vae.beta', self.beta, low=0.0)
    config_lib.check_range('vae.gaussian_sigma', self.gaussian_sigma, low=0.0, low_open=True)
    config_lib.check_range('vae.iwae_k', self.iwae_k, low=0)
    config_lib.check_range('vae.iwae_chunk', self.iwae_chunk, low=1)
    config_lib.check_range('vae.iwae_batch_size', self.iwae_batch_size, low=1)

  @property
  def label_classes(self) -> int:
    """K for a conditional VAE (its encoder, decoder and `sample` take labels), else 0."""
    return self.num_classes if self.conditional else 0

  @property
  def bernoulli(self) -> bool:
    return self.likelihood == 'bernoulli'

  @functools.cached_property
  def network(self) -> VAE:
    """The flax module (built once per spec), computing in `compute_dtype`."""
    return precision.with_policy(
        VAE(image_shape=tuple(self.image_shape), latent_dim=self.latent_dim,
            enc_channels=tuple(self.channels), dec_channels=tuple(reversed(self.channels)),
            hidden=self.hidden_dim, num_classes=self.label_classes), self.compute_dtype)


def binarize(images: jax.Array, rng: jax.Array) -> jax.Array:
  """Dynamic binarization: pixel ~ Bernoulli(grey level). [-1, 1] in, {-1, 1} out, same shape."""
  return jnp.where(jax.random.uniform(rng, images.shape) < (images + 1.0) / 2.0, 1.0, -1.0)


def gaussian_kl(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mean, exp(logvar)) || N(0, I)) per example [B], from [B, Z] inputs, in nats."""
  return 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)


def log_likelihood(x: jax.Array, out: jax.Array, likelihood: str, sigma: float) -> jax.Array:
  """log p(x|z) per example [B], nats, from data x and decoder output `out` [B, H, W, C].

  Bernoulli: x in {-1, 1} (binarized), `out` the logits. Gaussian: x in
  [-1, 1], `out` the means, fixed standard deviation `sigma`.
  """
  if likelihood == 'bernoulli':
    return bernoulli_log_likelihood((x + 1.0) / 2.0, out, event_ndim=x.ndim - 1)
  return gaussian_log_likelihood(x, out, math.log(sigma), event_ndim=x.ndim - 1)


def prepare(spec: VAESpec, images: jax.Array, rng: jax.Array) -> jax.Array:
  """The data the likelihood sees: binarized images (bernoulli) or the images, [B, H, W, C]."""
  return binarize(images, rng) if spec.bernoulli else images


def labels_of(spec: VAESpec, batch: dict) -> jax.Array | None:
  """The batch's labels [B] for a conditional VAE; None for an unconditional one."""
  return batch['label'] if spec.conditional else None


def elbo_terms(spec: VAESpec, params, x: jax.Array, labels: jax.Array | None,
               rng: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The ELBO's two terms per example, from one reparameterised z ~ q(z|x) drawn from `rng`.

  Args:
    spec: the VAE.
    params: its parameters.
    x: prepared data [B, H, W, C].
    labels: [B] for a conditional VAE, else None.
    rng: key of z.

  Returns:
    (log p(x|z) [B], KL(q(z|x) || p(z)) [B]), nats.
  """
  out, mean, logvar, _ = spec.network.apply({'params': params}, x, rng, labels)
  ll = log_likelihood(x, out, spec.likelihood, spec.gaussian_sigma)
  return ll, gaussian_kl(mean, logvar)


def loss_fn(spec: VAESpec, params, x: jax.Array, labels: jax.Array | None,
            rng: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """The negative ELBO with the KL weighted by beta, of prepared x [B, H, W, C].

  Returns:
    (mean loss [], (log p(x|z) [B], KL [B])).
  """
  ll, kl = elbo_terms(spec, params, x, labels, rng)
  return jnp.mean(-ll + spec.beta * kl), (ll, kl)


def init(spec: VAESpec, state_spec: StateSpec, rng: jax.Array, batch: dict) -> TrainState:
  """A fresh state; `batch` {'image' [B, H, W, C], 'label' [B]} gives the input shapes."""
  params = spec.network.init({'params': rng}, batch['image'], jax.random.key(0),
                             labels_of(spec, batch))['params']
  return state_spec.create(params)


def train_step(spec: VAESpec, state: TrainState, batch: dict, rng: jax.Array):
  """One update on batch {'image' [B, H, W, C], 'label' [B]} -> (state, metrics)."""
  bin_rng, z_rng = jax.random.split(rng)
  x = prepare(spec, batch['image'], bin_rng)
  (loss, (ll, kl)), grads = jax.value_and_grad(
      lambda p: loss_fn(spec, p, x, labels_of(spec, batch), z_rng), has_aux=True)(state.params)
  return state.apply_gradients(grads), {'loss': loss, 'elbo': jnp.mean(ll - kl),
                                        'recon_nll': -jnp.mean(ll), 'kl': jnp.mean(kl)}


def decode_mean(spec: VAESpec, params, z: jax.Array, labels: jax.Array | None) -> jax.Array:
  """The decoder's mean image [B, H, W, C] in [-1, 1] of codes z [B, Z]."""
  out = spec.network.apply({'params': params}, z, labels, method=VAE.decode)
  return 2.0 * jax.nn.sigmoid(out) - 1.0 if spec.bernoulli else jnp.clip(out, -1.0, 1.0)


@functools.partial(jax.jit, static_argnums=0)
def decode_prior_samples(spec: VAESpec, params, keys: jax.Array,
                         labels: jax.Array | None) -> jax.Array:
  """Decoder means [n, H, W, C] of z ~ N(0, I), one z per key [n]."""
  z = jax.vmap(lambda k: jax.random.normal(k, (spec.latent_dim,)))(keys)
  return decode_mean(spec, params, z, labels)


def sample(spec: VAESpec, state: TrainState, keys: jax.Array,
           labels: jax.Array | None = None) -> jax.Array:
  """Decoder means of z ~ N(0, I), one z per key [n]: [n, H, W, C] in [-1, 1]."""
  if spec.conditional and labels is None:
    raise ValueError('This VAE is conditional: give labels (e.g. --labels=0,1,2 to sample).')
  return decode_prior_samples(spec, state.eval_params, keys, labels if spec.conditional else None)


@functools.partial(jax.jit, static_argnums=0)
def eval_terms(spec: VAESpec, params, x: jax.Array, labels: jax.Array | None,
               rng: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`elbo_terms` jitted for evaluation: (log p(x|z) [B], KL [B])."""
  return elbo_terms(spec, params, x, labels, rng)


def eval_data(spec: VAESpec, ctx: EvalContext) -> tuple[np.ndarray, np.ndarray | None]:
  """The `eval.split` images [N, H, W, C], prepared (binarized once, seeded), and labels [N]."""
  d = ctx.load_split(ctx.config.eval.split, ctx.config.eval.num_examples)
  x = np.asarray(prepare(spec, d['image'], jax.random.key(TEST_BINARIZATION_SEED)))
  return x, d.get('label')


def iwae_nll_batch(spec: VAESpec, params, x: jax.Array, labels: jax.Array | None, k: int,
                   rng: jax.Array) -> jax.Array:
  """-log p(x) [B] of prepared x [B, H, W, C] by the IWAE bound with k importance samples."""
  model = spec.network
  mean, logvar = model.apply({'params': params}, x, labels, method=VAE.encode)
  log_std = 0.5 * logvar

  def sample_q(key, _, n):  # z [n, B, Z] ~ q(z|x)
    return mean + jnp.exp(log_std) * jax.random.normal(key, (n,) + mean.shape)

  def log_q(z, _):
    return gaussian_log_likelihood(z, mean, log_std, event_ndim=1)

  def log_joint(x_, z):  # log p(x|z) + log p(z), [n, B]
    n = z.shape[0]
    flat_labels = None if labels is None else jnp.tile(labels, n)
    out = model.apply({'params': params}, z.reshape(-1, z.shape[-1]), flat_labels,
                      method=VAE.decode)
    ll = log_likelihood(jnp.tile(x_, (n, 1, 1, 1)), out, spec.likelihood, spec.gaussian_sigma)
    return ll.reshape(n, -1) + gaussian_log_likelihood(z, 0.0, 0.0, event_ndim=1)

  return -iwae_log_likelihood(log_joint, sample_q, log_q, x, k, rng, chunk=spec.iwae_chunk)


def iwae_nll(spec: VAESpec, params, x: np.ndarray, labels: np.ndarray | None, k: int,
             rng: jax.Array) -> np.ndarray:
  """-log p(x) per example [N] by the IWAE bound with k importance samples (nats).

  Args:
    spec: the VAE.
    params: its parameters.
    x: prepared data [N, H, W, C].
    labels: [N] for a conditional VAE, else None.
    k: importance samples per example.
    rng: base key; the batch starting at example i draws from fold_in(rng, i).
  """
  # The parameters are closed over (compile-time constants), as in the measured runs: passed as
  # jit arguments instead, XLA's fusion changes the NLL's last bits.
  nll_batch = jax.jit(lambda xb, lb, key: iwae_nll_batch(spec, params, xb, lb, k, key))
  inputs = {'x': x, 'i': np.arange(len(x))} | ({'y': labels} if labels is not None else {})
  return batched_apply(lambda b: nll_batch(b['x'], b.get('y'), jax.random.fold_in(rng, b['i'][0])),
                       inputs, spec.iwae_batch_size)


def evaluate(spec: VAESpec, state: TrainState, ctx: EvalContext) -> dict:
  """Negative ELBO, its terms and (iwae_k > 0) the IWAE NLL on `eval.split`, plus sample metrics."""
  params = state.eval_params
  x, labels = eval_data(spec, ctx)
  rng = jax.random.fold_in(ctx.rng, 1)
  ll, kl = batched_apply(lambda xb: eval_terms(spec, params, xb['x'], xb.get('y'), rng),
                         {'x': x, **({'y': labels} if spec.conditional else {})},
                         ctx.config.data.eval_batch_size)
  result = {'neg_elbo_nats': float(np.mean(kl - ll)), 'kl_nats': float(np.mean(kl)),
            'recon_nll_nats': float(-np.mean(ll)), 'num_test_examples': int(len(x)),
            'test_binarized_once_seed': TEST_BINARIZATION_SEED if spec.bernoulli else None}
  if spec.iwae_k:
    nll = np.asarray(iwae_nll(spec, params, x, labels if spec.conditional else None, spec.iwae_k,
                              jax.random.fold_in(ctx.rng, 2)))
    result.update({'iwae_nll_nats': float(nll.mean()), 'iwae_k': spec.iwae_k,
                   'iwae_nll_bits_per_dim': float(nll.mean() / (x[0].size * math.log(2)))})
  result.update(sampling.evaluate_samples(functools.partial(sample, spec), state, ctx,
                                          num_classes=spec.label_classes))
  return {k: v for k, v in result.items() if v is not None}


def write_images(spec: VAESpec, state: TrainState, ctx: EvalContext) -> list[str]:
  """Reconstructions, interpolation, traversal, the 2-D latent grid, per-label samples (cVAE)."""
  params, model = state.eval_params, spec.network
  x, labels = eval_data(spec, ctx)
  if not spec.conditional:
    labels = None
  enc = jax.jit(lambda xb, lb: model.apply({'params': params}, xb, lb, method=VAE.encode)[0])
  dec = jax.jit(lambda z, lb: decode_mean(spec, params, z, lb))

  def decoder_for(label):  # Decodes codes for one class (or unconditionally).
    return lambda z: np.asarray(dec(z, None if label is None else jnp.full(len(z), label)))

  eval_batch_size = ctx.config.data.eval_batch_size
  inputs = {'x': x} | ({'y': labels} if labels is not None else {})
  codes = batched_apply(lambda b: enc(b['x'], b.get('y')), inputs, eval_batch_size)
  label0 = None if labels is None else int(labels[0])
  out = ctx.images_dir
  n = 16
  recon = np.asarray(dec(codes[:n], None if labels is None else labels[:n]))
  paths = [viz_latent.save_pairs(x[:n], recon, os.path.join(out, 'reconstructions.png'))]
  if spec.latent_dim == 2:
    paths.append(viz_latent.latent_grid(decoder_for(label0 if spec.conditional else None),
                                        os.path.join(out, 'latent_grid.png')))
  # Between the first test digit and the first one of another class.
  test_labels = ctx.load_split(ctx.config.eval.split, ctx.config.eval.num_examples).get('label')
  other = int(np.argmax(test_labels != test_labels[0])) if test_labels is not None else 1
  paths.append(viz_latent.interpolation(decoder_for(label0), codes[0], codes[other],
                                        os.path.join(out, 'interpolation.png')))
  mean, logvar = batched_apply(
      lambda b: model.apply({'params': params}, b['x'], b.get('y'), method=VAE.encode),
      inputs, eval_batch_size)
  kl_per_dim = np.mean(0.5 * (np.exp(logvar) + mean**2 - 1 - logvar), 0)
  paths.append(viz_latent.traversal(decoder_for(label0), codes[0], kl_per_dim,
                                    os.path.join(out, 'traversal.png')))
  if spec.conditional:
    per_label = sampling.draw(functools.partial(sample, spec), state,
                              jax.random.fold_in(ctx.rng, 3), 100, np.repeat(np.arange(10), 10))
    paths.append(viz_latent.save_rows(per_label, 10, os.path.join(out, 'samples_per_label.png')))
  return paths


def make(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Method:
  """The VAE method: `config.vae` decoded once (with the data's shape), the functions bound to it."""
  spec = config_lib.decode(VAESpec, config, 'vae', image_shape=tuple(image_shape),
                           compute_dtype=config.train.compute_dtype)
  state_spec = StateSpec.from_config(config)
  bind = lambda fn: functools.partial(fn, spec)
  return Method(init=functools.partial(init, spec, state_spec), train_step=bind(train_step),
                evaluate=bind(evaluate), sample=bind(sample), write_images=bind(write_images),
                num_classes=spec.label_classes)
