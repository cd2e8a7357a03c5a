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
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genjax import config as config_lib
from genjax.methods import sampling
from genjax.core.batching import batched_apply
from genjax.methods.api import EvalContext, Method
from genjax.metrics.likelihood import (bernoulli_log_likelihood, gaussian_log_likelihood,
                                       iwae_log_likelihood)
from genjax.models.vae import VAE
from genjax.core.optim import make_optimizer
from genjax.core.state import TrainState
from genjax.viz import latent as viz_latent

LIKELIHOODS = ('bernoulli', 'gaussian')
_TEST_BINARIZATION_SEED = 1234  # The test digits are binarized once, identically for every run.


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

  def __post_init__(self):
    config_lib.check_choice('vae.likelihood', self.likelihood, LIKELIHOODS)
    config_lib.check_range('vae.latent_dim', self.latent_dim, low=1)
    config_lib.check_range('vae.beta', self.beta, low=0.0)
    config_lib.check_range('vae.gaussian_sigma', self.gaussian_sigma, low=0.0, low_open=True)
    config_lib.check_range('vae.iwae_k', self.iwae_k, low=0)
    config_lib.check_range('vae.iwae_chunk', self.iwae_chunk, low=1)
    config_lib.check_range('vae.iwae_batch_size', self.iwae_batch_size, low=1)


def make_model(config: ml_collections.ConfigDict, image_shape) -> VAE:
  m = config.model
  if m.name not in MODELS:
    raise ValueError(f'method.name=vae takes model.name in {MODELS}, got {m.name!r}.')
  return VAE(image_shape=tuple(image_shape), latent_dim=m.latent_dim,
             enc_channels=tuple(m.channels), dec_channels=tuple(reversed(m.channels)),
             hidden=m.hidden_dim, num_classes=m.num_classes if m.conditional else 0)


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


def make(config: ml_collections.ConfigDict, image_shape) -> Method:
  """The VAE method bound to `config` (see `genjax.methods.api.Method`)."""
  model = make_model(config, image_shape)
  tx = make_optimizer(config.optim, config.train.num_steps)
  mc = config.method
  if mc.likelihood not in LIKELIHOODS:
    raise ValueError(f'method.likelihood={mc.likelihood!r}; accepted: {LIKELIHOODS}.')
  conditional = bool(config.model.conditional)
  bernoulli = mc.likelihood == 'bernoulli'

  def prepare(images, rng):
    return binarize(images, rng) if bernoulli else images

  def labels_of(batch):
    return batch['label'] if conditional else None

  def elbo_terms(params, x, labels, rng):
    out, mean, logvar, _ = model.apply({'params': params}, x, rng, labels)
    ll = log_likelihood(x, out, mc.likelihood, mc.gaussian_sigma)
    return ll, gaussian_kl(mean, logvar)

  def init(rng, batch):
    params = model.init({'params': rng}, batch['image'], jax.random.key(0), labels_of(batch))['params']
    return TrainState.create(params=params, tx=tx, ema_decay=config.train.ema_decay,
                             ema_warmup=config.train.ema_warmup)

  def train_step(state, batch, rng):
    bin_rng, z_rng = jax.random.split(rng)
    x = prepare(batch['image'], bin_rng)

    def loss_fn(params):
      ll, kl = elbo_terms(params, x, labels_of(batch), z_rng)
      return jnp.mean(-ll + mc.beta * kl), (ll, kl)

    (loss, (ll, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads), {'loss': loss, 'elbo': jnp.mean(ll - kl),
                                          'recon_nll': -jnp.mean(ll), 'kl': jnp.mean(kl)}

  def decode_mean(params, z, labels):
    out = model.apply({'params': params}, z, labels, method=VAE.decode)
    return 2.0 * jax.nn.sigmoid(out) - 1.0 if bernoulli else jnp.clip(out, -1.0, 1.0)

  @jax.jit
  def _sample(params, keys, labels):
    z = jax.vmap(lambda k: jax.random.normal(k, (config.model.latent_dim,)))(keys)
    return decode_mean(params, z, labels)

  def sample(state, keys, labels=None):
    """Decoder means of z ~ N(0, I), one z per key: [n, H, W, C] in [-1, 1]."""
    if conditional and labels is None:
      raise ValueError('This VAE is conditional: give labels (e.g. --labels=0,1,2 to sample).')
    return _sample(state.eval_params, keys, labels if conditional else None)

  @jax.jit
  def _test_terms(params, x, labels, rng):
    ll, kl = elbo_terms(params, x, labels, rng)
    return ll, kl

  def test_data(ctx: EvalContext):
    d = ctx.load_split(config.eval.split, config.eval.num_examples)
    x = np.asarray(prepare(d['image'], jax.random.key(_TEST_BINARIZATION_SEED)))
    return x, d.get('label')

  def iwae_nll(params, x, labels, k, rng):
    """-log p(x) per example [N] by the IWAE bound with k importance samples (nats)."""

    def nll_batch(xb, lb, key):
      mean, logvar = model.apply({'params': params}, xb, lb, method=VAE.encode)
      log_std = 0.5 * logvar

      def sample_q(key, _, n):  # z [n, B, Z] ~ q(z|x)
        return mean + jnp.exp(log_std) * jax.random.normal(key, (n,) + mean.shape)

      def log_q(z, _):
        return gaussian_log_likelihood(z, mean, log_std, event_ndim=1)

      def log_joint(x_, z):  # log p(x|z) + log p(z), [n, B]
        n = z.shape[0]
        flat_labels = None if lb is None else jnp.tile(lb, n)
        out = model.apply({'params': params}, z.reshape(-1, z.shape[-1]), flat_labels,
                          method=VAE.decode)
        ll = log_likelihood(jnp.tile(x_, (n, 1, 1, 1)), out, mc.likelihood, mc.gaussian_sigma)
        return ll.reshape(n, -1) + gaussian_log_likelihood(z, 0.0, 0.0, event_ndim=1)

      return -iwae_log_likelihood(log_joint, sample_q, log_q, xb, k, key, chunk=mc.iwae_chunk)

    nll_batch = jax.jit(nll_batch)
    inputs = {'x': x, 'i': np.arange(len(x))} | ({'y': labels} if labels is not None else {})
    return batched_apply(lambda b: nll_batch(b['x'], b.get('y'), jax.random.fold_in(rng, b['i'][0])),
                         inputs, mc.iwae_batch_size)

  def evaluate(state, ctx: EvalContext):
    params = state.eval_params
    x, labels = test_data(ctx)
    rng = jax.random.fold_in(ctx.rng, 1)
    ll, kl = batched_apply(lambda xb: _test_terms(params, xb['x'], xb.get('y'), rng),
                           {'x': x, **({'y': labels} if conditional else {})},
                           config.data.eval_batch_size)
    result = {'neg_elbo_nats': float(np.mean(kl - ll)), 'kl_nats': float(np.mean(kl)),
              'recon_nll_nats': float(-np.mean(ll)), 'num_test_examples': int(len(x)),
              'test_binarized_once_seed': _TEST_BINARIZATION_SEED if bernoulli else None}
    if mc.iwae_k:
      nll = np.asarray(iwae_nll(params, x, labels if conditional else None, mc.iwae_k,
                                jax.random.fold_in(ctx.rng, 2)))
      result.update({'iwae_nll_nats': float(nll.mean()), 'iwae_k': mc.iwae_k,
                     'iwae_nll_bits_per_dim': float(nll.mean() / (x[0].size * math.log(2)))})
    result.update(sampling.evaluate_samples(sample, state, ctx))
    return {k: v for k, v in result.items() if v is not None}

  def write_images(state, ctx: EvalContext):
    params = state.eval_params
    x, labels = test_data(ctx)
    if not conditional:
      labels = None
    enc = jax.jit(lambda xb, lb: model.apply({'params': params}, xb, lb, method=VAE.encode)[0])
    dec = jax.jit(lambda z, lb: decode_mean(params, z, lb))

    def decoder_for(label):  # Decodes codes for one class (or unconditionally).
      return lambda z: np.asarray(dec(z, None if label is None else jnp.full(len(z), label)))

    inputs = {'x': x} | ({'y': labels} if labels is not None else {})
    codes = batched_apply(lambda b: enc(b['x'], b.get('y')), inputs, config.data.eval_batch_size)
    label0 = None if labels is None else int(labels[0])
    out = ctx.images_dir
    n = 16
    recon = np.asarray(dec(codes[:n], None if labels is None else labels[:n]))
    paths = [viz_latent.save_pairs(x[:n], recon, os.path.join(out, 'reconstructions.png'))]
    if config.model.latent_dim == 2:
      paths.append(viz_latent.latent_grid(decoder_for(label0 if conditional else None),
                                          os.path.join(out, 'latent_grid.png')))
    # Between the first test digit and the first one of another class.
    test_labels = ctx.load_split(config.eval.split, config.eval.num_examples).get('label')
    other = int(np.argmax(test_labels != test_labels[0])) if test_labels is not None else 1
    paths.append(viz_latent.interpolation(decoder_for(label0), codes[0], codes[other],
                                          os.path.join(out, 'interpolation.png')))
    mean, logvar = batched_apply(
        lambda b: model.apply({'params': params}, b['x'], b.get('y'), method=VAE.encode),
        inputs, config.data.eval_batch_size)
    kl_per_dim = np.mean(0.5 * (np.exp(logvar) + mean**2 - 1 - logvar), 0)
    paths.append(viz_latent.traversal(decoder_for(label0), codes[0], kl_per_dim,
                                      os.path.join(out, 'traversal.png')))
    if conditional:
      per_label = sampling.draw(sample, state, jax.random.fold_in(ctx.rng, 3), 100,
                                np.repeat(np.arange(10), 10))
      paths.append(viz_latent.save_rows(per_label, 10, os.path.join(out, 'samples_per_label.png')))
    return paths

  return Method(init=init, train_step=train_step, evaluate=evaluate, sample=sample,
                write_images=write_images)
