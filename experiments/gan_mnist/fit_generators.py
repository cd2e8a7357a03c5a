"""How fast can each GAN generator learn to follow its latent? Memorize N digits by regression.

  .venv/bin/python experiments/gan_mnist/fit_generators.py --config=configs/stylegan_mnist.py
  .venv/bin/python experiments/gan_mnist/fit_generators.py --config=configs/dcgan_mnist.py

No discriminator: the generator of `--config` (its architecture and Adam settings as
configured; overrides as in `genjax train`, e.g. `--config.stylegan.style_mode=adain
--config.optim.lr=2e-4`) regresses N fixed latents onto the first N training digits by
mean squared error, with Adam. A generator that cannot make N different
digits from N different latents in a few hundred steps gives a GAN little more than one
image to offer, which is what a mode collapse looks like. Prints the MSE every 50 steps and,
for scale, the MSE of the mean image (what a generator ignoring its latent reaches).
StyleGAN: noise inputs are zero, one w for every layer (no mixing).
"""
import os
import sys
import time

# Config files import `configs.base`: the repository root goes on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from genjax import data  # noqa: E402
from genjax.methods import gan  # noqa: E402
from genjax.models import stylegan  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file('config', None, 'GAN config file[:variant].')
_NUM = flags.DEFINE_integer('num', 64, 'Digits to memorize.')
_STEPS = flags.DEFINE_integer('steps', 200, 'Adam steps.')


def main(argv):
  del argv
  config = _CONFIG.value
  lr, b1 = config.optim.lr, config.optim.b1
  num = _NUM.value
  real = jnp.asarray(data.load_split(config, config.data.train_split)['image'][:num])
  generator = gan.decode(config, real.shape[1:]).generator
  z = jax.random.normal(jax.random.key(0), (num, config.gan.latent_dim))
  if config.gan.arch == 'stylegan':
    noise = [jnp.zeros((num,) + s) for s in stylegan.noise_shapes(real.shape[1:])]
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

  print(f'{config.gan.arch}: {num} digits, Adam lr {lr} b1 {b1}; '
        f'mean-image MSE {float(jnp.mean(jnp.square(real - real.mean(0)))):.4f}')
  start = time.time()
  for i in range(_STEPS.value + 1):
    params, opt_state, mse = step(params, opt_state)
    if i % 50 == 0:
      print(f'step {i:4d}  MSE {float(mse):.4f}  ({time.time() - start:.0f} s)', flush=True)


if __name__ == '__main__':
  flags.mark_flag_as_required('config')
  app.run(main)
