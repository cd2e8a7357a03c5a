"""Log-likelihoods: the IWAE bound (Burda et al. 2015), simple decoders, bits/dim.

The importance-weighted bound with k samples from a proposal q(z|x),

    log p(x) >= L_k = E[log (1/k) sum_i p(x, z_i) / q(z_i|x)],   z_i ~ q(z|x),

is the standard VAE test log-likelihood (k=5000 in Burda et al.); L_1 is
the ELBO, L_k grows with k and reaches log p(x) as k -> inf, or at any k
when q is the exact posterior. The discretized Gaussian decoder of diffusion
models lives in genjax.diffusion; this module keeps the pieces a VAE needs.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp


def iwae_bound(log_weights: jax.Array) -> jax.Array:
  """log (1/K) sum_k exp(log_weights[k]) per example, computed stably (logsumexp).

  Args:
    log_weights: [K, B] log p(x_b, z_kb) - log q(z_kb | x_b), K >= 1.

  Returns:
    [B] bounds in nats.
  """
  log_weights = jnp.asarray(log_weights)
  if log_weights.ndim != 2 or log_weights.shape[0] < 1:
    raise ValueError(f'log_weights must be [K, B] with K >= 1; got shape {log_weights.shape}.')
  return jax.nn.logsumexp(log_weights, axis=0) - math.log(log_weights.shape[0])


def iwae_log_likelihood(log_joint_fn: Callable, sample_q_fn: Callable, log_q_fn: Callable,
                        x: jax.Array, k: int, rng: jax.Array, chunk: int = 100) -> jax.Array:
  """The IWAE bound L_k of a batch, drawing the k samples in chunks.

  Each chunk of `chunk` samples is reduced to its logsumexp [B] right away,
  so memory holds one chunk (k=5000 needs no more than k=100), and the chunk
  results combine exactly: logsumexp over all k = logsumexp of the chunks'.
  Chunk i uses `fold_in(rng, i)`. One compile for the full chunks, one for a
  remainder when chunk does not divide k.

  Args:
    log_joint_fn: (x [B, ...], z [n, B, ...]) -> log p(x, z) [n, B].
    sample_q_fn: (rng, x [B, ...], n) -> z [n, B, ...] drawn from q(z|x);
      n is a Python int.
    log_q_fn: (z [n, B, ...], x [B, ...]) -> log q(z|x) [n, B].
    x: [B, ...] data.
    k: number of importance samples, >= 1.
    rng: PRNG key.
    chunk: samples per chunk, >= 1 (memory ~ chunk * B * latent size).

  Returns:
    [B] lower bounds on log p(x) in nats.
  """
  if k < 1 or chunk < 1:
    raise ValueError(f'iwae_log_likelihood needs k >= 1 and chunk >= 1; got k={k}, chunk={chunk}.')
  batch = jnp.shape(x)[0]

  def chunk_lse(key, n):
    z = sample_q_fn(key, x, n)
    log_w = log_joint_fn(x, z) - log_q_fn(z, x)
    if log_w.shape != (n, batch):
      raise ValueError(f'log_joint_fn - log_q_fn must give [n, B] = [{n}, {batch}]; got {log_w.shape}.')
    return jax.nn.logsumexp(log_w, axis=0)  # [B]

  size = min(chunk, k)
  num_full, rest = divmod(k, size)
  keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(num_full + (rest > 0)))
  parts = [jax.lax.map(lambda key: chunk_lse(key, size), keys[:num_full])]  # [num_full, B]
  if rest:
    parts.append(jax.jit(chunk_lse, static_argnums=1)(keys[-1], rest)[None])
  return jax.nn.logsumexp(jnp.concatenate(parts), axis=0) - math.log(k)


def _sum_event(x: jax.Array, event_ndim: int) -> jax.Array:
  if event_ndim < 0 or event_ndim > x.ndim:
    raise ValueError(f'event_ndim must be in [0, {x.ndim}] for an array of shape {x.shape}; '
                     f'got {event_ndim}.')
  return jnp.sum(x, axis=tuple(range(x.ndim - event_ndim, x.ndim)))


def bernoulli_log_likelihood(x: jax.Array, logits: jax.Array, event_ndim: int = 3) -> jax.Array:
  """log Bernoulli(x; sigmoid(logits)), summed over the event axes.

  x log s + (1 - x) log(1 - s) = x * logits - softplus(logits), stable for
  any logits. For binarized MNIST, x in {0, 1}.

  Args:
    x: [..., *event] targets in [0, 1].
    logits: broadcastable to x.
    event_ndim: trailing axes summed (3 for [H, W, C] images, 1 for vectors).

  Returns:
    [...] log-likelihoods in nats.
  """
  x, logits = jnp.broadcast_arrays(jnp.asarray(x, jnp.float32), jnp.asarray(logits, jnp.float32))
  return _sum_event(x * logits - jax.nn.softplus(logits), event_ndim)


def gaussian_log_likelihood(x: jax.Array, mean: jax.Array, log_scale: jax.Array,
                            event_ndim: int = 3) -> jax.Array:
  """log N(x; mean, exp(log_scale)^2), a continuous density, summed over the event axes.

  Args:
    x: [..., *event] values.
    mean: broadcastable to x.
    log_scale: log standard deviation, broadcastable to x.
    event_ndim: trailing axes summed.

  Returns:
    [...] log-densities in nats (a density: see `nats_to_bits_per_dim` for
    comparing it with discrete likelihoods).
  """
  x, mean, log_scale = jnp.broadcast_arrays(*(jnp.asarray(a, jnp.float32) for a in (x, mean, log_scale)))
  z = (x - mean) * jnp.exp(-log_scale)
  return _sum_event(-0.5 * z * z - log_scale - 0.5 * math.log(2 * math.pi), event_ndim)


def nats_to_bits_per_dim(nats, num_dims: int, bin_width: float = 1.0):
  """Negative log-likelihood in nats per example -> bits per dimension.

  For a discrete model of 8-bit data (a probability per pixel value, e.g.
  a Bernoulli or discretized decoder) bits/dim = nats / (D ln 2). A
  continuous density on rescaled data is not a probability: with x the 8-bit
  integers divided into bins of width w (w = 1/256 for data in [0, 1] with
  uniform dequantization, 2/256 for [-1, 1]), P(bin) ~= p(x) w^D, so the
  discrete NLL is nats - D ln w = nats + D ln(1/w) before dividing by D ln 2.

  Args:
    nats: NLL in nats per example (scalar or array).
    num_dims: D, e.g. H * W * C.
    bin_width: w; 1.0 when nats is already a discrete NLL.

  Returns:
    bits per dimension, same shape as nats.
  """
  if num_dims < 1 or bin_width <= 0:
    raise ValueError(f'num_dims must be >= 1 and bin_width > 0; got {num_dims}, {bin_width}.')
  return (nats - num_dims * math.log(bin_width)) / (num_dims * math.log(2.0))
