"""Diffusion models: DDPM-style VP training (eps, x0 or v; simple or min-SNR weighting) and
EDM preconditioning (Karras et al. 2022), sampled by any sampler of the library.

Every model is turned into one sigma-form denoiser D(x, sigma) -> x0_hat
(`denoiser`, through genjax.diffusion.denoisers), with classifier-free guidance
for class-conditional models; sampling, likelihood and pictures use only D.
`config.diffusion` decodes into `DiffusionSpec` (the U-Net, its VP schedule,
the loss) and the shared `config.sample` into `SampleSpec`; the functions
below take them, and `make` binds them.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genjax import config as config_lib
from genjax.core import precision
from genjax.core.batching import batched_apply
from genjax.core.state import TrainState
from genjax.diffusion import likelihood as diffusion_likelihood
from genjax.diffusion import losses, schedules
from genjax.diffusion.denoisers import Denoiser, make_edm_denoiser, make_vp_denoiser
from genjax.diffusion.samplers import SAMPLERS, nfe
from genjax.diffusion.spec import DiffusionLossFields
from genjax.methods import sampling
from genjax.methods.api import EvalContext, Method, StateSpec
from genjax.models.unet import UNet
from genjax.viz.grid import save_grid


@dataclasses.dataclass(frozen=True)
class DiffusionSpec(DiffusionLossFields):
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
    parameterization, loss_weighting, beta_schedule, num_timesteps, min_snr_gamma,
      sigma_data, p_mean, p_std, sigma_min, sigma_max: the loss and the noise
      (genjax.diffusion.spec.DiffusionLossFields, with its defaults: EDM, sigma_data 0.5).
    label_dropout: conditional models: fraction of null labels.
    random_flip: random horizontal flips (natural images, not digits).
    embedding_flip_sin_to_cos, embedding_freq_shift: the U-Net's noise-embedding layout
      (genjax: True, 0; diffusers' DDPM checkpoints: False, 1).
    attention_down_levels, attention_up_levels: None (attention by `attention_resolutions`)
      or the U-Net levels with attention on the way down / up (diffusers' block types).
    image_shape: (H, W, C) of the data; not a config field (`make` passes the data's).
    compute_dtype: `train.compute_dtype` (float32 | bfloat16); not a field of this group.
  """
  num_classes: int = 10
  conditional: bool = False
  channels: tuple[int, ...] = (32, 64, 128)
  num_res_blocks: int = 2
  attention_resolutions: tuple[int, ...] = (7,)
  num_heads: int = 1
  patch_size: int = 1
  dropout: float = 0.0
  label_dropout: float = 0.1
  random_flip: bool = False
  embedding_flip_sin_to_cos: bool = True
  embedding_freq_shift: float = 0.0
  attention_down_levels: tuple[int, ...] | None = None
  attention_up_levels: tuple[int, ...] | None = None
  image_shape: tuple[int, int, int] = dataclasses.field(default=(28, 28, 1),
                                                        metadata={'config': False})
  compute_dtype: str = dataclasses.field(default='float32', metadata={'config': False})

  def __post_init__(self):
    self.check_diffusion_fields('diffusion')
    config_lib.check_range('diffusion.patch_size', self.patch_size, low=1)
    config_lib.check_range('diffusion.label_dropout', self.label_dropout, low=0.0, high=1.0)
    if self.channels and self.channels[0] % 2:  # The noise embedding's size: cos and sin halves.
      raise config_lib.ConfigError(f'config.diffusion.channels={self.channels}: the first width '
                                   'sizes the sinusoidal noise embedding and must be even.')

  @functools.cached_property
  def network(self) -> UNet:
    """The flax module (built once per spec), computing in `compute_dtype`."""
    as_tuple = lambda v: None if v is None else tuple(v)
    return precision.with_policy(
        UNet(out_channels=self.image_shape[-1], channels=tuple(self.channels),
             num_res_blocks=self.num_res_blocks,
             attention_resolutions=tuple(self.attention_resolutions), dropout=self.dropout,
             num_classes=self.num_classes if self.conditional else 0,
             num_heads=self.num_heads, patch_size=self.patch_size,
             flip_sin_to_cos=self.embedding_flip_sin_to_cos,
             freq_shift=self.embedding_freq_shift,
             attention_down=as_tuple(self.attention_down_levels),
             attention_up=as_tuple(self.attention_up_levels)), self.compute_dtype)

  @functools.cached_property
  def vp_schedule(self) -> schedules.VPSchedule:
    """The discrete schedule (built once per spec): the VP models' training chain, and for
    every model the grid of the variational bound (bits/dim) and of 'vp_uniform' sampling."""
    vp = schedules.VPSchedule.create(self.beta_schedule, self.num_timesteps)
    if isinstance(vp.betas, jax.core.Tracer):  # First asked for under jit: cache concrete arrays.
      with jax.ensure_compile_time_eval():
        vp = schedules.VPSchedule.create(self.beta_schedule, self.num_timesteps)
    return vp


@dataclasses.dataclass(frozen=True)
class SampleSpec:
  """`config.sample` (a shared group): how the diffusion method samples.

  Attributes:
    sampler: a key of `samplers`.
    num_steps: n, the sampler's steps (its denoiser calls: `genjax.diffusion.samplers.nfe`).
    sigma_schedule: a key of genjax.diffusion.schedules.SIGMA_SCHEDULES.
    rho: the Karras schedule's rho.
    guidance_scale: classifier-free guidance weight w (1: the plain conditional model); None: off.
    eta: the noise of ddim / ancestral / SDE samplers; None: the sampler's default.
    s_churn: heun's stochastic churn (EDM Algorithm 2); None: its default.
    samplers: the table `sampler` is looked up in: the library's SAMPLERS, or
      `genjax.diffusion.samplers.samplers_with({...})` for a new sampler (see
      experiments/new_sampler/). Not a config field.
  """
  sampler: str = 'dpmpp_2m'
  num_steps: int = 20
  sigma_schedule: str = 'karras'
  rho: float = 7.0
  guidance_scale: float | None = None
  eta: float | None = None
  s_churn: float | None = None
  samplers: Mapping[str, Callable[..., jax.Array]] = dataclasses.field(
      default_factory=lambda: SAMPLERS, hash=False, repr=False, metadata={'config': False})

  def __post_init__(self):
    config_lib.check_choice('sample.sampler', self.sampler, sorted(self.samplers))
    config_lib.check_choice('sample.sigma_schedule', self.sigma_schedule,
                            sorted(schedules.SIGMA_SCHEDULES))
    config_lib.check_range('sample.num_steps', self.num_steps, low=1)
    config_lib.check_range('sample.rho', self.rho, low=0.0, low_open=True)
    for key in ('eta', 's_churn'):
      if getattr(self, key) is not None:
        config_lib.check_range(f'sample.{key}', getattr(self, key), low=0.0)

  @property
  def knobs(self) -> dict:
    """The knobs among eta and s_churn that are set and that the sampler accepts."""
    accepted = inspect.signature(self.samplers[self.sampler]).parameters
    knobs = {'eta': self.eta, 's_churn': self.s_churn}
    return {k: v for k, v in knobs.items() if k in accepted and v is not None}

  def replace(self, **changes) -> 'SampleSpec':
    """A copy with `changes` (validated again)."""
    return dataclasses.replace(self, **changes)


def decode_specs(config: ml_collections.ConfigDict,
                 image_shape: tuple[int, int, int]) -> tuple[DiffusionSpec, SampleSpec]:
  """`config.diffusion` and `config.sample`, decoded and validated once (ConfigError names the key)."""
  spec = config_lib.decode(DiffusionSpec, config, 'diffusion', image_shape=tuple(image_shape),
                           compute_dtype=config.train.compute_dtype)
  return spec, config_lib.decode(SampleSpec, config, 'sample')


# -- Training. --


def init(spec: DiffusionSpec, state_spec: StateSpec, rng: jax.Array, batch: dict) -> TrainState:
  """A fresh state; `batch` {'image' [B, H, W, C], 'label' [B]} gives the input shapes."""
  labels = batch['label'] if spec.conditional else None
  params = spec.network.init({'params': rng}, batch['image'], jnp.zeros(batch['image'].shape[:1]),
                             labels)['params']
  return state_spec.create(params)


def loss_fn(spec: DiffusionSpec, params, images: jax.Array, labels: jax.Array | None,
            rng: jax.Array) -> jax.Array:
  """Per-example weighted loss [B] of one noise draw per image [B, H, W, C] (labels [B] | None).

  The loss of `spec.parameterization`: genjax.diffusion.losses.edm_loss or vp_loss.
  """
  def network_fn(x, noise_label, cond, dropout_rng):
    return spec.network.apply({'params': params}, x, noise_label, cond, train=True,
                              rngs={'dropout': dropout_rng})

  if spec.edm:
    return losses.edm_loss(network_fn, images, labels, rng, sigma_data=spec.sigma_data,
                           p_mean=spec.p_mean, p_std=spec.p_std)
  return losses.vp_loss(network_fn, spec.vp_schedule, images, labels, rng,
                        parameterization=spec.parameterization, weighting=spec.loss_weighting,
                        min_snr_gamma=spec.min_snr_gamma)


def train_step(spec: DiffusionSpec, state: TrainState, batch: dict, rng: jax.Array):
  """One update on batch {'image' [B, H, W, C], 'label' [B]} -> (state, metrics)."""
  drop_rng, loss_rng, flip_rng = jax.random.split(rng, 3)
  images = batch['image']
  if spec.random_flip:
    flip = jax.random.bernoulli(flip_rng, 0.5, images.shape[:1])[:, None, None, None]
    images = jnp.where(flip, images[:, :, ::-1], images)
  labels = None
  if spec.conditional:  # Label dropout teaches the null class for classifier-free guidance.
    keep = jax.random.uniform(drop_rng, batch['label'].shape) >= spec.label_dropout
    labels = jnp.where(keep, batch['label'], spec.num_classes)
  loss, grads = jax.value_and_grad(
      lambda p: jnp.mean(loss_fn(spec, p, images, labels, loss_rng)))(state.params)
  return state.apply_gradients(grads), {'loss': loss, 'grad_norm': optax.tree.norm(grads)}


# -- The denoiser, its noise levels, and sampling. --


def denoiser(spec: DiffusionSpec, params, labels: jax.Array | None = None,
             guidance_scale: float | None = None) -> Denoiser:
  """D(x [B, H, W, C], sigma) -> x0_hat of the network `params` (sigma form).

  Guidance applies to conditional models given labels [B] and a scale:
  out = uncond + w (cond - uncond), the null class as the unconditional input.
  """
  def model_fn(x, noise_label, cond):
    return spec.network.apply({'params': params}, x, noise_label, cond)

  guided = spec.conditional and guidance_scale is not None and labels is not None
  kwargs = dict(cond=labels if spec.conditional else None,
                guidance_scale=guidance_scale if guided else None,
                uncond=jnp.full_like(labels, spec.num_classes) if guided else None)
  if spec.edm:
    return make_edm_denoiser(model_fn, spec.sigma_data, **kwargs)
  return make_vp_denoiser(model_fn, spec.vp_schedule, spec.parameterization, **kwargs)


def sigmas(spec: DiffusionSpec, sample_spec: SampleSpec, name: str, n: int) -> jax.Array:
  """[n + 1] decreasing sigmas of schedule `name`, ending in 0, over the model's range:
  [diffusion.sigma_min, diffusion.sigma_max] for EDM models, the VP schedule's otherwise."""
  vp = spec.vp_schedule
  if name == 'vp_uniform':
    return schedules.get_sigmas(name, n, schedule=vp)
  if spec.edm:
    lo, hi = spec.sigma_min, spec.sigma_max
  else:
    try:
      lo, hi = float(vp.sigma_min), float(vp.sigma_max)
    except jax.errors.ConcretizationTypeError:  # Under jit (the denoising path): read them off
      with jax.ensure_compile_time_eval():  # the concrete schedule.
        lo, hi = float(vp.sigma_min), float(vp.sigma_max)
  knobs = {'rho': sample_spec.rho} if name == 'karras' else {}
  return schedules.get_sigmas(name, n, sigma_min=lo, sigma_max=hi, **knobs)


def make_sample_fn(spec: DiffusionSpec, sample_spec: SampleSpec):
  """A jitted (params, keys [n], labels [n] | None) -> samples [n, H, W, C] in [-1, 1].

  Each sample runs the sampler alone under vmap, so its initial noise and
  every stochastic step come from its own key: samples do not depend on the
  batch they are drawn in. For a sampler of another table, pass
  `sample_spec.replace(sampler=..., samplers=...)`.
  """
  steps = sigmas(spec, sample_spec, sample_spec.sigma_schedule, sample_spec.num_steps)
  sampler, knobs = sample_spec.samplers[sample_spec.sampler], sample_spec.knobs

  @jax.jit
  def run(params, keys, labels):
    def one(key, label):
      d = denoiser(spec, params, None if label is None else label[None], sample_spec.guidance_scale)
      x = steps[0] * jax.random.normal(jax.random.fold_in(key, 0), (1, *spec.image_shape))
      x = sampler(d, x, steps, rng=jax.random.fold_in(key, 1), **knobs)
      return jnp.clip(x[0], -1.0, 1.0)
    return jax.vmap(one)(keys, labels)

  return run


# One compiled sampler per (spec, sample_spec), as jit's cache keeps one per static argument.
_sample_fn = functools.cache(make_sample_fn)


def sample(spec: DiffusionSpec, sample_spec: SampleSpec, state: TrainState, keys: jax.Array,
           labels: jax.Array | None = None) -> jax.Array:
  """Samples [n, H, W, C] of the state's eval params, one per key [n] (and label [n]).

  A conditional model given no labels samples the null class (unconditionally).
  """
  if spec.conditional and labels is None:
    labels = jnp.full(keys.shape, spec.num_classes, jnp.int32)
  return _sample_fn(spec, sample_spec)(state.eval_params, keys, labels if spec.conditional else None)


# -- Evaluation and pictures. --


def bits_per_dim(spec: DiffusionSpec, params, ctx: EvalContext) -> dict:
  """The DDPM variational bound on `eval.bpd_num_examples` test images, every term (Ho et al.
  2020, eq. 5); any model is read as a VP x0-predictor on the bound's grid."""
  e = ctx.config.eval
  data = ctx.load_split(e.split, e.bpd_num_examples)
  x0, labels = data['image'], data.get('label') if spec.conditional else None
  vp = spec.vp_schedule

  def x0_model(x_t, t, cond):
    sigma = vp.t_to_sigma(t)
    scale = jnp.sqrt(1.0 + sigma**2)[:, None, None, None]
    return denoiser(spec, params, cond, None)(x_t * scale, sigma)

  @jax.jit
  def bound(x, lab, key):
    return diffusion_likelihood.vlb_terms(x0_model, vp, x, key, 'x0', cond=lab,
                                          chunk_size=e.bpd_chunk)

  inputs = {'x': x0, 'i': np.arange(len(x0))} | ({'y': labels} if labels is not None else {})
  bpd = batched_apply(lambda b: bound(b['x'], b.get('y'), jax.random.fold_in(ctx.rng, b['i'][0])),
                      inputs, e.bpd_batch_size)
  return {'bits_per_dim': float(np.mean(bpd)), 'bits_per_dim_num_examples': int(len(bpd)),
          'bits_per_dim_timesteps': spec.num_timesteps}


def evaluate(spec: DiffusionSpec, sample_spec: SampleSpec, state: TrainState,
             ctx: EvalContext) -> dict:
  """Sample quality of `config.sample`'s sampler, and bits/dim when `eval.bpd_num_examples`."""
  ss = sample_spec
  guided = spec.conditional and ss.guidance_scale not in (None, 0, 1)  # Two calls per step.
  result = {'sampler': ss.sampler, 'sample_steps': ss.num_steps,
            'nfe': nfe(ss.sampler, ss.num_steps) * (2 if guided else 1),
            'sigma_schedule': ss.sigma_schedule}
  if spec.conditional:
    result['guidance_scale'] = ss.guidance_scale
  result.update(sampling.evaluate_samples(
      functools.partial(sample, spec, sample_spec), state, ctx,
      num_classes=spec.num_classes if spec.conditional else 0))
  if ctx.config.eval.bpd_num_examples:
    result.update(bits_per_dim(spec, state.eval_params, ctx))
  return result


@functools.partial(jax.jit, static_argnums=(0, 1))
def denoising_path(spec: DiffusionSpec, sample_spec: SampleSpec, params,
                   rng: jax.Array) -> jax.Array:
  """The x0 estimates [8 * 10, H, W, C] along 8 Euler paths of 10 steps (row-major: samples)."""
  steps = sigmas(spec, sample_spec, sample_spec.sigma_schedule, 10)
  d = denoiser(spec, params, jnp.full((8,), spec.num_classes) if spec.conditional else None, None)

  def euler(x, i):
    x0_hat = d(x, steps[i])
    return x0_hat + (x - x0_hat) * steps[i + 1] / steps[i], jnp.clip(x0_hat, -1.0, 1.0)

  x = steps[0] * jax.random.normal(rng, (8, *spec.image_shape))
  _, frames = jax.lax.scan(euler, x, jnp.arange(10))  # [10, 8, H, W, C]
  return frames.swapaxes(0, 1).reshape(-1, *spec.image_shape)


def write_images(spec: DiffusionSpec, sample_spec: SampleSpec, state: TrainState,
                 ctx: EvalContext) -> list[str]:
  """Samples per class (conditional models) and the denoiser's x0 along Euler paths."""
  paths = []
  if spec.conditional:  # One row per class.
    labels = np.repeat(np.arange(spec.num_classes), 10).astype(np.int32)
    images = sampling.draw(functools.partial(sample, spec, sample_spec), state,
                           jax.random.fold_in(ctx.rng, 7), len(labels), labels,
                           ctx.config.eval.sample_batch_size)
    paths.append(save_grid(images, os.path.join(ctx.images_dir, 'samples_per_class.png'), ncol=10))
  # Rows: samples; columns: sigma.
  paths.append(save_grid(denoising_path(spec, sample_spec, state.eval_params,
                                        jax.random.fold_in(ctx.rng, 8)),
                         os.path.join(ctx.images_dir, 'denoising.png'), ncol=10))
  return paths


def make(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Method:
  """The diffusion method: `config.diffusion` and `config.sample` decoded once, the functions
  bound to them."""
  spec, sample_spec = decode_specs(config, image_shape)
  # Built now: a bad sampling schedule (more vp_uniform steps than T) fails here, not at the
  # first evaluation, and the step sigmas are computed eagerly, outside any trace.
  _sample_fn(spec, sample_spec)
  state_spec = StateSpec.from_config(config)
  bind = lambda fn: functools.partial(fn, spec, sample_spec)
  return Method(init=functools.partial(init, spec, state_spec),
                train_step=functools.partial(train_step, spec), evaluate=bind(evaluate),
                sample=bind(sample), write_images=bind(write_images),
                num_classes=spec.num_classes if spec.conditional else 0)
