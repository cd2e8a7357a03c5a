"""Samplers: pure functions `sample_NAME(denoise, x, sigmas, *, rng=None, **knobs) -> x`.

The contract (k-diffusion style, in JAX), shared by every sampler's Args:
  * denoise: `(x [B, ...], sigma [] or [B]) -> x0_hat [B, ...]` in sigma form,
    x = x0 + sigma * eps (`genjax.diffusion.denoisers`); samplers pass a scalar sigma.
  * x: [B, ...] (e.g. NHWC), starting as `sigmas[0] * noise`.
  * sigmas: [n + 1], strictly decreasing, ending with 0 (`genjax.diffusion.schedules`).
  * rng: ignored by deterministic samplers. Stochastic ones draw the noise of
    step i from `fold_in(rng, i)`; rng may also be a batch of keys [B], one
    per sample, so that a sample does not depend on the batch it is drawn in
    (EDM's per-sample seeds).
  * Returns: [B, ...] the sample at sigma = 0, dtype of x.
Steps loop with `lax.scan`; no parameters, configs or pmap inside: callers jit
and shard. The last step, to sigma = 0, returns the denoised output at
sigmas[n - 1] (an Euler step to 0), as in k-diffusion and EDM.

In sigma form the probability-flow ODE is dx/dsigma = (x - D(x, sigma)) / sigma
(Karras et al. 2022, eq. 3 with s = 1); with lambda = -log sigma it is
dx/dlambda = D - x, which the exponential integrators (DPM-Solver++, UniPC)
solve exactly for constant D.

The library's samplers live in `single_step` and `multistep` (shared pieces in
`base`); `SAMPLERS` and `NFE` below are the explicit registry. A new sampler is
not added to them: `samplers_with({'mine': fn})` and `nfe_with({'mine': count})`
return extended copies that a caller passes on (`SampleSpec(samplers=...)`,
`nfe(..., counts=...)`); see experiments/new_sampler/.
"""
from __future__ import annotations

from typing import Callable

import jax

from genjax.diffusion.samplers.base import Denoiser
from genjax.diffusion.samplers.multistep import (sample_dpmpp_2m, sample_dpmpp_2m_sde,
                                                 sample_dpmpp_3m, sample_ipndm, sample_unipc)
from genjax.diffusion.samplers.single_step import (sample_ddim, sample_ddpm, sample_dpmpp_2s,
                                                   sample_euler, sample_euler_ancestral,
                                                   sample_heun, sample_pc_langevin)
# RePaint conditions on known pixels (knobs `known`, `mask`), so it is not in SAMPLERS, whose
# samplers draw from the model unconditionally.
from genjax.diffusion.samplers.repaint import repaint_nfe, repaint_schedule, sample_repaint

# name -> sampler: the library, explicit.
SAMPLERS: dict[str, Callable[..., jax.Array]] = {
    'euler': sample_euler, 'euler_ancestral': sample_euler_ancestral, 'heun': sample_heun,
    'ddim': sample_ddim, 'ddpm': sample_ddpm, 'dpmpp_2s': sample_dpmpp_2s,
    'dpmpp_2m': sample_dpmpp_2m, 'dpmpp_3m': sample_dpmpp_3m,
    'dpmpp_2m_sde': sample_dpmpp_2m_sde, 'unipc': sample_unipc, 'ipndm': sample_ipndm,
    'pc_langevin': sample_pc_langevin,
}

# NFE for n steps (and the sampler's knobs); the tests check them against counted calls.
NFE: dict[str, Callable[..., int]] = {
    **{name: lambda n, **_: n for name in SAMPLERS},
    'heun': lambda n, **_: 2 * n - 1,
    'dpmpp_2s': lambda n, **_: 2 * n - 1,
    'pc_langevin': lambda n, n_corrector_steps=1, **_: n * (1 + n_corrector_steps),
}


def nfe(name: str, n: int, *, counts: dict[str, Callable[..., int]] = NFE, **knobs) -> int:
  """Number of denoiser calls sampler `name` makes for n steps (len(sigmas) - 1).

  Args:
    name: a key of `counts`.
    n: number of steps.
    counts: the table of counts: NFE, or `nfe_with(...)` for a user's samplers.
    **knobs: the sampler's knobs where they matter (pc_langevin's n_corrector_steps).
  """
  if name not in counts:
    raise ValueError(f'Unknown sampler {name!r}; accepted: {sorted(counts)}.')
  return counts[name](n, **knobs)


def _extended(table: dict, extra: dict, what: str) -> dict:
  clash = sorted(set(extra) & set(table))
  if clash:
    raise ValueError(f'{clash} already name library samplers; give a new {what} another name.')
  return {**table, **extra}


def samplers_with(extra: dict[str, Callable[..., jax.Array]]) -> dict[str, Callable[..., jax.Array]]:
  """SAMPLERS plus a user's samplers, as a new dict; SAMPLERS itself never changes.

  Args:
    extra: name -> sampler following the contract above; names must be new.

  Returns:
    The table to pass on, e.g. to `genjax.methods.diffusion.SampleSpec(samplers=...)`.

  Raises:
    ValueError: a name of `extra` is already a library sampler.
  """
  return _extended(SAMPLERS, extra, 'sampler')


def nfe_with(extra: dict[str, Callable[..., int]]) -> dict[str, Callable[..., int]]:
  """NFE plus the counts of a user's samplers (name -> (n, **knobs) -> calls), as a new dict.

  Pass it to `nfe(name, n, counts=...)`; `count_nfe` checks a count against the calls that run.
  """
  return _extended(NFE, extra, 'sampler count')


def count_nfe(denoise: Denoiser) -> tuple[Denoiser, Callable[[], int]]:
  """Wraps a denoiser so that its calls are counted when they run, not when traced.

  Each call fires a `jax.debug.callback`, so a call inside `lax.scan` counts
  once per iteration, under jit too. One batched call is one NFE.

  Returns:
    (counted_denoise, count): count() waits for pending calls and returns the total so far.
  """
  calls = [0]

  def increment():
    calls[0] += 1

  def counted(x, sigma):
    jax.debug.callback(increment)
    return denoise(x, sigma)

  def count() -> int:
    jax.effects_barrier()
    return calls[0]
  return counted, count
