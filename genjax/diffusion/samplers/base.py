"""Shared pieces of the samplers: the step loop, each step's noise, the ancestral update.

Every sampler of this package is written with these (see the package docstring
for the contract); a new sampler may use them too.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from genjax.diffusion.schedules import check_sigmas

Denoiser = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, ...], sigma [] or [B]) -> x0_hat


def is_zero(value) -> bool:
  """A knob that is statically 0 (a Python number), so the sampler is deterministic."""
  return isinstance(value, (int, float)) and value == 0


def require_rng(rng, name: str, why: str) -> None:
  """Raises ValueError naming sampler `name` and why it is stochastic when rng is None."""
  if rng is None:
    raise ValueError(f'{name} is stochastic ({why}) and needs rng=<a PRNG key or a batch of keys [B]>.')


def step_noise(rng: jax.Array, i: jax.Array, x: jax.Array) -> jax.Array:
  """Noise of step i: normal(fold_in(rng, i)), or per sample for a batch of keys."""
  typed = jnp.issubdtype(rng.dtype, jax.dtypes.prng_key)
  if rng.ndim == (1 if typed else 2):  # a batch of keys, one per sample
    return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, i), x.shape[1:], x.dtype))(rng)
  return jax.random.normal(jax.random.fold_in(rng, i), x.shape, x.dtype)


def scan_steps(body: Callable, carry, sigmas: jax.Array):
  """Runs `carry = body(carry, i, sigmas[i], sigmas[i + 1])` for i = 0 .. n-2 with lax.scan.

  These are the steps that end at a nonzero noise level; each sampler then
  takes the last step, to 0, itself. The carry keeps its dtypes (e.g.
  bfloat16 samples under float32 sigmas).
  """
  n = sigmas.shape[0] - 1

  def step(c, xs):
    new = body(c, *xs)
    return jax.tree.map(lambda old, upd: upd.astype(old.dtype), c, new), None
  carry, _ = jax.lax.scan(step, carry, (jnp.arange(n - 1), sigmas[:-2], sigmas[1:-1]))
  return carry


def eta_split(eta):
  """(sigma, sigma_next) -> (sigma_down, sigma_up): eta times the posterior's noise.

  sigma_up^2 = eta^2 sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2 is eta^2
  times the variance of q(x_next | x, x0) in sigma form, and
  sigma_down^2 = sigma_next^2 - sigma_up^2 keeps the marginal variance.
  """
  def split(sigma, sigma_next):
    up = jnp.minimum(sigma_next, eta * sigma_next * jnp.sqrt(sigma ** 2 - sigma_next ** 2) / sigma)
    return jnp.sqrt(sigma_next ** 2 - up ** 2), up
  return split


def ancestral(denoise, x, sigmas, rng, split_fn, s_noise=1.0):
  """x_next = x0_hat + sigma_down eps_hat + s_noise sigma_up z, eps_hat = (x - x0_hat) / sigma.

  In sigma form DDPM, DDIM and Euler ancestral are all this update; they
  differ in how a step's noise is split (`split_fn`). A split with
  sigma_up = 0 is deterministic and needs no rng.
  """
  sigmas = check_sigmas(sigmas)

  def body(x, i, sigma, sigma_next):
    x0 = denoise(x, sigma)
    down, up = split_fn(sigma, sigma_next)
    x = x0 + down * (x - x0) / sigma
    return x if rng is None else x + s_noise * up * step_noise(rng, i, x)
  return final_step(denoise, scan_steps(body, x, sigmas), sigmas)


def final_step(denoise, x, sigmas):
  """The last step, to sigma = 0: the denoised output."""
  return denoise(x, sigmas[-2]).astype(x.dtype)
