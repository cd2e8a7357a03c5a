"""How fast can each GAN generator learn to follow its latent? Memorize N digits by regression.

  .venv/bin/python experiments/gan_mnist/fit_generators.py --config=configs/stylegan_mnist.py
  .venv/bin/python experiments/gan_mnist/fit_generators.py --config=configs/dcgan_mnist.py --lr=2e-4 --b1=0.5

No discriminator: the generator of `--config` (its architecture as configured, overrides as
`--set=model.gen_channels=(128,64,32,16)`) regresses N fixed latents onto the first N
training digits by mean squared error, with Adam. A generator that cannot make N different
digits from N different latents in a few hundred steps gives a GAN little more than one
image to offer, which is what a mode collapse looks like. Prints the MSE every 50 steps and,
for scale, the MSE of the mean image (what a generator ignoring its latent reaches).
StyleGAN: noise inputs are zero, one w for every layer (no mixing).
"""
import argparse
import ast
import time

import jax
import jax.numpy as jnp
import optax

from genjax import data
from genjax.config import load_config
from genjax.methods import gan
from genjax.models import stylegan


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--config', required=True)
  p.add_argument('--set', action='append', default=[], help='group.key=python literal')
  p.add_argument('--num', type=int, default=64)
  p.add_argument('--steps', type=int, default=200)
  p.add_argument('--lr', type=float, default=None, help='default: the config\'s optim.lr')
  p.add_argument('--b1', type=float, default=None, help='default: the config\'s optim.b1')
  args = p.parse_args()
  config = load_config(args.config)
  for item in args.set:
    key, value = item.split('=', 1)
    group, field = key.split('.')
    config[group][field] = ast.literal_eval(value)
  lr = config.optim.lr if args.lr is None else args.lr
  b1 = config.optim.b1 if args.b1 is None else args.b1
  real = jnp.asarray(data.load_split(config, config.data.train_split)['image'][:args.num])
  generator, _ = gan.make_networks(config, real.shape[1:])
  z = jax.random.normal(jax.random.key(0), (args.num, config.model.latent_dim))
  if config.model.name == 'stylegan':
    noise = [jnp.zeros((args.num,) + s) for s in stylegan.noise_shapes(real.shape[1:])]
    params = generator.init(jax.random.key(1), z, None, noise)['params']

    def generate(params):
      return generator.apply({'params': params}, z, None, noise)
  else:
    variables = generator.init(jax.random.key(1), z, None, train=False)
    params, stats = variables['params'], variables.get('batch_stats', {})

    def generate(params):  # Training-mode BatchNorm, as in the GAN step.
      return generator.apply({'params': params, 'batch_stats': stats}, z, None, train=True,
                             mutable=['batch_stats'])[0]

  tx = optax.adam(lr, b1, config.optim.b2)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state):
    mse, grads = jax.value_and_grad(lambda q: jnp.mean(jnp.square(generate(q) - real)))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, mse

  print(f'{config.model.name}: {args.num} digits, Adam lr {lr} b1 {b1}; '
        f'mean-image MSE {float(jnp.mean(jnp.square(real - real.mean(0)))):.4f}')
  start = time.time()
  for i in range(args.steps + 1):
    params, opt_state, mse = step(params, opt_state)
    if i % 50 == 0:
      print(f'step {i:4d}  MSE {float(mse):.4f}  ({time.time() - start:.0f} s)', flush=True)


if __name__ == '__main__':
  main()
