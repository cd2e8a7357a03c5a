"""Write a sampler, give it a table entry, and measure its order of convergence (see README.md).

Importing this file registers nothing: it defines EXTRA_SAMPLERS and EXTRA_NFE,
which a caller passes on explicitly (`samplers.samplers_with`, `samplers.nfe_with`;
experiments/sampler_nfe/run.py --extra_samplers=this file).
"""
import jax
import jax.numpy as jnp
import numpy as np

from genjax.diffusion import denoisers, samplers, schedules


def sample_midpoint(denoise, x, sigmas, *, rng=None):
  """Explicit midpoint method (Runge 1895) on dx/dsigma = (x - D(x, sigma)) / sigma. NFE = 2n - 1."""
  def step(x, sigma_pair):
    sigma, sigma_next = sigma_pair
    sigma_mid = 0.5 * (sigma + sigma_next)
    x_mid = x + (sigma_mid - sigma) * (x - denoise(x, sigma)) / sigma
    return x + (sigma_next - sigma) * (x_mid - denoise(x_mid, sigma_mid)) / sigma_mid, None
  x, _ = jax.lax.scan(step, x, (sigmas[:-2], sigmas[1:-1]))  # the steps ending above 0
  return denoise(x, sigmas[-2])  # the last step, to sigma = 0: the denoised output


EXTRA_SAMPLERS = {'mine': sample_midpoint}  # explicit entries: no registry changes on import
EXTRA_NFE = {'mine': lambda n, **_: 2 * n - 1}  # denoiser calls for n steps


def main():
  jax.config.update('jax_enable_x64', True)  # so round-off does not hide the order
  table, counts = samplers.samplers_with(EXTRA_SAMPLERS), samplers.nfe_with(EXTRA_NFE)
  rs = np.random.RandomState(0)
  mu, std = jnp.asarray(rs.uniform(-1, 1, 4)), jnp.asarray(rs.uniform(0.5, 1.0, 4))
  means = jnp.asarray(np.stack([rs.randn(4) * 0.3 + 0.6, rs.randn(4) * 0.3 - 0.6]))
  problems = {  # data set -> its exact denoiser
      'gaussian': denoisers.make_gaussian_denoiser(mu, std),
      'mixture': denoisers.make_gaussian_mixture_denoiser(jnp.array([0.3, 0.7]), means, 0.45)}
  sigma_max, steps = 80.0, (24, 48, 96)
  x = sigma_max * jnp.asarray(rs.randn(16, 4))
  sigmas = [schedules.karras_sigmas(n, 0.002, sigma_max) for n in steps]
  print(f'{"data":>8} {"sampler":>7} | ' + ' | '.join(f'err n={n:<3}' for n in steps) + ' | order')
  for problem, denoise in problems.items():
    if problem == 'gaussian':  # the probability-flow ODE in closed form, then the last (denoising) step
      exact = denoise(denoisers.gaussian_pf_ode_solution(x, sigma_max, 0.002, mu, std), 0.002)
    else:  # a reference from a 4th-order solver with 20x more steps
      exact = jax.jit(samplers.sample_unipc, static_argnums=0)(denoise, x, schedules.karras_sigmas(
          20 * steps[-1], 0.002, sigma_max))
    for name in ('euler', 'heun', 'mine'):
      counted, count = samplers.count_nfe(denoise)
      outs = jax.jit(lambda x: [table[name](counted, x, s) for s in sigmas])(x)
      # The table's count is what runs.
      assert count() == sum(samplers.nfe(name, n, counts=counts) for n in steps)
      errors = [float(jnp.sqrt(jnp.mean((out - exact) ** 2))) for out in outs]
      order = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
      print(f'{problem:>8} {name:>7} | ' + ' | '.join(f'{e:9.2e}' for e in errors) + f' | {order:5.2f}')


if __name__ == '__main__':
  main()
