"""Where a StyleGAN run's diversity goes: z -> w -> styles -> images, and whether D sees it.

  .venv/bin/python experiments/gan_mnist/diagnose_stylegan.py --workdir=runs/gan_mnist/stylegan

For the run's last checkpoint and for a fresh initialization of the same config it prints:
- the share of w's variance in its top principal directions (is w's variation low-rank?);
- per synthesis layer, the mean size of the style s = A(w) and its standard deviation over z
  (does G keep reading z?);
- the standard deviation over z of the images (the collapse itself);
- D's logits on a real batch and a fake batch, and on the same first image inside a batch of
  copies: the difference is what D's minibatch-stddev feature contributes, i.e. whether D
  penalizes a collapsed batch at all.
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

from genjax import data
from genjax.methods import gan
from genjax.models import stylegan
from genjax.train.trained import load_trained

LAYERS = ('b4_conv', 'b8_conv0', 'b16_conv1', 'b32_conv1', 'b32_torgb')


def report_generator(name, generator, params, z, noise):
  """Prints w's principal-variance shares, per-layer style sizes and the images' spread over z."""
  w = generator.apply({'params': params}, z, None, method=generator.map)
  sv = np.linalg.svd(np.asarray(w - w.mean(0)), compute_uv=False)
  print(f'{name}: w variance in its top 5 directions {np.round(sv[:5] ** 2 / np.sum(sv ** 2), 3)}')
  for layer in LAYERS:
    if layer not in params['synthesis']:
      continue
    affine = params['synthesis'][layer]['conv']['affine']
    styles = w @ (affine['kernel'] / np.sqrt(w.shape[-1])) + affine['bias']
    print(f'  {layer:10s} style |mean| {float(jnp.abs(styles.mean(0)).mean()):.3f}, '
          f'std over z {float(styles.std(0).mean()):.3f}')
  images = generator.apply({'params': params}, z, None, noise)
  print(f'  images: std over z {float(images.std(0).mean()):.3f}, '
        f'std over pixels {float(images.std(axis=(1, 2, 3)).mean()):.3f}')


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--workdir', required=True)
  p.add_argument('--num', type=int, default=256)
  args = p.parse_args()
  trained = load_trained(args.workdir)
  config, state = trained.config, trained.state
  if config.gan.arch != 'stylegan' or config.gan.conditional:
    raise SystemExit('diagnose_stylegan reads unconditional StyleGAN runs (gan.arch=stylegan).')
  image_shape = trained.run.example['image'].shape[1:]
  networks = gan.decode(config, image_shape)
  generator, discriminator = networks.generator, networks.discriminator
  z = jax.random.normal(jax.random.key(0), (args.num, config.gan.latent_dim))
  noise = [jnp.zeros((args.num,) + s) for s in stylegan.noise_shapes(image_shape)]
  fresh = generator.init(jax.random.key(config.seed), z, None, noise)['params']
  report_generator('init', generator, fresh, z, noise)
  report_generator(f'step {int(state.step)}', generator, state.params['generator'], z, noise)

  d = jax.jit(lambda x: discriminator.apply(  # Logits per D input (per pack with d_pack > 1).
      {'params': state.params['discriminator']},
      gan.pack_for_discriminator(x, None, config.gan.d_pack)[0]))
  b = config.data.batch_size
  live = state.replace(ema_params={'generator': state.params['generator']})
  fakes = trained.method.sample(live, jax.random.split(jax.random.key(1), b))
  real = jnp.asarray(data.load_split(config, config.data.train_split)['image'][:b])
  for name, batch in (('real', real), ('fake', fakes)):
    logits, copies = d(batch), d(jnp.repeat(batch[:1], b, 0))
    print(f'D on a {name} batch: mean logit {float(logits.mean()):+.3f}; first image '
          f'{float(logits[0]):+.3f} in the batch, {float(copies[0]):+.3f} among {b} copies of itself')


if __name__ == '__main__':
  main()
