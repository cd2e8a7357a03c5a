"""Stage 3 of the pipeline: text-to-image latent diffusion (method `ldm`; Rombach et al. 2022).

The frozen autoencoder of stage 1 maps images to latents (scaled by its measured latent
scale), the frozen text encoder of stage 2 maps captions to token embeddings, and the latent
U-Net (genjax.models.ldm_unet) learns to denoise latents given them, with the diffusion
library's losses (EDM or VP eps/x0/v). Caption dropout replaces a fraction of captions by
the empty prompt [BOS], which is the unconditional model; classifier-free guidance mixes
both in the one denoiser wrapper (genjax.diffusion.denoisers), so any sampler of
`SAMPLERS` draws from it.

Without `ldm.autoencoder_workdir` the model runs in pixel space (LDM's f = 1); without
`ldm.clip_workdir` its text encoder trains jointly with the U-Net (as LDM's own
text-to-image model did). The frozen stages' weights are kept in the state's extras, so a
checkpoint samples with exactly the stages it was trained on; their sha256s are recorded
in the config and a changed stage is refused.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import config as config_lib
from genjax.core import precision
from genjax.core.state import TrainState
from genjax.data import captions
from genjax.diffusion import losses, schedules
from genjax.diffusion.denoisers import make_edm_denoiser, make_vp_denoiser
from genjax.diffusion.spec import DiffusionLossFields
from genjax.methods.api import StateSpec
from genjax.methods.diffusion import SampleSpec
from genjax.methods.ldm import autoencoder as ae_stage
from genjax.methods.ldm import clip as clip_stage
from genjax.models.autoencoder import Autoencoder
from genjax.models.ldm_unet import LatentUNet
from genjax.models.text import TextEncoder


@dataclasses.dataclass(frozen=True)
class LDMSpec(DiffusionLossFields):
  """`config.ldm`: the stages it builds on, the latent U-Net and its diffusion.

  Attributes:
    autoencoder_config, clip_config: stage configs (file[:variant], relative to the
      repository) that `genjax train` runs first, into <workdir>/autoencoder and
      <workdir>/clip, filling the two fields below (genjax/train/pipeline.py).
    autoencoder_workdir: a finished autoencoder stage; None: pixel space.
    clip_workdir: a finished CLIP stage, whose text tower is frozen; None: a text encoder
      trained jointly (text_width, text_depth, text_heads).
    autoencoder_sha256, clip_sha256: the stages' export hashes this LDM trains on (set by
      the pipeline); a stage whose export changed is refused.
    channels, num_res_blocks, transformer_resolutions, num_heads, transformer_depth,
      dropout, use_pooled: the latent U-Net (genjax.models.ldm_unet.LatentUNet).
    caption_dropout: fraction of captions replaced by the empty prompt.
    parameterization, loss_weighting, beta_schedule, num_timesteps, min_snr_gamma,
      sigma_data, p_mean, p_std, sigma_min, sigma_max: the diffusion, as config.diffusion's
      (genjax.diffusion.spec.DiffusionLossFields), but sigma_data 1.0: latents are scaled to
      unit standard deviation.
    adherence_pairs: prompt pairs per attribute in evaluation (differing in that one).
    eval_unconditional: also score empty-prompt samples (FID of the unconditional model).
    compute_dtype: `train.compute_dtype` (float32 | bfloat16) of the U-Net, the text encoder
      and the frozen autoencoder; not a field of this group.
  """
  autoencoder_config: str | None = None
  clip_config: str | None = None
  autoencoder_workdir: str | None = None
  clip_workdir: str | None = None
  autoencoder_sha256: str | None = None
  clip_sha256: str | None = None
  channels: tuple[int, ...] = (64, 128)
  num_res_blocks: int = 1
  transformer_resolutions: tuple[int, ...] = (7, 4)
  num_heads: int = 4
  transformer_depth: int = 1
  dropout: float = 0.0
  use_pooled: bool = True
  text_width: int = 128
  text_depth: int = 2
  text_heads: int = 4
  caption_dropout: float = 0.1
  sigma_data: float = 1.0  # DiffusionLossFields' 0.5, overridden (the field keeps its place).
  adherence_pairs: int = 100
  eval_unconditional: bool = True
  compute_dtype: str = dataclasses.field(default='float32', metadata={'config': False})

  def __post_init__(self):
    self.check_diffusion_fields('ldm')
    config_lib.check_range('ldm.caption_dropout', self.caption_dropout, low=0.0, high=1.0)
    config_lib.check_range('ldm.adherence_pairs', self.adherence_pairs, low=0)


@dataclasses.dataclass(frozen=True, eq=False)
class Parts:
  """What an LDM is built from, loaded once by `make`.

  Attributes:
    spec: the LDMSpec.
    image_shape: (H, W, C) of the data.
    latent_shape: (h, w, c) the U-Net denoises (= image_shape in pixel space).
    unet, text: the flax modules, computing in `spec.compute_dtype`.
    autoencoder: the frozen autoencoder's module (in `spec.compute_dtype` too), or None
      (pixel space).
    frozen: {'autoencoder': params, 'text': params (frozen text), 'latent_scale': []}.
    joint_text: the text encoder trains with the U-Net (no CLIP stage).
    clip: (ClipSpec, params) of the CLIP stage for the CLIP score, or None.
    vp: the VP schedule (VP models, and the VP sigma range).
  """
  spec: LDMSpec
  image_shape: tuple[int, int, int]
  latent_shape: tuple[int, int, int]
  unet: LatentUNet
  text: TextEncoder
  autoencoder: Autoencoder | None
  frozen: dict
  joint_text: bool
  clip: tuple[Any, dict] | None
  vp: schedules.VPSchedule
  key: tuple = ()

  # Equal when built from equal specs (the weights come as arguments): a run loaded twice
  # in one process samples with the sampler compiled once.
  def __hash__(self) -> int:
    return hash(self.key)

  def __eq__(self, other) -> bool:
    return isinstance(other, Parts) and self.key == other.key


def null_ids(n: int = 1) -> jax.Array:
  """The empty prompt [n, T]: BOS then padding (the unconditional model)."""
  return jnp.zeros((n, captions.MAX_TOKENS), jnp.int32).at[:, 0].set(captions.BOS)


def encode_text(parts: Parts, text_params, ids: jax.Array) -> tuple[jax.Array, ...]:
  """The U-Net's condition of token ids [B, T]: (tokens [B, T, D], mask [B, T], pooled [B, D])."""
  tokens, pooled = parts.text.apply({'params': text_params}, ids)
  return tokens, ids != captions.PAD, pooled


def _text_params(parts: Parts, params, extras):
  return params['text'] if parts.joint_text else extras['text']


def to_latent(parts: Parts, extras, images: jax.Array, rng: jax.Array | None) -> jax.Array:
  """Images [B, H, W, C] -> scaled latents [B, h, w, c], a posterior sample (mean if no rng)."""
  if parts.autoencoder is None:
    return images
  mean, logvar = parts.autoencoder.apply({'params': extras['autoencoder']}, images,
                                         method=Autoencoder.encode)
  z = mean if rng is None else mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape)
  return z * extras['latent_scale']


def from_latent(parts: Parts, extras, x: jax.Array) -> jax.Array:
  """Scaled latents [B, h, w, c] -> images [B, H, W, C] in [-1, 1]."""
  if parts.autoencoder is not None:
    x = parts.autoencoder.apply({'params': extras['autoencoder']}, x / extras['latent_scale'],
                                method=Autoencoder.decode)
  return jnp.clip(x, -1.0, 1.0)


def init(parts: Parts, state_spec: StateSpec, rng: jax.Array, batch: dict) -> TrainState:
  """A fresh U-Net (and joint text encoder), the frozen stages in the extras."""
  unet_rng, text_rng = jax.random.split(rng)
  ids = null_ids(batch['image'].shape[0])
  params = {}
  if parts.joint_text:
    params['text'] = parts.text.init(text_rng, ids)['params']
  cond = encode_text(parts, _text_params(parts, params, parts.frozen), ids)
  z = jnp.zeros((ids.shape[0],) + parts.latent_shape)
  params['unet'] = parts.unet.init(unet_rng, z, jnp.zeros(z.shape[:1]), *cond)['params']
  return state_spec.create(params, extras=jax.tree.map(jnp.asarray, parts.frozen))


def loss_fn(parts: Parts, params, extras, x: jax.Array, ids: jax.Array, rng: jax.Array):
  """Per-example diffusion loss [B] of scaled latents x [B, h, w, c] given token ids [B, T]."""
  spec = parts.spec
  cond = encode_text(parts, _text_params(parts, params, extras), ids)

  def network_fn(x_in, noise_label, c, dropout_rng):
    return parts.unet.apply({'params': params['unet']}, x_in, noise_label, *c, train=True,
                            rngs={'dropout': dropout_rng})

  if spec.edm:
    return losses.edm_loss(network_fn, x, cond, rng, sigma_data=spec.sigma_data,
                           p_mean=spec.p_mean, p_std=spec.p_std)
  return losses.vp_loss(network_fn, parts.vp, x, cond, rng, parameterization=spec.parameterization,
                        weighting=spec.loss_weighting, min_snr_gamma=spec.min_snr_gamma)


def train_step(parts: Parts, state: TrainState, batch: dict, rng: jax.Array):
  """One update on {'image' [B, H, W, C], 'captions' [B, K, T]}: a random caption of each,
  the empty prompt for a `caption_dropout` fraction."""
  pick_rng, drop_rng, latent_rng, loss_rng = jax.random.split(rng, 4)
  ids = clip_stage.pick_captions(batch, pick_rng)
  drop = jax.random.uniform(drop_rng, ids.shape[:1]) < parts.spec.caption_dropout
  ids = jnp.where(drop[:, None], null_ids(), ids)
  x = to_latent(parts, state.extras, batch['image'], latent_rng)
  loss, grads = jax.value_and_grad(
      lambda p: jnp.mean(loss_fn(parts, p, state.extras, x, ids, loss_rng)))(state.params)
  return state.apply_gradients(grads), {'loss': loss, 'grad_norm': optax.tree.norm(grads),
                                        'latent_std': jnp.std(x)}


def denoiser(parts: Parts, params, extras, cond, guidance_scale: float | None):
  """D(x [B, h, w, c], sigma) -> x0_hat given the condition `cond` (`encode_text`'s, or a
  blend of two), with classifier-free guidance against the empty prompt when a scale is given."""
  uncond = encode_text(parts, _text_params(parts, params, extras), null_ids())

  def model_fn(x, noise_label, c):
    return parts.unet.apply({'params': params['unet']}, x, noise_label, *c)

  kwargs = dict(cond=cond, guidance_scale=guidance_scale,
                uncond=uncond if guidance_scale is not None else None)
  if parts.spec.edm:
    return make_edm_denoiser(model_fn, parts.spec.sigma_data, **kwargs)
  return make_vp_denoiser(model_fn, parts.vp, parts.spec.parameterization, **kwargs)


def sigmas(parts: Parts, sample_spec: SampleSpec, n: int) -> jax.Array:
  """[n + 1] decreasing sigmas of `sample.sigma_schedule` over the model's range, ending in 0."""
  name = sample_spec.sigma_schedule
  if name == 'vp_uniform':
    return schedules.get_sigmas(name, n, schedule=parts.vp)
  if parts.spec.edm:
    lo, hi = parts.spec.sigma_min, parts.spec.sigma_max
  else:
    lo, hi = float(parts.vp.sigma_min), float(parts.vp.sigma_max)
  knobs = {'rho': sample_spec.rho} if name == 'karras' else {}
  return schedules.get_sigmas(name, n, sigma_min=lo, sigma_max=hi, **knobs)


@functools.cache  # One compiled sampler per (parts, sample spec, blend).
def make_sample_fn(parts: Parts, sample_spec: SampleSpec, blend: bool = False):
  """A jitted (params, extras, keys [n], ids [n, T] (, ids2 [n, T], t [n])) -> images [n, H, W, C].

  Sample i runs the sampler alone from its own key (its initial noise and every stochastic
  step), so it does not depend on the batch. With `blend`, the condition is the
  interpolation (1 - t) cond(ids) + t cond(ids2) of the two prompts' token embeddings.
  """
  steps = sigmas(parts, sample_spec, sample_spec.num_steps)
  sampler, knobs = sample_spec.samplers[sample_spec.sampler], sample_spec.knobs

  @jax.jit
  def run(params, extras, keys, ids, ids2=None, t=None):
    def one(key, i, i2, w):
      text_params = _text_params(parts, params, extras)
      cond = encode_text(parts, text_params, i[None])
      if blend:
        other = encode_text(parts, text_params, i2[None])
        cond = (cond[0] * (1 - w) + other[0] * w, cond[1] | other[1], cond[2] * (1 - w) + other[2] * w)
      d = denoiser(parts, params, extras, cond, sample_spec.guidance_scale)
      x = steps[0] * jax.random.normal(jax.random.fold_in(key, 0), (1, *parts.latent_shape))
      x = sampler(d, x, steps, rng=jax.random.fold_in(key, 1), **knobs)
      return from_latent(parts, extras, x)[0]
    return jax.vmap(one)(keys, ids, ids if ids2 is None else ids2,
                         jnp.zeros(keys.shape) if t is None else t)

  return run


def sample(parts: Parts, sample_spec: SampleSpec, state: TrainState, keys: jax.Array,
           ids: jax.Array | None = None) -> jax.Array:
  """Images [n, H, W, C] in [-1, 1] for token ids [n, T] (None: the empty prompt), one per key."""
  ids = null_ids(len(keys)) if ids is None else jnp.asarray(ids, jnp.int32)
  return make_sample_fn(parts, sample_spec)(state.eval_params, state.extras, keys, ids)


def _stage_hash_check(name: str, recorded: str | None, info: dict, workdir: str) -> None:
  if recorded is not None and recorded != info.get('sha256'):
    raise config_lib.ConfigError(
        f'This LDM was trained on the {name} export with sha256 {recorded[:12]}..., but '
        f'{workdir} now holds {str(info.get("sha256"))[:12]}... (another {name}); retrain the '
        f'LDM in a fresh --workdir, or point config.ldm.{name}_workdir at the one it was '
        'trained on.')


def load_parts(spec: LDMSpec, image_shape: tuple[int, int, int]) -> Parts:
  """Loads the frozen stages `spec` names and builds the networks.

  Raises:
    ConfigError: a stage whose export differs from the recorded one, or whose autoencoder
      reads other images.
    FileNotFoundError: a named stage has no export.
  """
  frozen, autoencoder, stage_specs = {}, None, []
  latent_shape = tuple(image_shape)
  if spec.autoencoder_workdir is not None:
    ae_spec, ae_params, info = ae_stage.load_export(spec.autoencoder_workdir)
    _stage_hash_check('autoencoder', spec.autoencoder_sha256, info, spec.autoencoder_workdir)
    if info['image_channels'] != image_shape[-1]:
      raise config_lib.ConfigError(
          f'The autoencoder in {spec.autoencoder_workdir} reads {info["image_channels"]}-channel '
          f'images; this data has {image_shape[-1]}.')
    # The frozen stages compute in the LDM's dtype, whatever theirs was (their exports do not
    # record it): under bf16, encoding every batch and decoding every sample run in bf16 too,
    # for speed. Frozen, they need no gradient precision: their rounding is a deterministic
    # perturbation of the latents the U-Net learns and of the decoded samples. The latent
    # scale and the posterior noise stay float32 (`to_latent`, `from_latent`).
    ae_spec = dataclasses.replace(ae_spec, compute_dtype=spec.compute_dtype)
    autoencoder = ae_spec.network(image_shape[-1])
    stage_specs.append(ae_spec)
    latent_shape = tuple(info['latent_shape'])
    frozen = {'autoencoder': ae_params, 'latent_scale': np.float32(info['latent_scale'])}
  clip = None
  if spec.clip_workdir is not None:
    clip_spec, clip_params, info = clip_stage.load_export(spec.clip_workdir)
    _stage_hash_check('clip', spec.clip_sha256, info, spec.clip_workdir)
    # The frozen text tower in the LDM's dtype; the CLIP score (`clip`) keeps the export's
    # float32 spec, so the metric does not depend on train.compute_dtype.
    text = dataclasses.replace(clip_spec, compute_dtype=spec.compute_dtype).text_network
    frozen['text'] = clip_params['text']
    clip = (clip_spec, clip_params)
    stage_specs.append(clip_spec)
  else:
    text = precision.with_policy(
        TextEncoder(vocab_size=len(captions.VOCAB), width=spec.text_width,
                    depth=spec.text_depth, num_heads=spec.text_heads,
                    max_tokens=captions.MAX_TOKENS), spec.compute_dtype)
  unet = precision.with_policy(
      LatentUNet(out_channels=latent_shape[-1], channels=tuple(spec.channels),
                 num_res_blocks=spec.num_res_blocks,
                 transformer_resolutions=tuple(spec.transformer_resolutions),
                 num_heads=spec.num_heads, transformer_depth=spec.transformer_depth,
                 dropout=spec.dropout, use_pooled=spec.use_pooled), spec.compute_dtype)
  with jax.ensure_compile_time_eval():  # Concrete arrays, even when first built under jit.
    vp = schedules.VPSchedule.create(spec.beta_schedule, spec.num_timesteps)
  return Parts(spec=spec, image_shape=tuple(image_shape), latent_shape=latent_shape, unet=unet,
               text=text, autoencoder=autoencoder, frozen=frozen,
               joint_text=spec.clip_workdir is None, clip=clip, vp=vp,
               key=(spec, tuple(image_shape), latent_shape, *stage_specs))
