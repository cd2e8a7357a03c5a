"""GANs: the seed's MLP GAN, DCGAN and StyleGAN(2), unconditional or label-conditional.

One method trains every GAN on the shared loop. The state is one TrainState:
- `params = {'generator', 'discriminator'}`;
- `tx = GanTx(generator, discriminator)`, a hashable NamedTuple of the two
  optax transformations (static), and `opt_state = {'generator',
  'discriminator'}`, so both optimizers are checkpointed, sharded and
  restored like any other state;
- `ema_params = {'generator'}` (TrainState's EMA over the generator subtree,
  used for sampling) or None;
- `extras`: `batch_stats` (BatchNorm running averages of the MLP GAN and
  DCGAN, {'generator', 'discriminator'}), `w_avg` [K, W] (StyleGAN's tracked
  average of w, one row per class when conditional) and `r1` (the last R1
  value measured, for the log); with path-length regularization, `pl_mean` (its
  running mean of path lengths) and `pl_penalty` (the last value, for the log).

One jitted step does, in order (Goodfellow et al. 2014, alg. 1, k = 1):
1. fakes G(z) from the current generator, keeping its VJP;
2. a discriminator update on real images and those fakes (plus, every
   `gan.r1_every` steps, the R1 penalty weighted by r1_every: lazy R1 of
   StyleGAN2, added to the same update rather than a separate one);
3. a generator update through the *updated* discriminator, on the same fakes
   (as PyTorch's DCGAN example does), pulled back with the stored VJP, so the
   generator runs forward once per step.
   With `stylegan.pl_weight` > 0, every `stylegan.pl_every` steps G's
   gradient adds StyleGAN2's path-length penalty's, weighted by pl_weight *
   pl_every, on its own pass over the first B / pl_batch_shrink latents.
With `gan.g_first` the order is StyleGAN2's instead: G's update through the
current D, then D's on fresh fakes of the updated G (two generator passes).
With `gan.mode_seeking` = lambda > 0, G's loss (and the logged g_loss) adds
lambda times MSGAN's mode-seeking penalty (Mao et al. 2019) on its fakes.
With `gan.d_pack` = m > 1 (PacGAN), D judges packs of m samples
concatenated along channels, real with real and fake with fake; R1 stays the
per-sample squared gradient norm. With `gan.diff_augment` (DiffAugment),
D sees every image, real or fake, through the same random differentiable
transformations, in both losses and in R1. Each loss is differentiated with
respect to its own network only, which is all the seed's `trainable=False`
was trying to do. The metrics' 'loss' is d_loss + g_loss, and is NaN
whenever a loss, a gradient norm or the R1 value is not finite, so the loop's
fail-loud check sees every non-finite quantity.

The parts: `networks` (the `Gan` and its modules), `inputs` (latents, G(z),
D(x)), `d_update`, `g_update`, `penalties` (R1, path length),
`stylegan_extras`; the pictures are `genjax.viz.gan`'s.
"""
from __future__ import annotations

import functools
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genjax import config as config_lib
from genjax.core.optim import make_optimizer
from genjax.core.state import TrainState
from genjax.methods import sampling
from genjax.methods.api import EvalContext, Method, StateSpec
from genjax.methods.gan import d_update, g_update, stylegan_extras
from genjax.methods.gan import losses as gan_losses
from genjax.methods.gan.inputs import draw_inputs, g_vars, generate, labels_of, make_step
from genjax.methods.gan.networks import Gan, pack_for_discriminator
from genjax.methods.gan.spec import GanSpec, StyleGANSpec
from genjax.viz import gan as viz_gan

STANDING_SEED = 20160119  # The fixed latents of the standing statistics (any constant).


class GanTx(NamedTuple):
  """The two optimizers of a GAN (a hashable static field of TrainState).

  Attributes:
    generator, discriminator: optax transformations.
  """
  generator: optax.GradientTransformation
  discriminator: optax.GradientTransformation

  def init(self, params: dict) -> dict:
    """{'generator': state, 'discriminator': state} for params {'generator', 'discriminator'}."""
    return {name: getattr(self, name).init(params[name]) for name in ('generator', 'discriminator')}


def make_optimizers(spec: GanSpec, optim: ml_collections.ConfigDict, num_steps: int) -> GanTx:
  """G uses `optim` (config.optim); D the same optimizer with gan.d_lr/d_b1/d_b2 where set."""
  d = ml_collections.ConfigDict(optim.to_dict())
  for field, override in (('lr', spec.d_lr), ('b1', spec.d_b1), ('b2', spec.d_b2)):
    if override is not None:
      d[field] = override
  return GanTx(make_optimizer(optim, num_steps), make_optimizer(d, num_steps))


# -- Training. --


def init(gan: Gan, state_spec: StateSpec, rng: jax.Array, batch: dict) -> TrainState:
  """A fresh state; `batch` {'image' [B, H, W, C], 'label' [B]} gives the shapes."""
  g_rng, d_rng = jax.random.split(rng)
  labels, d_pack = labels_of(gan, batch), gan.spec.d_pack
  # D's parameters do not depend on the batch size: it is built on one pack of the first sample.
  d_example = pack_for_discriminator(
      jnp.repeat(batch['image'][:1], d_pack, 0),
      None if labels is None else jnp.repeat(labels[:1], d_pack, 0), d_pack)
  latents = draw_inputs(gan, jax.random.split(jax.random.key(0), batch['image'].shape[0]), False)
  if gan.is_style:
    g_init = gan.generator.init(g_rng, latents['z'], labels, latents['noise'])
  else:
    g_init = gan.generator.init(g_rng, latents['z'], labels, train=False)
  if gan.style_d:
    d_init = gan.discriminator.init(d_rng, *d_example)
  else:
    d_init = gan.discriminator.init({'params': d_rng, 'dropout': d_rng}, *d_example, train=False)
  params = {'generator': g_init['params'], 'discriminator': d_init['params']}
  extras = {}
  if gan.g_bn or gan.d_bn:
    extras['batch_stats'] = {'generator': g_init.get('batch_stats', {}),
                             'discriminator': d_init.get('batch_stats', {})}
  if gan.is_style:
    extras['w_avg'] = jnp.zeros((gan.spec.num_classes if gan.conditional else 1, gan.style.w_dim),
                                jnp.float32)
  if gan.spec.r1_gamma:
    extras['r1'] = jnp.zeros((), jnp.float32)
  if gan.is_style and gan.style.pl_weight:
    extras['pl_mean'] = jnp.zeros((), jnp.float32)
    extras['pl_penalty'] = jnp.zeros((), jnp.float32)
  return state_spec.create(params, extras=extras, ema_keys=('generator',))


def next_state(gan: Gan, state: TrainState, d: d_update.DUpdate, g: g_update.GUpdate,
               labels: jax.Array | None) -> TrainState:
  """`state` after the step's two updates: parameters, optimizer states, EMA and extras."""
  extras = dict(state.extras)
  if d.r1 is not None:
    extras['r1'] = d.r1
  if g.pl_mean is not None:
    extras['pl_penalty'], extras['pl_mean'] = g.pl_penalty, g.pl_mean
  if gan.g_bn or gan.d_bn:
    extras['batch_stats'] = {'generator': g.stats, 'discriminator': d.stats}
  if gan.is_style:
    extras['w_avg'] = stylegan_extras.track_w_avg(gan, state.extras['w_avg'], g.w, labels)
  params = {'generator': g.params, 'discriminator': d.params}
  # The EMA's decay ramps with state.step, the number of updates before this one.
  return state.replace(step=state.step + 1, params=params,
                       opt_state={'generator': g.opt_state, 'discriminator': d.opt_state},
                       ema_params=state.next_ema(params), extras=extras)


def step_metrics(gan: Gan, d: d_update.DUpdate, g: g_update.GUpdate, fake: jax.Array,
                 labels: jax.Array | None, w_avg: jax.Array | None) -> dict:
  """The step's scalars; 'loss' = d_loss + g_loss, NaN when anything logged is not finite."""
  g_norm, d_norm = optax.tree.norm(g.grads), optax.tree.norm(d.grads)
  checked = ([d.loss, g.loss, g_norm, d_norm] + ([d.r1] if d.r1 is not None else []) +
             ([g.pl_penalty] if g.pl_penalty is not None else []))
  finite = jnp.all(jnp.isfinite(jnp.stack(checked)))
  metrics = {'loss': jnp.where(finite, d.loss + g.loss, jnp.nan), 'd_loss': d.loss,
             'g_loss': g.loss, 'd_real': jnp.mean(gan.loss.display(d.real_logits)),
             'd_fake': jnp.mean(gan.loss.display(d.fake_logits)), 'g_grad_norm': g_norm,
             'd_grad_norm': d_norm}
  if d.r1 is not None:
    metrics['r1'] = d.r1
  if g.pl_penalty is not None:
    metrics['pl_penalty'], metrics['pl_mean'] = g.pl_penalty, g.pl_mean
  if w_avg is not None:
    metrics['w_avg_norm'] = jnp.mean(jnp.linalg.norm(w_avg, axis=-1))
  if gan.monitor is not None:
    _, probs = gan.monitor.apply(jnp.clip(fake, -1.0, 1.0))
    metrics['class_entropy'] = gan_losses.label_histogram_entropy(probs)
    if gan.conditional:
      metrics['fake_label_accuracy'] = jnp.mean(jnp.argmax(probs, -1) == labels)
  return metrics


def train_step(gan: Gan, state: TrainState, batch: dict, rng: jax.Array):
  """One D and one G update on batch {'image' [B, H, W, C], 'label' [B]} -> (state, metrics)."""
  step = make_step(gan, batch, rng)
  if gan.spec.g_first:
    # StyleGAN2's order: G through the current D on its fakes, then D on fresh fakes of the
    # updated G (one more generator forward pass per step).
    g = g_update.update_through_current_d(gan, state, step)
    fake = g_update.fresh_fakes(gan, g, step)
    d = d_update.update(gan, state, step, fake)
  else:
    # 1. Fakes, with the generator's VJP kept for step 3.
    fake, g_vjp, aux = g_update.fakes_with_vjp(gan, state, step)
    # 2. Discriminator update on real and (constant) fakes.
    d = d_update.update(gan, state, step, fake)
    # 3. Generator update through the updated discriminator, pulled back by the VJP.
    g = g_update.update_through_updated_d(gan, state, step, d, fake, g_vjp, aux)
  new_state = next_state(gan, state, d, g, step.labels)
  return new_state, step_metrics(gan, d, g, fake, step.labels, new_state.extras.get('w_avg'))


# -- Sampling: per-sample keys, BatchNorm in inference mode, EMA generator. --


@functools.partial(jax.jit, static_argnums=0)
def standing_stats(gan: Gan, params, stats):
  """The generator's BatchNorm statistics over a fixed batch of latents (BigGAN's
  "standing statistics"): momentum 0 makes the updated averages the batch's own."""
  n = gan.spec.standing_stats_size
  latents = draw_inputs(gan, jax.random.split(jax.random.key(STANDING_SEED), n), False)
  labels = jnp.arange(n) % gan.spec.num_classes if gan.conditional else None
  _, updates = gan.generator.clone(bn_momentum=0.0).apply(
      g_vars(gan, params, stats), latents['z'], labels, train=True, mutable=['batch_stats'])
  return updates['batch_stats']


def eval_parts(gan: Gan, state: TrainState):
  """(generator params: the EMA when kept, its BatchNorm statistics, w_avg or None)."""
  params = state.eval_params['generator']
  stats = state.extras.get('batch_stats', {}).get('generator', {})
  if gan.g_bn and gan.spec.standing_stats_size:
    stats = standing_stats(gan, params, stats)
  return params, stats, state.extras.get('w_avg')


@functools.partial(jax.jit, static_argnums=0)
def sample_from_keys(gan: Gan, params, stats, w_avg, keys: jax.Array, labels):
  """Images [n, H, W, C] in [-1, 1] from keys [n] (labels [n] or None), truncated as configured."""
  latents = draw_inputs(gan, keys, mixing=False)
  images, _, _ = generate(gan, params, stats, latents, labels, train=False, w_avg=w_avg,
                          trunc=gan.truncation_psi)
  return jnp.clip(images, -1.0, 1.0)


def sample(gan: Gan, state: TrainState, keys: jax.Array, labels=None) -> jax.Array:
  """Samples [n, H, W, C] in [-1, 1], sample i a function of keys[i] (and labels[i]) alone."""
  if gan.conditional and labels is None:
    raise ValueError('This GAN is conditional: give labels (e.g. --labels=0,1,2 to sample).')
  return sample_from_keys(gan, *eval_parts(gan, state), keys,
                          jnp.asarray(labels) if gan.conditional else None)


def evaluate(gan: Gan, state: TrainState, ctx: EvalContext) -> dict:
  """Parameter counts (and psi) and the sample-quality suite of `sampling.evaluate_samples`."""
  count = lambda tree: int(sum(np.size(x) for x in jax.tree.leaves(tree)))
  result = {'num_params_generator': count(state.params['generator']),
            'num_params_discriminator': count(state.params['discriminator'])}
  if gan.is_style:
    result['truncation_psi'] = gan.truncation_psi
  result.update(sampling.evaluate_samples(functools.partial(sample, gan), state, ctx,
                                          num_classes=gan.num_classes))
  return result


@functools.partial(jax.jit, static_argnums=0)
def images_from_z(gan: Gan, params, stats, z: jax.Array, labels, noise):
  """G in inference mode: z [n, Z] (labels, StyleGAN's noise) -> images [n, H, W, C] in [-1, 1]."""
  latents = {'z': z, **({'noise': noise} if gan.is_style else {})}
  return jnp.clip(generate(gan, params, stats, latents, labels, train=False)[0], -1.0, 1.0)


@functools.partial(jax.jit, static_argnums=0)
def images_from_ws(gan: Gan, params, ws: jax.Array, noise):
  """StyleGAN's synthesis: ws [n, num_ws, W], noise -> images [n, H, W, C] in [-1, 1]."""
  return jnp.clip(stylegan_extras.synthesize(gan, params, ws, noise), -1.0, 1.0)


def write_images(gan: Gan, state: TrainState, ctx: EvalContext) -> list[str]:
  """Interpolations in z (and w), per-label samples, truncation sweep and style mixing."""
  params, stats, w_avg = eval_parts(gan, state)
  out, rng = ctx.images_dir, jax.random.fold_in(ctx.rng, 7)
  rows, steps = 6, 10
  ends = draw_inputs(gan, jax.random.split(rng, 2 * rows), mixing=False)
  row_labels = np.arange(rows) % gan.spec.num_classes if gan.conditional else None
  # One noise draw per row, held along it, so only the latent moves.
  noise = [jnp.repeat(n[:rows], steps, axis=0) for n in ends.get('noise', [])]
  from_z = functools.partial(images_from_z, gan, params, stats)
  paths = [viz_gan.save_z_interpolation(from_z, ends['z'][:rows], ends['z'][rows:], row_labels,
                                        noise, steps, os.path.join(out, 'interpolation_z.png'))]
  if gan.conditional:
    labels = np.repeat(np.arange(gan.spec.num_classes), 10)
    per_label = sampling.draw(functools.partial(sample, gan), state, jax.random.fold_in(ctx.rng, 3),
                              len(labels), labels)
    paths.append(viz_gan.save_rows(per_label, 10, os.path.join(out, 'samples_per_label.png')))
  if not gan.is_style:
    return paths
  lab = None if row_labels is None else jnp.asarray(row_labels)
  wa, _ = stylegan_extras.map_ws(gan, params, ends['z'][:rows], lab)
  wb, _ = stylegan_extras.map_ws(gan, params, ends['z'][rows:], lab)
  from_ws = functools.partial(images_from_ws, gan, params)
  centers = stylegan_extras.truncation_centers(gan, w_avg, row_labels, wa)
  return paths + viz_gan.save_style_pictures(from_ws, wa, wb, centers, ends['noise'], noise,
                                             gan.num_ws, steps, out)


# -- The method. --


def decode(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Gan:
  """The `Gan` of `config.gan` (and, for gan.arch='stylegan', `config.stylegan`)."""
  spec = config_lib.decode(GanSpec, config, 'gan')
  has_style = 'stylegan' in config
  if spec.arch == 'stylegan' and not has_style:
    raise config_lib.ConfigError(
        "config.gan.arch='stylegan' needs the config.stylegan group; start the config from "
        "configs.base.get_config('gan', 'stylegan').")
  if spec.arch != 'stylegan' and has_style:
    raise config_lib.ConfigError(
        f"config.stylegan is StyleGAN's group, but config.gan.arch={spec.arch!r}: set "
        "gan.arch='stylegan' or start the config from configs.base.get_config('gan').")
  style = config_lib.decode(StyleGANSpec, config, 'stylegan') if has_style else None
  return Gan(spec, style, tuple(image_shape), config.train.compute_dtype)


def make(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Method:
  """The GAN method: `config.gan` (and `config.stylegan`) decoded once, the functions bound to it."""
  gan = decode(config, image_shape)
  if gan.g_bn and config.train.ema_decay is not None and not gan.spec.standing_stats_size:
    raise config_lib.ConfigError(
        'An EMA generator with BatchNorm needs config.gan.standing_stats_size > 0: the running '
        'averages in the state belong to the live generator, not its EMA.')
  tx = make_optimizers(gan.spec, config.optim, config.train.num_steps)
  state_spec = StateSpec.from_config(config, tx=tx)
  _ = gan.monitor  # Loads the monitor's weights now: a missing file fails before training.
  bind = lambda fn: functools.partial(fn, gan)
  return Method(init=functools.partial(init, gan, state_spec), train_step=bind(train_step),
                evaluate=bind(evaluate), sample=bind(sample), write_images=bind(write_images),
                num_classes=gan.num_classes)
