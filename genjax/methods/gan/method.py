"""GANs: the seed's MLP GAN, DCGAN and StyleGAN(2), unconditional or label-conditional.

One method trains every GAN on the shared loop. The state is one TrainState:
- `params = {'generator', 'discriminator'}`;
- `tx = GanTx(generator, discriminator)`, a hashable NamedTuple of the two
  optax transformations (static), and `opt_state = {'generator',
  'discriminator'}`, so both optimizers are checkpointed, sharded and
  restored like any other state;
- `ema_params = {'generator'}` (the EMA generator, used for sampling) or None;
- `extras`: `batch_stats` (BatchNorm running averages of the MLP GAN and
  DCGAN, {'generator', 'discriminator'}), `w_avg` [K, W] (StyleGAN's tracked
  average of w, one row per class when conditional) and `r1` (the last R1
  value measured, for the log); with path-length regularization, `pl_mean` (its
  running mean of path lengths) and `pl_penalty` (the last value, for the log).

One jitted step does, in order (Goodfellow et al. 2014, alg. 1, k = 1):
1. fakes G(z) from the current generator, keeping its VJP;
2. a discriminator update on real images and those fakes (plus, every
   `method.r1_every` steps, the R1 penalty weighted by r1_every: lazy R1 of
   StyleGAN2, added to the same update rather than a separate one);
3. a generator update through the *updated* discriminator, on the same fakes
   (as PyTorch's DCGAN example does), pulled back with the stored VJP, so the
   generator runs forward once per step.
   With `method.pl_weight` > 0 (StyleGAN), every `method.pl_every` steps G's
   gradient adds StyleGAN2's path-length penalty's, weighted by pl_weight *
   pl_every, on its own pass over the first B / pl_batch_shrink latents.
With `method.g_first` the order is StyleGAN2's instead: G's update through the
current D, then D's on fresh fakes of the updated G (two generator passes).
With `method.mode_seeking` = lambda > 0, G's loss (and the logged g_loss) adds
lambda times MSGAN's mode-seeking penalty (Mao et al. 2019) on its fakes.
With `method.d_pack` = m > 1 (PacGAN), D judges packs of m samples
concatenated along channels, real with real and fake with fake; R1 stays the
per-sample squared gradient norm. With `method.diff_augment` (DiffAugment),
D sees every image, real or fake, through the same random differentiable
transformations, in both losses and in R1. Each loss is differentiated with
respect to its own network only, which is all the seed's `trainable=False`
was trying to do. The metrics' 'loss' is d_loss + g_loss, and is NaN
whenever a loss, a gradient norm or the R1 value is not finite, so the loop's
fail-loud check sees every non-finite quantity.
"""
from __future__ import annotations

import math
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genjax.methods import sampling
from genjax.methods.gan import augment as gan_augment
from genjax.methods.gan import losses as gan_losses
from genjax.methods.api import EvalContext, Method
from genjax.metrics import extractors
from genjax.models import gan as gan_models
from genjax.models import stylegan
from genjax.core.optim import make_optimizer
from genjax.core.state import TrainState
from genjax.viz import gan as viz_gan

MODELS = ('mlp_gan', 'dcgan', 'stylegan')
STYLEGAN_DISCRIMINATORS = ('stylegan', 'dcgan')  # config.model.stylegan_discriminator
_STANDING_SEED = 20160119  # The fixed latents of the standing statistics (any constant).


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


def make_networks(config: ml_collections.ConfigDict, image_shape) -> tuple:
  """(generator, discriminator) flax modules described by `config.model`."""
  m = config.model
  k = m.num_classes if m.conditional else 0
  image_shape = tuple(image_shape)
  if m.name == 'mlp_gan':
    return (gan_models.MLPGenerator(image_shape, tuple(m.gen_channels), k, m.bn_momentum),
            gan_models.MLPDiscriminator(tuple(m.disc_channels), m.dropout, k))
  if m.name == 'dcgan':
    return (gan_models.DCGANGenerator(image_shape, tuple(m.gen_channels), k, m.bn_momentum),
            gan_models.DCGANDiscriminator(tuple(m.disc_channels), k, m.bn_momentum))
  if m.name == 'stylegan':
    if m.style_mode not in stylegan.STYLE_MODES:
      raise ValueError(f'model.style_mode={m.style_mode!r}; accepted: {stylegan.STYLE_MODES}.')
    if m.stylegan_output not in stylegan.OUTPUTS:
      raise ValueError(f'model.stylegan_output={m.stylegan_output!r}; accepted: '
                       f'{stylegan.OUTPUTS}.')
    if m.stylegan_discriminator not in STYLEGAN_DISCRIMINATORS:
      raise ValueError(f'model.stylegan_discriminator={m.stylegan_discriminator!r}; accepted: '
                       f'{STYLEGAN_DISCRIMINATORS}.')
    generator = stylegan.StyleGenerator(image_shape, tuple(m.gen_channels), m.w_dim,
                                        m.mapping_layers, m.mapping_lr_mult, k, m.style_mode,
                                        m.affine_lr_mult, m.stylegan_output)
    if m.stylegan_discriminator == 'dcgan':
      return generator, gan_models.DCGANDiscriminator(tuple(m.disc_channels), k, m.bn_momentum)
    return generator, stylegan.StyleDiscriminator(tuple(m.disc_channels), k, m.mbstd_group)
  raise ValueError(f'method.name=gan takes model.name in {MODELS}, got {m.name!r}.')


def pack_for_discriminator(images: jax.Array, labels: jax.Array | None, m: int):
  """PacGAN packing (Lin et al. 2018): m consecutive samples become one input of D.

  A discriminator that judges m samples at once sees their diversity: m copies
  of one image are an easy fake, which penalizes mode collapse directly.

  Args:
    images: [B, H, W, C], B divisible by m.
    labels: [B] ints or None.
    m: pack size (1: unchanged).

  Returns:
    (images [B/m, H, W, m C], labels [B/m, m] or None); unchanged when m == 1.
  """
  if m == 1:
    return images, labels
  b, h, w, c = images.shape
  if b % m:
    raise ValueError(f'method.d_pack={m} must divide the batch of {b} images D judges; '
                     'choose a data.batch_size divisible by d_pack.')
  packed = images.reshape(b // m, m, h, w, c).transpose(0, 2, 3, 1, 4).reshape(b // m, h, w, m * c)
  return packed, None if labels is None else labels.reshape(b // m, m)


def make_optimizers(config: ml_collections.ConfigDict) -> GanTx:
  """G uses `config.optim`; D the same optimizer with method.d_lr/d_b1/d_b2 where set."""
  d = ml_collections.ConfigDict(config.optim.to_dict())
  for field, override in (('lr', 'd_lr'), ('b1', 'd_b1'), ('b2', 'd_b2')):
    if config.method[override] is not None:
      d[field] = config.method[override]
  steps = config.train.num_steps
  return GanTx(make_optimizer(config.optim, steps), make_optimizer(d, steps))


def ema_update(ema, params, step: jax.Array, decay: float, warmup: bool):
  """EMA of the generator, as TrainState's: decay ramped as min(decay, (1+n)/(10+n)) if warmup."""
  d = jnp.asarray(decay, jnp.float32)
  if warmup:
    n = step.astype(jnp.float32)
    d = jnp.minimum(d, (1.0 + n) / (10.0 + n))
  return optax.incremental_update(params, ema, 1.0 - d)


def make(config: ml_collections.ConfigDict, image_shape) -> Method:
  """The GAN method bound to `config` (see `genjax.methods.api.Method`)."""
  generator, discriminator = make_networks(config, image_shape)
  m, mc = config.model, config.method
  if mc.gan_loss not in gan_losses.LOSSES:
    raise ValueError(f'method.gan_loss={mc.gan_loss!r}; accepted: {sorted(gan_losses.LOSSES)}.')
  if mc.r1_every < 1:
    raise ValueError(f'method.r1_every={mc.r1_every} must be >= 1.')
  if mc.d_pack < 1:
    raise ValueError(f'method.d_pack={mc.d_pack} must be >= 1 (1: no packing).')
  if mc.pl_weight and (m.name != 'stylegan' or mc.pl_every < 1 or mc.pl_batch_shrink < 1):
    raise ValueError(f'method.pl_weight={mc.pl_weight} (path-length regularization) needs '
                     f'model.name=stylegan (got {m.name!r}), method.pl_every >= 1 (got '
                     f'{mc.pl_every}) and method.pl_batch_shrink >= 1 (got {mc.pl_batch_shrink}).')
  loss = gan_losses.LOSSES[mc.gan_loss]
  tx = make_optimizers(config)
  conditional = bool(m.conditional)
  num_classes = m.num_classes
  style = m.name == 'stylegan'
  g_bn = not style  # The MLP GAN and DCGAN generators use BatchNorm,
  # the DCGAN discriminator too (also behind a StyleGAN generator),
  d_bn = m.name == 'dcgan' or (style and m.stylegan_discriminator == 'dcgan')
  style_d = style and not d_bn
  d_dropout = m.name == 'mlp_gan'  # and the MLP discriminator dropout.
  num_ws = generator.num_ws if style else 0
  noise_shapes = stylegan.noise_shapes(image_shape) if style else []
  monitor = (extractors.get_extractor(mc.monitor_classifier) if mc.monitor_classifier else None)
  psi = float(mc.truncation_psi)
  policy = gan_augment.parse_policy(mc.diff_augment)

  def augment(images, rng, i):
    """DiffAugment of what D sees (the identity without a policy); i picks the draw."""
    return gan_augment.diff_augment(images, jax.random.fold_in(rng, i), policy)

  if g_bn and config.train.ema_decay is not None and not mc.standing_stats_size:
    raise ValueError('An EMA generator with BatchNorm needs method.standing_stats_size > 0: the '
                     'running averages in the state belong to the live generator, not its EMA.')

  def labels_of(batch):
    return batch['label'] if conditional else None

  # -- Generator inputs: a pure function of one key per sample (per-sample seeds). --
  def draw_inputs(keys: jax.Array, mixing: bool) -> dict:
    """Latents for keys [n]: {'z' [n, Z], StyleGAN: 'noise' (per layer [n, r, r, 1]),
    and with mixing 'z2' [n, Z] and 'crossover' [n]}."""

    # One normal draw per sample, cut into z, z2 and the noise maps: every random op costs
    # seconds of XLA compile time on CPU (threefry), so the step makes as few as it can.
    sizes = [m.latent_dim] + ([m.latent_dim] + [math.prod(s) for s in noise_shapes] if style else [])

    def one(key):
      normal = jax.random.normal(key, (sum(sizes),))
      parts = jnp.split(normal, np.cumsum(sizes)[:-1])
      out = {'z': parts[0]}
      if style:
        out['noise'] = [p.reshape(s) for p, s in zip(parts[2:], noise_shapes)]
        if mixing:
          out['z2'] = parts[1]
          u_mix, u_cross = jax.random.uniform(jax.random.fold_in(key, 1), (2,))
          cross = 1 + jnp.floor(u_cross * (num_ws - 1)).astype(jnp.int32)  # Uniform in [1, num_ws).
          out['crossover'] = jnp.where(u_mix < mc.style_mixing_prob, cross, num_ws)
      return out

    return jax.vmap(one)(keys)

  def g_vars(params, stats):
    return {'params': params, **({'batch_stats': stats} if g_bn else {})}

  def map_ws(params, z, labels):
    """StyleGAN: z [n, Z] -> (w [n, W], ws [n, num_ws, W])."""
    w = generator.apply({'params': params}, z, labels, method=stylegan.StyleGenerator.map)
    return w, jnp.repeat(w[:, None], num_ws, axis=1)

  def synthesize(params, ws, noise):
    return generator.apply({'params': params}, ws, noise, method=stylegan.StyleGenerator.synthesize)

  def generate(params, stats, inputs, labels, *, train: bool, w_avg=None, trunc: float = 1.0):
    """Images [n, H, W, C] from inputs (see draw_inputs); returns (images, new stats, w or None)."""
    if style:
      w, ws = map_ws(params, inputs['z'], labels)
      if 'z2' in inputs:
        ws = stylegan.mix_styles(ws, map_ws(params, inputs['z2'], labels)[1], inputs['crossover'])
      if trunc != 1.0:
        center = w_avg[labels] if conditional else w_avg[0]
        ws = stylegan.truncate(ws, center[..., None, :] if conditional else center, trunc)
      return synthesize(params, ws, inputs['noise']), stats, w
    if train:
      images, updates = generator.apply(g_vars(params, stats), inputs['z'], labels, train=True,
                                        mutable=['batch_stats'])
      return images, updates['batch_stats'], None
    return generator.apply(g_vars(params, stats), inputs['z'], labels, train=False), stats, None

  def discriminate(params, stats, images, labels, rng):
    """Discriminator logits [n / d_pack] in training mode; returns (logits, new BatchNorm stats)."""
    images, labels = pack_for_discriminator(images, labels, mc.d_pack)
    if style_d:
      return discriminator.apply({'params': params}, images, labels), stats
    variables = {'params': params, **({'batch_stats': stats} if d_bn else {})}
    rngs = {'dropout': rng} if d_dropout else {}
    if d_bn:
      logits, updates = discriminator.apply(variables, images, labels, train=True, rngs=rngs,
                                            mutable=['batch_stats'])
      return logits, updates['batch_stats']
    return discriminator.apply(variables, images, labels, train=True, rngs=rngs), stats

  def init(rng, batch):
    g_rng, d_rng = jax.random.split(rng)
    labels = labels_of(batch)
    # D's parameters do not depend on the batch size: it is built on one pack of the first sample.
    d_example = pack_for_discriminator(
        jnp.repeat(batch['image'][:1], mc.d_pack, 0),
        None if labels is None else jnp.repeat(labels[:1], mc.d_pack, 0), mc.d_pack)
    inputs = draw_inputs(jax.random.split(jax.random.key(0), batch['image'].shape[0]), False)
    if style:
      g_init = generator.init(g_rng, inputs['z'], labels, inputs['noise'])
    else:
      g_init = generator.init(g_rng, inputs['z'], labels, train=False)
    if style_d:
      d_init = discriminator.init(d_rng, *d_example)
    else:
      d_init = discriminator.init({'params': d_rng, 'dropout': d_rng}, *d_example, train=False)
    params = {'generator': g_init['params'], 'discriminator': d_init['params']}
    extras = {}
    if g_bn or d_bn:
      extras['batch_stats'] = {'generator': g_init.get('batch_stats', {}),
                               'discriminator': d_init.get('batch_stats', {})}
    if style:
      extras['w_avg'] = jnp.zeros((num_classes if conditional else 1, m.w_dim), jnp.float32)
    if mc.r1_gamma:
      extras['r1'] = jnp.zeros((), jnp.float32)
    if mc.pl_weight:
      extras['pl_mean'] = jnp.zeros((), jnp.float32)
      extras['pl_penalty'] = jnp.zeros((), jnp.float32)
    ema_decay = config.train.ema_decay
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      ema_params=None if ema_decay is None else {'generator': params['generator']},
                      extras=extras, tx=tx, ema_decay=ema_decay, ema_warmup=config.train.ema_warmup)

  def train_step(state, batch, rng):
    real = batch['image']  # [B, H, W, C]
    labels = labels_of(batch)
    b = real.shape[0]
    in_rng, d_rng, dr_rng, g_rng = jax.random.split(rng, 4)
    aug_rng = jax.random.fold_in(rng, 101)  # Apart from the four above: old runs keep their draws.
    g_params, d_params = state.params['generator'], state.params['discriminator']
    stats = state.extras.get('batch_stats', {'generator': {}, 'discriminator': {}})
    extras = dict(state.extras)

    def gen_fn(p, inputs):
      images, new_stats, w = generate(p, stats['generator'], inputs, labels, train=True)
      return images, (new_stats, w)

    def g_loss_of_fakes(d_p, d_stats, x, z):
      logits, _ = discriminate(d_p, d_stats, augment(x, aug_rng, 2), labels, g_rng)
      g_loss = loss.g_loss(logits)
      if mc.mode_seeking:
        g_loss = g_loss + mc.mode_seeking * gan_losses.mode_seeking_penalty(x, z)
      return g_loss

    def d_update(d_p, fake):
      """D's update on real images and (constant) fakes, with lazy R1 when due."""
      def d_loss_fn(p):
        real_logits, s = discriminate(p, stats['discriminator'], augment(real, aug_rng, 0), labels,
                                      d_rng)
        fake_logits, s = discriminate(p, s, augment(fake, aug_rng, 1), labels, dr_rng)
        return loss.d_loss(real_logits, fake_logits), (real_logits, fake_logits, s)

      (d_loss, aux), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_p)
      if mc.r1_gamma:
        def r1_fn(p):
          return gan_losses.r1_penalty(
              lambda x: discriminate(p, stats['discriminator'], augment(x, aug_rng, 0), labels,
                                     d_rng)[0], real)

        def with_r1(p):  # Lazy R1: weight gamma / 2 times the interval (StyleGAN2, sec. B).
          r1, grads = jax.value_and_grad(r1_fn)(p)
          return r1, jax.tree.map(lambda g: g * (0.5 * mc.r1_gamma * mc.r1_every), grads)

        def without_r1(p):
          return state.extras['r1'], jax.tree.map(jnp.zeros_like, p)

        r1, r1_grads = jax.lax.cond(state.step % mc.r1_every == 0, with_r1, without_r1, d_p)
        d_grads = jax.tree.map(jnp.add, d_grads, r1_grads)
        extras['r1'] = r1
      d_updates, d_opt = tx.discriminator.update(d_grads, state.opt_state['discriminator'], d_p)
      return optax.apply_updates(d_p, d_updates), d_opt, d_loss, d_grads, aux

    def with_path_length(g_grads, inputs):
      """G's gradients plus, every pl_every steps, StyleGAN2's lazy path-length penalty's
      (weighted by pl_weight * pl_every), on the first b / pl_batch_shrink of `inputs`."""
      if not mc.pl_weight:
        return g_grads
      n = max(1, b // mc.pl_batch_shrink)
      small = jax.tree.map(lambda a: a[:n], inputs)
      small_labels = None if labels is None else labels[:n]
      h, w_px = real.shape[1:3]  # y ~ N(0, 1 / (H W)), StyleGAN2's scaling.
      y = jax.random.normal(jax.random.fold_in(rng, 102), (n,) + real.shape[1:])
      y = y / math.sqrt(h * w_px)

      def penalty_fn(p):
        _, ws = map_ws(p, small['z'], small_labels)
        if 'z2' in small:
          ws = stylegan.mix_styles(ws, map_ws(p, small['z2'], small_labels)[1], small['crossover'])
        lengths = gan_losses.path_lengths(lambda v: synthesize(p, v, small['noise']), ws, y)
        return gan_losses.path_length_penalty(lengths, state.extras['pl_mean'], mc.pl_decay)

      def with_pl(p):
        (penalty, pl_mean), grads = jax.value_and_grad(penalty_fn, has_aux=True)(p)
        return penalty, pl_mean, jax.tree.map(lambda g: g * (mc.pl_weight * mc.pl_every), grads)

      def without_pl(p):
        return (state.extras['pl_penalty'], state.extras['pl_mean'],
                jax.tree.map(jnp.zeros_like, p))

      penalty, pl_mean, pl_grads = jax.lax.cond(state.step % mc.pl_every == 0, with_pl,
                                                without_pl, g_params)
      extras['pl_penalty'], extras['pl_mean'] = penalty, pl_mean
      return jax.tree.map(jnp.add, g_grads, pl_grads)

    def g_update(g_grads):
      g_updates, g_opt = tx.generator.update(g_grads, state.opt_state['generator'], g_params)
      return optax.apply_updates(g_params, g_updates), g_opt

    inputs = draw_inputs(jax.random.split(in_rng, b), mixing=style)
    if mc.g_first:
      # StyleGAN2's order: G through the current D on its fakes, then D on fresh fakes of the
      # updated G (one more generator forward pass per step).
      def g_loss_fn(p):
        fake, aux = gen_fn(p, inputs)
        return g_loss_of_fakes(d_params, stats['discriminator'], fake, inputs['z']), aux

      (g_loss, (g_stats, w)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g_params)
      g_grads = with_path_length(g_grads, inputs)
      g_params, g_opt = g_update(g_grads)
      fresh = draw_inputs(jax.random.split(jax.random.fold_in(in_rng, 1), b), mixing=style)
      fake = jax.lax.stop_gradient(generate(g_params, g_stats, fresh, labels, train=True)[0])
      d_params, d_opt, d_loss, d_grads, (real_logits, fake_logits, d_stats) = d_update(d_params, fake)
    else:
      # 1. Fakes, with the generator's VJP kept for step 3.
      fake, g_vjp, (g_stats, w) = jax.vjp(lambda p: gen_fn(p, inputs), g_params, has_aux=True)
      # 2. Discriminator update on real and (constant) fakes.
      d_params, d_opt, d_loss, d_grads, (real_logits, fake_logits, d_stats) = d_update(d_params, fake)
      # 3. Generator update through the updated discriminator, pulled back by the VJP.
      g_loss, d_fake_grad = jax.value_and_grad(
          lambda x: g_loss_of_fakes(d_params, d_stats, x, inputs['z']))(fake)
      (g_grads,) = g_vjp(d_fake_grad)
      g_grads = with_path_length(g_grads, inputs)
      g_params, g_opt = g_update(g_grads)

    if g_bn or d_bn:
      extras['batch_stats'] = {'generator': g_stats, 'discriminator': d_stats}
    if style:
      extras['w_avg'] = stylegan.update_w_avg(state.extras['w_avg'], w, labels, mc.w_avg_beta)
    ema = None
    if state.ema_decay is not None:
      ema = {'generator': ema_update(state.ema_params['generator'], g_params, state.step,
                                     state.ema_decay, state.ema_warmup)}
    new_state = state.replace(
        step=state.step + 1, params={'generator': g_params, 'discriminator': d_params},
        opt_state={'generator': g_opt, 'discriminator': d_opt}, ema_params=ema, extras=extras)

    g_norm, d_norm = optax.tree.norm(g_grads), optax.tree.norm(d_grads)
    checked = ([d_loss, g_loss, g_norm, d_norm] + ([extras['r1']] if mc.r1_gamma else []) +
               ([extras['pl_penalty']] if mc.pl_weight else []))
    finite = jnp.all(jnp.isfinite(jnp.stack(checked)))
    metrics = {'loss': jnp.where(finite, d_loss + g_loss, jnp.nan), 'd_loss': d_loss,
               'g_loss': g_loss, 'd_real': jnp.mean(loss.display(real_logits)),
               'd_fake': jnp.mean(loss.display(fake_logits)), 'g_grad_norm': g_norm,
               'd_grad_norm': d_norm}
    if mc.r1_gamma:
      metrics['r1'] = extras['r1']
    if mc.pl_weight:
      metrics['pl_penalty'], metrics['pl_mean'] = extras['pl_penalty'], extras['pl_mean']
    if style:
      metrics['w_avg_norm'] = jnp.mean(jnp.linalg.norm(extras['w_avg'], axis=-1))
    if monitor is not None:
      _, probs = monitor.apply(jnp.clip(fake, -1.0, 1.0))
      metrics['class_entropy'] = gan_losses.label_histogram_entropy(probs)
      if conditional:
        metrics['fake_label_accuracy'] = jnp.mean(jnp.argmax(probs, -1) == labels)
    return new_state, metrics

  # -- Sampling: per-sample keys, BatchNorm in inference mode, EMA generator. --
  @jax.jit
  def _standing_stats(params, stats):
    """The generator's BatchNorm statistics over a fixed batch of latents (BigGAN's
    "standing statistics"): momentum 0 makes the updated averages the batch's own."""
    n = mc.standing_stats_size
    inputs = draw_inputs(jax.random.split(jax.random.key(_STANDING_SEED), n), False)
    labels = jnp.arange(n) % num_classes if conditional else None
    _, updates = generator.clone(bn_momentum=0.0).apply(
        g_vars(params, stats), inputs['z'], labels, train=True, mutable=['batch_stats'])
    return updates['batch_stats']

  def eval_parts(state):
    """(generator params: the EMA when kept, its BatchNorm statistics, w_avg or None)."""
    params = state.eval_params['generator']
    stats = state.extras.get('batch_stats', {}).get('generator', {})
    if g_bn and mc.standing_stats_size:
      stats = _standing_stats(params, stats)
    return params, stats, state.extras.get('w_avg')

  @jax.jit
  def _sample(params, stats, w_avg, keys, labels):
    inputs = draw_inputs(keys, mixing=False)
    images, _, _ = generate(params, stats, inputs, labels, train=False, w_avg=w_avg, trunc=psi)
    return jnp.clip(images, -1.0, 1.0)

  def sample(state, keys, labels=None):
    """Samples [n, H, W, C] in [-1, 1], sample i a function of keys[i] (and labels[i]) alone."""
    if conditional and labels is None:
      raise ValueError('This GAN is conditional: give labels (e.g. --labels=0,1,2 to sample).')
    return _sample(*eval_parts(state), keys, jnp.asarray(labels) if conditional else None)

  def evaluate(state, ctx: EvalContext):
    count = lambda tree: int(sum(np.size(x) for x in jax.tree.leaves(tree)))
    result = {'num_params_generator': count(state.params['generator']),
              'num_params_discriminator': count(state.params['discriminator'])}
    if style:
      result['truncation_psi'] = psi
    result.update(sampling.evaluate_samples(sample, state, ctx))
    return result

  @jax.jit
  def _from_z(params, stats, z, labels, noise):
    inputs = {'z': z, **({'noise': noise} if style else {})}
    return jnp.clip(generate(params, stats, inputs, labels, train=False)[0], -1.0, 1.0)

  @jax.jit
  def _from_ws(params, ws, noise):
    return jnp.clip(synthesize(params, ws, noise), -1.0, 1.0)

  def write_images(state, ctx: EvalContext):
    params, stats, w_avg = eval_parts(state)
    out, rng = ctx.images_dir, jax.random.fold_in(ctx.rng, 7)
    rows, steps = 6, 10
    ends = draw_inputs(jax.random.split(rng, 2 * rows), mixing=False)
    row_labels = np.arange(rows) % num_classes if conditional else None
    per_row = lambda a: None if a is None else jnp.asarray(np.repeat(a, steps))
    # One noise draw per row, held along it, so only the latent moves.
    noise = [jnp.repeat(n[:rows], steps, axis=0) for n in ends.get('noise', [])]
    z_path = viz_gan.slerp_path(np.asarray(ends['z'][:rows]), np.asarray(ends['z'][rows:]), steps)
    paths = [viz_gan.save_rows(_from_z(params, stats, z_path, per_row(row_labels), noise), steps,
                               os.path.join(out, 'interpolation_z.png'))]
    if conditional:
      labels = np.repeat(np.arange(num_classes), 10)
      per_label = sampling.draw(sample, state, jax.random.fold_in(ctx.rng, 3), len(labels), labels)
      paths.append(viz_gan.save_rows(per_label, 10, os.path.join(out, 'samples_per_label.png')))
    if not style:
      return paths
    lab = None if row_labels is None else jnp.asarray(row_labels)
    wa, _ = map_ws(params, ends['z'][:rows], lab)
    wb, _ = map_ws(params, ends['z'][rows:], lab)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    w_path = (1 - t)[None, :, None] * wa[:, None] + t[None, :, None] * wb[:, None]  # Lerp in W.
    w_path = jnp.repeat(w_path.reshape(rows * steps, 1, -1), num_ws, axis=1)
    paths.append(viz_gan.save_rows(_from_ws(params, w_path, noise), steps,
                                   os.path.join(out, 'interpolation_w.png')))
    # Truncation sweep: rows of samples, psi from 1 (left) to 0 (right, the tracked w_avg).
    psis = np.linspace(1.0, 0.0, 7, dtype=np.float32)
    center = w_avg[row_labels] if conditional else jnp.broadcast_to(w_avg[0], wa.shape)
    trunc = stylegan.truncate(wa[:, None], center[:, None], psis[None, :, None])
    trunc = jnp.repeat(trunc.reshape(rows * len(psis), 1, -1), num_ws, axis=1)
    trunc_noise = [jnp.repeat(n[:rows], len(psis), axis=0) for n in ends['noise']]
    paths.append(viz_gan.save_rows(_from_ws(params, trunc, trunc_noise), len(psis),
                                   os.path.join(out, 'truncation.png')))
    # Style mixing (StyleGAN fig. 3): row i is source A_i, column j source B_j; cell (i, j)
    # reads A_i's ws below the crossover and B_j's from it on. Crossing over at the block of
    # resolution r: B gives the styles of r and finer (one picture per r: middle, finest).
    n_a = n_b = 5
    wa_, wb_ = wa[:n_a], wb[:n_b]
    noise_one = [n[:1] for n in ends['noise']]
    num_res = num_ws // 2
    for i in sorted({max(num_res - 2, 1), num_res - 1}):
      crossover, name = 2 * i - 1, f'style_mixing_from{4 * 2 ** i}'
      w1 = jnp.repeat(jnp.repeat(wa_[:, None], n_b, 1).reshape(-1, 1, m.w_dim), num_ws, 1)
      w2 = jnp.repeat(jnp.repeat(wb_[None], n_a, 0).reshape(-1, 1, m.w_dim), num_ws, 1)
      mixed = stylegan.mix_styles(w1, w2, jnp.full((n_a * n_b,), crossover))
      batch_noise = [jnp.repeat(n, n_a * n_b, 0) for n in noise_one]
      img_a = _from_ws(params, jnp.repeat(wa_[:, None], num_ws, 1), [jnp.repeat(n, n_a, 0) for n in noise_one])
      img_b = _from_ws(params, jnp.repeat(wb_[:, None], num_ws, 1), [jnp.repeat(n, n_b, 0) for n in noise_one])
      grid = _from_ws(params, mixed, batch_noise).reshape(n_a, n_b, *img_a.shape[1:])
      paths.append(viz_gan.save_mixing_grid(img_a, img_b, grid,
                                            os.path.join(out, f'{name}.png')))
    return paths

  return Method(init=init, train_step=train_step, evaluate=evaluate, sample=sample,
                write_images=write_images)
