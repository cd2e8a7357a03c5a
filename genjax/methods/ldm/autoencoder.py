"""Stage 1 of the latent diffusion pipeline: LDM's KL autoencoder (method `ldm_autoencoder`).

Trained with an L1 (or L2) reconstruction loss plus a lightly weighted KL to N(0, I);
evaluated by reconstruction PSNR / SSIM and the FID of reconstructions against the
real-data floor. Each evaluation also measures LDM's latent scale (1 / std of posterior
samples of training images) and exports the frozen weights with it to
`<workdir>/autoencoder.npz` (+ .json: sha256, spec, scale), which the LDM stage loads.
"""
from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genjax import config as config_lib
from genjax.core import precision
from genjax.core.batching import batched_apply
from genjax.core.state import TrainState
from genjax.methods.api import EvalContext, Method, StateSpec
from genjax.metrics import extractors, image_quality, suite, weights_file
from genjax.models.autoencoder import Autoencoder, kl_to_standard_normal
from genjax.viz.grid import save_grid

EXPORT = 'autoencoder.npz'  # The frozen weights a finished stage leaves in its workdir.


@dataclasses.dataclass(frozen=True)
class AutoencoderSpec:
  """`config.ldm_autoencoder`: the KL autoencoder and its loss.

  Attributes:
    channels: widths per level; the latent side is H / 2^(len(channels) - 1) (28 -> 7).
    latent_channels: the latent's channels.
    kl_weight: weight of the KL term (LDM: 1e-6), per latent dimension against the
      reconstruction's per-pixel mean.
    loss: 'l1' or 'l2' reconstruction.
    scale_examples: training images whose latents set the latent scale.
    compute_dtype: `train.compute_dtype` (float32 | bfloat16); not a field of this group (nor
      of the export: the LDM stage runs the frozen autoencoder in its own compute dtype).
  """
  channels: tuple[int, ...] = (32, 64, 64)
  latent_channels: int = 4
  kl_weight: float = 1e-6
  loss: str = 'l1'
  scale_examples: int = 1000
  compute_dtype: str = dataclasses.field(default='float32', metadata={'config': False})

  def __post_init__(self):
    config_lib.check_choice('ldm_autoencoder.loss', self.loss, ('l1', 'l2'))
    config_lib.check_range('ldm_autoencoder.latent_channels', self.latent_channels, low=1)
    config_lib.check_range('ldm_autoencoder.kl_weight', self.kl_weight, low=0.0)
    config_lib.check_range('ldm_autoencoder.scale_examples', self.scale_examples, low=1)
    if not self.channels:
      raise config_lib.ConfigError('config.ldm_autoencoder.channels must name at least one width.')

  def network(self, out_channels: int) -> Autoencoder:
    """The flax module for images of `out_channels` channels, computing in `compute_dtype`."""
    return precision.with_policy(
        Autoencoder(channels=tuple(self.channels), latent_channels=self.latent_channels,
                    out_channels=out_channels), self.compute_dtype)


def init(spec: AutoencoderSpec, state_spec: StateSpec, rng: jax.Array, batch: dict) -> TrainState:
  """A fresh state; `batch['image']` [B, H, W, C] gives the input shape."""
  x = batch['image']
  params = spec.network(x.shape[-1]).init({'params': rng}, x, rng)['params']
  return state_spec.create(params)


def loss_fn(spec: AutoencoderSpec, params, images: jax.Array, rng: jax.Array):
  """(loss [], (reconstruction error [], KL per latent dimension [])) of images [B, H, W, C]."""
  x_hat, mean, logvar = spec.network(images.shape[-1]).apply({'params': params}, images, rng)
  diff = x_hat - images
  rec = jnp.mean(jnp.abs(diff) if spec.loss == 'l1' else diff**2)
  kl = jnp.mean(kl_to_standard_normal(mean, logvar)) / mean[0].size
  return rec + spec.kl_weight * kl, (rec, kl)


def train_step(spec: AutoencoderSpec, state: TrainState, batch: dict, rng: jax.Array):
  """One update on batch {'image' [B, H, W, C]} -> (state, metrics)."""
  (loss, (rec, kl)), grads = jax.value_and_grad(
      lambda p: loss_fn(spec, p, batch['image'], rng), has_aux=True)(state.params)
  return state.apply_gradients(grads), {'loss': loss, 'reconstruction': rec, 'kl': kl,
                                        'grad_norm': optax.tree.norm(grads)}


def encode_fn(spec: AutoencoderSpec, params, out_channels: int):
  """A jitted images [B, H, W, C] -> (mean, logvar) [B, h, w, latent_channels]."""
  net = spec.network(out_channels)
  return jax.jit(lambda x: net.apply({'params': params}, x, method=Autoencoder.encode))


def decode_fn(spec: AutoencoderSpec, params, out_channels: int):
  """A jitted latents [B, h, w, latent_channels] (unscaled) -> images [B, H, W, C] in [-1, 1]."""
  net = spec.network(out_channels)
  return jax.jit(lambda z: jnp.clip(net.apply({'params': params}, z, method=Autoencoder.decode),
                                    -1.0, 1.0))


def latent_scale(spec: AutoencoderSpec, params, images: np.ndarray, rng: jax.Array,
                 batch_size: int = 500) -> float:
  """LDM's scale factor: 1 / std of posterior samples z of `images` [N, H, W, C] (all entries)."""
  encode = encode_fn(spec, params, images.shape[-1])
  mean, logvar = batched_apply(encode, images, batch_size)
  z = mean + np.exp(0.5 * logvar) * np.asarray(jax.random.normal(rng, mean.shape))
  return float(1.0 / z.std())


def evaluate(spec: AutoencoderSpec, state: TrainState, ctx: EvalContext) -> dict:
  """PSNR / SSIM and reconstruction FID on `eval.split`; measures the latent scale and
  exports the weights (`EXPORT`) for the LDM stage."""
  c = ctx.config
  test = ctx.load_split(c.eval.split, c.eval.num_examples)
  train = ctx.load_split(c.data.train_split, None)
  params, channels = state.eval_params, test['image'].shape[-1]
  encode, decode = encode_fn(spec, params, channels), decode_fn(spec, params, channels)
  recon = batched_apply(lambda x: decode(encode(x)[0]), test['image'], c.data.eval_batch_size)
  a, b = (test['image'] + 1) / 2, (recon + 1) / 2
  result = {'psnr': float(np.mean(image_quality.psnr(a, b, data_range=1.0))),
            'ssim': float(np.mean(image_quality.ssim(a, b, data_range=1.0))),
            'num_examples': int(len(recon))}
  scale = latent_scale(spec, params, train['image'][:spec.scale_examples], ctx.rng)
  mean = batched_apply(lambda x: encode(x)[0], test['image'], c.data.eval_batch_size)
  result.update(latent_scale=scale, latent_shape=list(mean.shape[1:]))
  if c.eval.feature_extractor is not None and len(train['image']) >= len(recon):
    extractor = extractors.get_extractor(c.eval.feature_extractor, c.eval.feature_extractor_path)
    pick = np.random.default_rng(c.seed).choice(len(train['image']), len(recon), replace=False)
    quality = suite.sample_quality(extractor, recon, test['image'], train['image'][pick],
                                   seed=c.seed, kid_subset_size=c.eval.kid_subset_size,
                                   kid_num_subsets=c.eval.kid_num_subsets)
    result.update({f'recon_{k}': quality[k] for k in ('fid', 'fid_floor', 'fid_ratio',
                                                      'precision', 'recall')})
  if jax.process_index() == 0:
    result['export_sha256'] = weights_file.save(
        params, os.path.join(ctx.workdir, EXPORT),
        {'spec': config_lib.group_values(spec), 'latent_scale': scale, 'image_channels': channels,
         'latent_shape': list(mean.shape[1:]), 'step': ctx.step})
  return result


def write_images(spec: AutoencoderSpec, state: TrainState, ctx: EvalContext) -> list[str]:
  """Reconstructions: rows alternate 10 test digits and their reconstructions."""
  data = ctx.load_split(ctx.config.eval.split, None)
  x = data['image'][np.arange(0, len(data['image']), max(1, len(data['image']) // 40))[:40]]
  channels = x.shape[-1]
  encode, decode = (encode_fn(spec, state.eval_params, channels),
                    decode_fn(spec, state.eval_params, channels))
  recon = np.asarray(decode(encode(x)[0]))
  rows = [r for i in range(0, len(x), 10) for r in (x[i:i + 10], recon[i:i + 10])]
  return [save_grid(np.concatenate(rows), os.path.join(ctx.images_dir, 'reconstructions.png'),
                    ncol=10)]


def load_export(workdir: str) -> tuple[AutoencoderSpec, dict, dict]:
  """(spec, params, info) of a finished autoencoder stage's export in `workdir`.

  Raises:
    FileNotFoundError: no export (the stage has not finished an evaluation).
  """
  path = os.path.join(workdir, EXPORT)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} not found: train the autoencoder stage first (`genjax train '
                            f'--config=configs/ldm_autoencoder_mnist.py --workdir={workdir}`).')
  params, info = weights_file.load(path)
  spec = AutoencoderSpec(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in info['spec'].items()})
  return spec, params, info


def make(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Method:
  """The autoencoder stage: `config.ldm_autoencoder` decoded once, the functions bound to it."""
  spec = config_lib.decode(AutoencoderSpec, config, 'ldm_autoencoder',
                           compute_dtype=config.train.compute_dtype)
  factor = 2 ** (len(spec.channels) - 1)
  if image_shape[0] % factor or image_shape[1] % factor:
    raise config_lib.ConfigError(
        f'config.ldm_autoencoder.channels has {len(spec.channels)} levels (side / {factor}), '
        f'which does not divide the {image_shape[0]}x{image_shape[1]} images; use fewer levels '
        'or data.pad_to.')
  bind = lambda fn: functools.partial(fn, spec)
  return Method(init=functools.partial(init, spec, StateSpec.from_config(config)),
                train_step=bind(train_step), evaluate=bind(evaluate),
                write_images=bind(write_images))
