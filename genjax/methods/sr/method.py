"""The SR family's `make`: `config.sr` (and, for diffusion, `config.sample`) decoded once and the
functions bound to it."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections

from genjax import config as config_lib
from genjax.methods.api import Method, StateSpec
from genjax.methods.diffusion import SampleSpec
from genjax.methods.sr import evaluate, steps, upscale
from genjax.methods.sr.spec import SRSpec, make_perceptual_fn


def decode(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> SRSpec:
  """`config.sr` as the validated spec, for data of `image_shape` (H, W, C)."""
  return config_lib.decode(SRSpec, config, 'sr', image_shape=tuple(image_shape),
                           compute_dtype=config.train.compute_dtype)


def load_psnr_generator(spec: SRSpec) -> dict:
  """The generator of the RRDB-PSNR run `spec.init_from`, checked against this spec's shapes.

  Raises:
    FileNotFoundError: no checkpoint there.
    ConfigError: a generator of another shape (features, growth, blocks, channels).
  """
  params = upscale.load_run_params(spec.init_from)
  if 'generator' not in params:
    raise config_lib.ConfigError(f'config.sr.init_from={spec.init_from!r} is not an RRDB run '
                                 f'(its parameters are {sorted(params)}).')
  h, w = spec.hr_side
  lr = jnp.zeros((1, h // spec.scale, w // spec.scale, spec.channels))
  want = jax.eval_shape(lambda: spec.generator.init(jax.random.key(0), lr)['params'])
  got = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params['generator'])
  if jax.tree.structure(want) != jax.tree.structure(got) or any(
      a.shape != b.shape for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got))):
    raise config_lib.ConfigError(
        f'The generator of config.sr.init_from={spec.init_from!r} does not fit config.sr '
        f'(features={spec.features}, growth={spec.growth}, num_blocks={spec.num_blocks}, '
        f'{spec.channels} channels); use the RRDB settings of that run.')
  return params['generator']


def make(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Method:
  """The SR method of `config.sr.arch` for HR data of `image_shape`."""
  spec = decode(config, image_shape)
  sample_spec = config_lib.decode(SampleSpec, config, 'sample')
  state_spec = StateSpec.from_config(config)
  # esrgan starts from an RRDB-PSNR run; rrdb_psnr may fine-tune one.
  init_generator = load_psnr_generator(spec) if spec.init_from else None
  if spec.arch == 'esrgan':
    perceptual_fn, _ = make_perceptual_fn(spec)
    train_step = functools.partial(steps.esrgan_step, spec, perceptual_fn)
  else:
    train_step = functools.partial(
        steps.diffusion_step if spec.arch == 'diffusion' else steps.psnr_step, spec)
  sampler = sample_spec.samplers[sample_spec.sampler]
  fn_of_params = lambda params: evaluate.make_upscaler(spec, params, sampler,
                                                       sample_spec.num_steps)
  return Method(init=functools.partial(steps.init, spec, state_spec, init_generator),
                train_step=train_step,
                evaluate=functools.partial(evaluate.evaluate, spec, fn_of_params),
                write_images=functools.partial(evaluate.write_images, spec, fn_of_params))

