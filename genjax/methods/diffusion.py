"""Diffusion models: DDPM-style VP training (eps, x0 or v; simple or min-SNR weighting) and
EDM preconditioning (Karras et al. 2022), sampled by any sampler of the library.

Every model is turned into one sigma-form denoiser D(x, sigma) -> x0_hat
(genjax.diffusion.denoisers), with classifier-free guidance for
class-conditional models; sampling, likelihood and pictures use only D.
"""
from __future__ import annotations

import dataclasses
import inspect
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genjax import config as config_lib
from genjax.diffusion import likelihood as diffusion_likelihood
from genjax.diffusion import schedules
from genjax.diffusion.denoisers import make_edm_denoiser, make_vp_denoiser
from genjax.diffusion.samplers import SAMPLERS, nfe
from genjax.methods import sampling
from genjax.core.batching import batched_apply
from genjax.methods.api import EvalContext, Method
from genjax.models.unet import UNet
from genjax.core.optim import make_optimizer
from genjax.core.state import TrainState
from genjax.viz.grid import save_grid

PARAMETERIZATIONS = ('eps', 'x0', 'v', 'edm')
WEIGHTINGS = ('simple', 'min_snr', 'edm')


@dataclasses.dataclass(frozen=True)
class DiffusionSpec:
  """`config.diffusion`: the U-Net and how it is trained (sampling: `config.sample`).

  Attributes:
    num_classes: K, for class-conditional models (the null class K is the unconditional input).
    conditional: condition on labels, with label dropout for classifier-free guidance.
    channels: U-Net width per resolution level.
    num_res_blocks: residual blocks per level.
    attention_resolutions: sides H at which self-attention follows the blocks.
    num_heads: attention heads.
    patch_size: > 1 folds p x p patches into channels (space to depth) first.
    dropout: in the residual blocks.
    parameterization: eps | x0 | v (VP-discrete, DDPM) | edm (Karras et al. 2022).
    loss_weighting: simple | min_snr (VP) | edm (with parameterization='edm').
    beta_schedule: VP schedule: linear | cosine | sigmoid (also the bits/dim grid).
    num_timesteps: T of the VP chain.
    min_snr_gamma: min-SNR weighting's gamma.
    sigma_data: EDM's data standard deviation.
    p_mean, p_std: EDM training noise: ln(sigma) ~ N(p_mean, p_std^2).
    sigma_min, sigma_max: EDM sampling range.
    label_dropout: conditional models: fraction of null labels.
    random_flip: random horizontal flips (natural images, not digits).
  """
  num_classes: int = 10
  conditional: bool = False
  channels: tuple[int, ...] = (32, 64, 128)
  num_res_blocks: int = 2
  attention_resolutions: tuple[int, ...] = (7,)
  num_heads: int = 1
  patch_size: int = 1
  dropout: float = 0.0
  parameterization: str = 'edm'
  loss_weighting: str = 'edm'
  beta_schedule: str = 'linear'
  num_timesteps: int = 1000
  min_snr_gamma: float = 5.0
  sigma_data: float = 0.5
  p_mean: float = -1.2
  p_std: float = 1.2
  sigma_min: float = 0.002
  sigma_max: float = 80.0
  label_dropout: float = 0.1
  random_flip: bool = False

  def __post_init__(self):
    config_lib.check_choice('diffusion.parameterization', self.parameterization, PARAMETERIZATIONS)
    config_lib.check_choice('diffusion.loss_weighting', self.loss_weighting, WEIGHTINGS)
    config_lib.check_choice('diffusion.beta_schedule', self.beta_schedule,
                            sorted(schedules.BETA_SCHEDULES))
    if (self.loss_weighting == 'edm') != (self.parameterization == 'edm'):
      raise config_lib.ConfigError(
          "config.diffusion.loss_weighting='edm' goes with diffusion.parameterization='edm' and "
          f'only with it; got {self.loss_weighting!r} with {self.parameterization!r}.')
    config_lib.check_range('diffusion.num_timesteps', self.num_timesteps, low=2)
    config_lib.check_range('diffusion.patch_size', self.patch_size, low=1)
    config_lib.check_range('diffusion.label_dropout', self.label_dropout, low=0.0, high=1.0)
    config_lib.check_range('diffusion.sigma_min', self.sigma_min, low=0.0, low_open=True)
    config_lib.check_range('diffusion.sigma_max', self.sigma_max, low=self.sigma_min,
                           low_open=True)


def make_model(config: ml_collections.ConfigDict, image_shape) -> UNet:
  m = config.model
  if m.name not in MODELS:
    raise ValueError(f'method.name=diffusion takes model.name in {MODELS}, got {m.name!r}.')
  return UNet(out_channels=image_shape[-1], channels=tuple(m.channels),
              num_res_blocks=m.num_res_blocks, attention_resolutions=tuple(m.attention_resolutions),
              dropout=m.dropout, num_classes=m.num_classes if m.conditional else 0,
              num_heads=m.num_heads, patch_size=m.patch_size)


def _check(config: ml_collections.ConfigDict) -> None:
  mc, sc = config.method, config.sample
  for key, value, accepted in (('method.parameterization', mc.parameterization, PARAMETERIZATIONS),
                               ('method.loss_weighting', mc.loss_weighting, WEIGHTINGS),
                               ('sample.sampler', sc.sampler, tuple(sorted(SAMPLERS))),
                               ('sample.sigma_schedule', sc.sigma_schedule,
                                tuple(sorted(schedules.SIGMA_SCHEDULES)))):
    if value not in accepted:
      raise ValueError(f'config.{key}={value!r} is not accepted; choose one of {list(accepted)}.')
  if (mc.loss_weighting == 'edm') != (mc.parameterization == 'edm'):
    raise ValueError("method.loss_weighting='edm' goes with method.parameterization='edm' and only "
                     f'with it; got {mc.loss_weighting!r} with {mc.parameterization!r}.')


def sampler_knobs(name: str, config: ml_collections.ConfigDict) -> dict:
  """The `sample.*` knobs that sampler `name` accepts (eta, s_churn, ...)."""
  accepted = inspect.signature(SAMPLERS[name]).parameters
  knobs = {'eta': config.sample.eta, 's_churn': config.sample.s_churn}
  return {k: v for k, v in knobs.items() if k in accepted and v is not None}


def _vp_schedule(config: ml_collections.ConfigDict) -> schedules.VPSchedule:
  """The discrete schedule: the VP models' training chain, and for every model the grid of
  the variational bound (bits/dim) and of 'vp_uniform' sampling."""
  return schedules.VPSchedule.create(config.method.beta_schedule, config.method.num_timesteps)


def make_denoiser_fn(config: ml_collections.ConfigDict, image_shape):
  """(params, labels [B] | None, guidance_scale | None) -> D(x, sigma) -> x0_hat (sigma form).

  Guidance applies to conditional models given labels and a scale:
  out = uncond + w (cond - uncond), the null class as the unconditional input.
  """
  model = make_model(config, image_shape)
  mc = config.method
  vp = _vp_schedule(config)
  conditional = bool(config.model.conditional)

  def denoiser(params, labels=None, guidance_scale=None):
    def model_fn(x, noise_label, cond):
      return model.apply({'params': params}, x, noise_label, cond)
    guided = conditional and guidance_scale is not None and labels is not None
    kwargs = dict(cond=labels if conditional else None,
                  guidance_scale=guidance_scale if guided else None,
                  uncond=jnp.full_like(labels, config.model.num_classes) if guided else None)
    if mc.parameterization == 'edm':
      return make_edm_denoiser(model_fn, mc.sigma_data, **kwargs)
    return make_vp_denoiser(model_fn, vp, mc.parameterization, **kwargs)

  return denoiser


def make_sigmas_fn(config: ml_collections.ConfigDict):
  """(schedule name, n) -> [n + 1] decreasing sigmas ending in 0, over the model's range:
  [method.sigma_min, method.sigma_max] for EDM models, the VP schedule's range otherwise."""
  mc = config.method
  vp = _vp_schedule(config)

  def make_sigmas(name: str, n: int) -> jax.Array:
    if name == 'vp_uniform':
      return schedules.get_sigmas(name, n, schedule=vp)
    lo, hi = ((mc.sigma_min, mc.sigma_max) if mc.parameterization == 'edm'
              else (float(vp.sigma_min), float(vp.sigma_max)))
    knobs = {'rho': config.sample.rho} if name == 'karras' else {}
    return schedules.get_sigmas(name, n, sigma_min=lo, sigma_max=hi, **knobs)

  return make_sigmas


def make_sample_fn(config: ml_collections.ConfigDict, image_shape, sampler: str, num_steps: int,
                   guidance_scale=None, sigma_schedule: str = 'karras'):
  """A jitted (params, keys [n], labels [n] | None) -> samples [n, H, W, C] in [-1, 1].

  Each sample runs the sampler alone under vmap, so its initial noise and
  every stochastic step come from its own key: samples do not depend on the
  batch they are drawn in.
  """
  if sampler not in SAMPLERS:
    raise ValueError(f'Unknown sampler {sampler!r}; accepted: {sorted(SAMPLERS)}.')
  denoiser = make_denoiser_fn(config, image_shape)
  sigmas = make_sigmas_fn(config)(sigma_schedule, num_steps)
  knobs = sampler_knobs(sampler, config)

  @jax.jit
  def run(params, keys, labels):
    def one(key, label):
      d = denoiser(params, None if label is None else label[None], guidance_scale)
      x = sigmas[0] * jax.random.normal(jax.random.fold_in(key, 0), (1, *image_shape))
      x = SAMPLERS[sampler](d, x, sigmas, rng=jax.random.fold_in(key, 1), **knobs)
      return jnp.clip(x[0], -1.0, 1.0)
    return jax.vmap(one)(keys, labels)

  return run


def make(config: ml_collections.ConfigDict, image_shape) -> Method:
  """The diffusion method bound to `config` (see `genjax.methods.api.Method`)."""
  _check(config)
  model = make_model(config, image_shape)
  tx = make_optimizer(config.optim, config.train.num_steps)
  mc, sc = config.method, config.sample
  edm = mc.parameterization == 'edm'
  conditional = bool(config.model.conditional)
  null_label = config.model.num_classes
  vp = _vp_schedule(config)

  def network(params, x, noise_label, labels, *, train=False, rng=None):
    return model.apply({'params': params}, x, noise_label, labels, train=train,
                       rngs=None if rng is None else {'dropout': rng})

  def init(rng, batch):
    labels = batch['label'] if conditional else None
    params = model.init({'params': rng}, batch['image'], jnp.zeros(batch['image'].shape[:1]),
                        labels)['params']
    return TrainState.create(params=params, tx=tx, ema_decay=config.train.ema_decay,
                             ema_warmup=config.train.ema_warmup)

  def loss_fn(params, x, labels, rng):
    """Per-example weighted MSE [B] of one noise draw per example."""
    noise_rng, level_rng, drop_rng = jax.random.split(rng, 3)
    eps = jax.random.normal(noise_rng, x.shape)
    b = x.shape[0]
    if edm:
      sigma = schedules.edm_sample_sigma(level_rng, (b,), mc.p_mean, mc.p_std)
      c_skip, c_out, c_in, c_noise = schedules.edm_precond(sigma, mc.sigma_data)
      bcast = lambda a: a[:, None, None, None]
      noisy = x + bcast(sigma) * eps
      out = network(params, bcast(c_in) * noisy, c_noise, labels, train=True, rng=drop_rng)
      denoised = bcast(c_skip) * noisy + bcast(c_out) * out
      err = jnp.mean((denoised - x)**2, axis=(1, 2, 3))
      return schedules.edm_loss_weight(sigma, mc.sigma_data) * err
    t = jax.random.randint(level_rng, (b,), 0, mc.num_timesteps)
    abar = vp.alphas_cumprod[t][:, None, None, None]
    x_t = jnp.sqrt(abar) * x + jnp.sqrt(1.0 - abar) * eps
    out = network(params, x_t, t.astype(jnp.float32), labels, train=True, rng=drop_rng)
    target = {'eps': eps, 'x0': x, 'v': jnp.sqrt(abar) * eps - jnp.sqrt(1.0 - abar) * x}
    err = jnp.mean((out - target[mc.parameterization])**2, axis=(1, 2, 3))
    if mc.loss_weighting == 'min_snr':
      return schedules.min_snr_weight(vp.sigmas[t], mc.min_snr_gamma, mc.parameterization) * err
    return err

  def train_step(state, batch, rng):
    drop_rng, loss_rng, flip_rng = jax.random.split(rng, 3)
    images = batch['image']
    if mc.random_flip:
      flip = jax.random.bernoulli(flip_rng, 0.5, images.shape[:1])[:, None, None, None]
      images = jnp.where(flip, images[:, :, ::-1], images)
    labels = None
    if conditional:  # Label dropout teaches the null class for classifier-free guidance.
      keep = jax.random.uniform(drop_rng, batch['label'].shape) >= mc.label_dropout
      labels = jnp.where(keep, batch['label'], null_label)
    loss, grads = jax.value_and_grad(
        lambda p: jnp.mean(loss_fn(p, images, labels, loss_rng)))(state.params)
    return state.apply_gradients(grads), {'loss': loss, 'grad_norm': optax.tree.norm(grads)}

  denoiser = make_denoiser_fn(config, image_shape)
  make_sigmas = make_sigmas_fn(config)
  default_fn = make_sample_fn(config, image_shape, sc.sampler, sc.num_steps, sc.guidance_scale,
                              sc.sigma_schedule)

  def sample(state, keys, labels=None):
    """Samples [n, H, W, C] with config.sample's sampler, one per key (and label)."""
    if conditional and labels is None:
      labels = jnp.full(keys.shape, null_label, jnp.int32)  # Unconditional: the null class.
    return default_fn(state.eval_params, keys, labels if conditional else None)

  def bits_per_dim(params, ctx: EvalContext) -> dict:
    """The DDPM variational bound on test images, every term (Ho et al. 2020, eq. 5)."""
    n = config.eval.bpd_num_examples
    data = ctx.load_split(config.eval.split, n)
    x0, labels = data['image'], data.get('label') if conditional else None

    def x0_model(x_t, t, cond):  # Any model as a VP x0-predictor on the bound's grid.
      sigma = vp.t_to_sigma(t)
      scale = jnp.sqrt(1.0 + sigma**2)[:, None, None, None]
      return denoiser(params, cond, None)(x_t * scale, sigma)

    @jax.jit
    def bound(x, lab, key):
      return diffusion_likelihood.vlb_terms(x0_model, vp, x, key, 'x0', cond=lab,
                                            chunk_size=config.eval.bpd_chunk)

    inputs = {'x': x0, 'i': np.arange(len(x0))} | ({'y': labels} if labels is not None else {})
    bpd = batched_apply(lambda b: bound(b['x'], b.get('y'), jax.random.fold_in(ctx.rng, b['i'][0])),
                        inputs, config.eval.bpd_batch_size)
    return {'bits_per_dim': float(np.mean(bpd)), 'bits_per_dim_num_examples': int(len(bpd)),
            'bits_per_dim_timesteps': mc.num_timesteps}

  def evaluate(state, ctx: EvalContext):
    result = {'sampler': sc.sampler, 'sample_steps': sc.num_steps,
              'nfe': nfe(sc.sampler, sc.num_steps) * (
                  2 if conditional and sc.guidance_scale not in (None, 0, 1) else 1),
              'sigma_schedule': sc.sigma_schedule}
    if conditional:
      result['guidance_scale'] = sc.guidance_scale
    result.update(sampling.evaluate_samples(sample, state, ctx))
    if config.eval.bpd_num_examples:
      result.update(bits_per_dim(state.eval_params, ctx))
    return result

  @jax.jit
  def denoising_path(params, rng):
    sigmas = make_sigmas(sc.sigma_schedule, 10)
    d = denoiser(params, jnp.full((8,), null_label) if conditional else None, None)

    def euler(x, i):
      x0_hat = d(x, sigmas[i])
      return x0_hat + (x - x0_hat) * sigmas[i + 1] / sigmas[i], jnp.clip(x0_hat, -1.0, 1.0)

    x = sigmas[0] * jax.random.normal(rng, (8, *image_shape))
    _, frames = jax.lax.scan(euler, x, jnp.arange(10))  # [10, 8, H, W, C]
    return frames.swapaxes(0, 1).reshape(-1, *image_shape)

  def write_images(state, ctx: EvalContext):
    paths = []
    if conditional:  # One row per class.
      labels = np.repeat(np.arange(config.model.num_classes), 10).astype(np.int32)
      images = sampling.draw(sample, state, jax.random.fold_in(ctx.rng, 7), len(labels), labels,
                             config.eval.sample_batch_size)
      paths.append(save_grid(images, os.path.join(ctx.images_dir, 'samples_per_class.png'), ncol=10))
    # The denoiser's x0 estimate along one Euler path (rows: samples, columns: sigma).
    paths.append(save_grid(denoising_path(state.eval_params, jax.random.fold_in(ctx.rng, 8)),
                           os.path.join(ctx.images_dir, 'denoising.png'), ncol=10))
    return paths

  return Method(init=init, train_step=train_step, evaluate=evaluate, sample=sample,
                write_images=write_images)
