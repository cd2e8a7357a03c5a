"""Training the SR family: pairs from HR batches, `init` and `train_step` for each arch."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from genjax.core.state import TrainState
from genjax.data import resize
from genjax.diffusion import losses as diffusion_losses
from genjax.methods.api import StateSpec
from genjax.methods.sr import losses
from genjax.methods.sr.spec import SRSpec


def make_pairs(spec: SRSpec, images: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(lr [B, h, w, C], hr [B, s h, s w, C]) from a batch of HR images [B, H, W, C] in [-1, 1].

  A random `crop_size` crop of each image (when set), a random horizontal flip
  (when `random_flip`), a random vertical flip and a random transpose (when
  `random_rotate`), then MATLAB bicubic 1/scale rounded to 8 bits.
  """
  crop_rng, flip_rng = jax.random.split(rng)
  rotate_rng = jax.random.fold_in(rng, 2)  # Apart: runs without random_rotate draw as before.
  b = images.shape[0]
  if spec.crop_size:
    images = resize.random_crops(images, spec.crop_size, crop_rng)
  if spec.random_flip:
    flip = jax.random.bernoulli(flip_rng, 0.5, (b,))[:, None, None, None]
    images = jnp.where(flip, images[:, :, ::-1], images)
  if spec.random_rotate:  # With the horizontal flip: the 8 symmetries of the square.
    vflip, transpose = jax.random.bernoulli(rotate_rng, 0.5, (2, b))[:, :, None, None, None]
    images = jnp.where(vflip, images[:, ::-1], images)
    images = jnp.where(transpose, jnp.swapaxes(images, 1, 2), images)
  hr = resize.modcrop(images, spec.scale)
  return resize.downsample(hr, spec.scale), hr


def generator_apply(spec: SRSpec, params, lr: jax.Array) -> jax.Array:
  """The RRDB's SR images [B, s h, s w, C] of lr [B, h, w, C]."""
  return spec.generator.apply({'params': params}, lr)


def unet_network_fn(spec: SRSpec, params, train: bool = False):
  """The U-Net as diffusion's network_fn(x, noise_label, cond, rng): cond = bicubic(LR),
  concatenated to the (preconditioned) noisy image on the channel axis (SR3)."""
  def network_fn(x, noise_label, cond, rng=None):
    inputs = jnp.concatenate([x, cond], axis=-1)
    kwargs = {'rngs': {'dropout': rng}} if train and rng is not None else {}
    return spec.unet.apply({'params': params}, inputs, noise_label, None, train=train, **kwargs)
  return network_fn


def init(spec: SRSpec, state_spec: StateSpec, init_generator: Any, rng: jax.Array,
         batch: dict) -> TrainState:
  """A fresh state for batch {'image' [B, H, W, C]}: params {'generator'} (rrdb_psnr; from
  `init_generator` when given, a fine-tune),
  {'generator', 'discriminator'} (esrgan, the generator from `init_generator`), {'unet'}."""
  g_rng, d_rng = jax.random.split(rng)
  h, w = spec.hr_side
  hr = jnp.zeros((1, h - h % spec.scale, w - w % spec.scale, spec.channels))
  lr = resize.downsample(hr, spec.scale)
  if spec.arch == 'diffusion':
    params = {'unet': spec.unet.init(g_rng, jnp.concatenate([hr, hr], -1), jnp.zeros((1,)),
                                     None)['params']}
    return state_spec.create(params)
  generator = (spec.generator.init(g_rng, lr)['params'] if init_generator is None
               else jax.tree.map(jnp.asarray, init_generator))
  if spec.arch == 'rrdb_psnr':
    return state_spec.create({'generator': generator})
  params = {'generator': generator, 'discriminator': spec.discriminator.init(d_rng, hr)['params']}
  return state_spec.create(params, ema_keys=('generator',))


def psnr_step(spec: SRSpec, state: TrainState, batch: dict, rng: jax.Array):
  """RRDB-PSNR: one Adam step on the pixel loss (`sr.pixel_loss`, L1 by default) -> (state,
  metrics)."""
  lr, hr = make_pairs(spec, batch['image'], rng)
  pixel_loss = losses.PIXEL_LOSSES[spec.pixel_loss]
  loss, grads = jax.value_and_grad(
      lambda p: pixel_loss(generator_apply(spec, p['generator'], lr), hr))(state.params)
  return state.apply_gradients(grads), {'loss': loss, 'grad_norm': optax.tree.norm(grads)}


def esrgan_step(spec: SRSpec, perceptual_fn: Callable[[jax.Array], jax.Array],
                state: TrainState, batch: dict, rng: jax.Array):
  """ESRGAN: D and G gradients at the current parameters, one Adam update of both.

  As BasicSR: G's loss goes through the current D, D's loss sees G's output
  of this step as a constant; applying both at once is that schedule.
  """
  lr, hr = make_pairs(spec, batch['image'], rng)
  params = state.params
  disc = lambda p, x: spec.discriminator.apply({'params': p}, x)
  fake, g_vjp = jax.vjp(lambda p: generator_apply(spec, p, lr), params['generator'])

  def d_loss_fn(dp):
    real_logits, fake_logits = disc(dp, hr), disc(dp, jax.lax.stop_gradient(fake))
    return losses.relativistic_d_loss(real_logits, fake_logits), (real_logits, fake_logits)

  (d_loss, (real_logits, fake_logits)), d_grads = jax.value_and_grad(
      d_loss_fn, has_aux=True)(params['discriminator'])
  hr_features = jax.lax.stop_gradient(perceptual_fn(hr))

  def g_loss_fn(x):
    adversarial = losses.relativistic_g_loss(jax.lax.stop_gradient(real_logits),
                                             disc(params['discriminator'], x))
    perceptual = losses.l1(perceptual_fn(x), hr_features)
    pixel = losses.l1(x, hr)
    total = (spec.perceptual_weight * perceptual + spec.adversarial_weight * adversarial
             + spec.l1_weight * pixel)
    return total, {'g_adversarial': adversarial, 'g_perceptual': perceptual, 'l1': pixel}

  (g_loss, parts), d_fake = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
  g_grads, = g_vjp(d_fake)
  grads = {'generator': g_grads, 'discriminator': d_grads}
  metrics = {'loss': g_loss + d_loss, 'g_loss': g_loss, 'd_loss': d_loss, **parts,
             'd_real': jnp.mean(real_logits), 'd_fake': jnp.mean(fake_logits),
             'g_grad_norm': optax.tree.norm(g_grads), 'd_grad_norm': optax.tree.norm(d_grads)}
  return state.apply_gradients(grads), metrics


def diffusion_step(spec: SRSpec, state: TrainState, batch: dict, rng: jax.Array):
  """SR3 with EDM's loss: denoise HR given bicubic(LR) -> (state, metrics)."""
  pair_rng, loss_rng = jax.random.split(rng)
  lr, hr = make_pairs(spec, batch['image'], pair_rng)
  cond = resize.upsample_bicubic(lr, spec.scale)

  def loss_fn(p):
    network_fn = unet_network_fn(spec, p['unet'], train=True)
    return jnp.mean(diffusion_losses.edm_loss(network_fn, hr, cond, loss_rng,
                                              sigma_data=spec.sigma_data, p_mean=spec.p_mean,
                                              p_std=spec.p_std))

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads), {'loss': loss, 'grad_norm': optax.tree.norm(grads)}
