"""RePaint (Lugmayr et al. 2022): inpainting with an unconditional diffusion model, no training.

In sigma form (x = x0 + sigma eps, the package's contract) one reverse step from sigma_i to
sigma_{i+1} is (the paper's Algorithm 1, lines 5-8):

    known   = y + sigma_{i+1} z1                                  (forward-noised input)
    unknown ~ N(x0_hat + (sigma_{i+1} / sigma_i)^2 (x - x0_hat),
                sigma_{i+1}^2 (sigma_i^2 - sigma_{i+1}^2) / sigma_i^2)   (DDPM posterior)
    x       = m * known + (1 - m) * unknown,                       m = 1 on known pixels

and the resampling jump back up from sigma_{i+1} to sigma_i (line 10, q(x_t | x_{t-1})) is
x + sqrt(sigma_i^2 - sigma_{i+1}^2) z. The last step, to sigma = 0, returns m y + (1 - m)
x0_hat, so known pixels come back exactly. Jumps follow the paper's schedule
(`repaint_schedule`: every `jump_length` steps, go back up `jump_length` steps, `jump_n_sample
- 1` times); jump_n_sample = 1 is plain replacement (no resampling).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from genjax.diffusion.samplers.base import Denoiser, require_rng, step_noise
from genjax.diffusion.schedules import check_sigmas


def repaint_schedule(n: int, jump_length: int = 10, jump_n_sample: int = 10) -> np.ndarray:
  """The levels RePaint visits: indices into sigmas [n + 1], from 0 (noise) to n (sigma 0).

  The official `get_schedule_jump` with t_T = n: time t = n - index goes down one step at
  a time; after reaching a time t in {0, jump_length, 2 jump_length, ...} < n - jump_length
  it goes back up jump_length steps, jump_n_sample - 1 times per such t.

  Returns:
    int32 [L] with L - 1 = n + 2 (jump_n_sample - 1) jump_length #jump points moves;
    consecutive entries differ by 1.
  """
  if n < 1 or jump_length < 1 or jump_n_sample < 1:
    raise ValueError(f'RePaint needs n >= 1 steps, jump_length >= 1 and jump_n_sample >= 1; got '
                     f'{n}, {jump_length}, {jump_n_sample}.')
  jumps = {t: jump_n_sample - 1 for t in range(0, n - jump_length, jump_length)}
  t, times = n, [n]
  while t >= 1:
    t -= 1
    times.append(t)
    if jumps.get(t, 0) > 0:
      jumps[t] -= 1
      for _ in range(jump_length):
        t += 1
        times.append(t)
  return (n - np.asarray(times)).astype(np.int32)


def repaint_nfe(n: int, jump_length: int = 10, jump_n_sample: int = 10) -> int:
  """Denoiser calls of `sample_repaint`: the downward moves of the schedule."""
  levels = repaint_schedule(n, jump_length, jump_n_sample)
  return int(np.sum(np.diff(levels) > 0))


def sample_repaint(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, *, rng=None,
                   known: jax.Array, mask: jax.Array, jump_length: int = 10,
                   jump_n_sample: int = 10) -> jax.Array:
  """RePaint (Lugmayr et al. 2022, Algorithm 1) in sigma form. NFE = `repaint_nfe`.

  Args:
    known: y [B, ...], the image whose known pixels are kept (holes: any finite value).
    mask: [B, ...] or broadcastable to x (e.g. [B, H, W, 1]), 1 = known, 0 = hole.
    jump_length: steps per resampling jump (the paper's j).
    jump_n_sample: passes over each jump (the paper's r); 1 = no resampling.
    denoise, x, sigmas, rng (required) and Returns: the package's contract; the known
      pixels of the result equal `known` exactly where mask is 1.
  """
  require_rng(rng, 'RePaint', 'ancestral steps and forward-noised known pixels')
  sigmas = check_sigmas(sigmas)
  levels = repaint_schedule(sigmas.shape[0] - 1, jump_length, jump_n_sample)
  mask = jnp.asarray(mask, x.dtype)
  known = jnp.asarray(known, x.dtype)
  moves = (jnp.arange(len(levels) - 1), jnp.asarray(levels[:-1]), jnp.asarray(levels[1:]))

  def down(x, k, s, s_next):
    x0 = denoise(x, s).astype(x.dtype)
    mean = x0 + (s_next / s) ** 2 * (x - x0)
    std = s_next * jnp.sqrt(s ** 2 - s_next ** 2) / s
    unknown = mean + std * step_noise(rng, 2 * k, x)
    noised_known = known + s_next * step_noise(rng, 2 * k + 1, x)
    return mask * noised_known + (1 - mask) * unknown

  def up(x, k, s_high, s_low):  # q(x_t | x_{t-1}) in sigma form: add the variance difference.
    return x + jnp.sqrt(s_high ** 2 - s_low ** 2) * step_noise(rng, 2 * k, x)

  def step(x, move):
    k, a, b = move
    s_a, s_b = sigmas[a], sigmas[b]
    x = jax.lax.cond(b > a, lambda x: down(x, k, s_a, s_b), lambda x: up(x, k, s_b, s_a), x)
    return x, None

  x, _ = jax.lax.scan(step, x, moves)
  # The last move lands on sigma = 0 with std 0: x = m y + (1 - m) x0_hat; pasting y back
  # makes known pixels exact whatever the float rounding of m * y.
  return jnp.where(mask > 0, known, x).astype(x.dtype)
