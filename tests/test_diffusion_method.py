"""The diffusion method: the DDPM U-Net, training losses, guidance, per-sample seeds, bits/dim."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax.config import ConfigError
from genjax.diffusion import samplers, schedules
from genjax.methods import diffusion, sampling
from genjax.methods.api import EvalContext, StateSpec
from genjax.models.unet import UNet, depth_to_space, space_to_depth

SHAPE = (8, 8, 1)


def test_ddpm_cifar10_unet_has_35_7m_parameters():
  model = UNet(out_channels=3, channels=(128, 256, 256, 256), num_res_blocks=2,
               attention_resolutions=(16,), dropout=0.1)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,)))
  assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes)) == 35_746_307  # Paper: 35.7M.


def test_space_to_depth_round_trip_and_patch_unet_shapes():
  x = jax.random.normal(jax.random.key(0), (2, 28, 28, 1))
  folded = space_to_depth(x, 2)
  assert folded.shape == (2, 14, 14, 4)
  np.testing.assert_array_equal(folded[0, 0, 0], x[0, :2, :2, 0].ravel())
  np.testing.assert_array_equal(depth_to_space(folded, 2), x)
  model = UNet(channels=(8, 16), num_res_blocks=1, attention_resolutions=(7,), patch_size=2)
  params = model.init(jax.random.key(0), x, jnp.zeros((2,)))
  assert model.apply(params, x, jnp.zeros((2,))).shape == x.shape
  with pytest.raises(ValueError, match='patch_size=3'):
    UNet(channels=(8,), patch_size=3).init(jax.random.key(0), x, jnp.zeros((2,)))


SMALL = dict(diffusion__channels=(8, 16), diffusion__num_res_blocks=1,
             diffusion__attention_resolutions=(4,))


def _config(load, **overrides):
  base = dict(SMALL, eval__feature_extractor=None, sample__num_steps=4, optim__schedule='constant')
  return load('ddpm_mnist.py:smoke', **{**base, **overrides})


def _init(method):
  batch = {'image': jnp.zeros((1, *SHAPE)), 'label': jnp.zeros((1,), jnp.int32)}
  return method.init(jax.random.key(0), batch)


def _batch(b=4):
  return {'image': jax.random.uniform(jax.random.key(1), (b, *SHAPE), minval=-1),
          'label': jnp.arange(b, dtype=jnp.int32)}


# eps/simple, DDPM's, also trains in test_train's ddpm_mnist smoke run: test-all only here.
@pytest.mark.parametrize('param,weighting', [
    ('edm', 'edm'), pytest.param('eps', 'simple', marks=pytest.mark.slow), ('v', 'min_snr')])
def test_every_parameterization_trains(load, param, weighting):
  method = diffusion.make(_config(load, diffusion__parameterization=param,
                                  diffusion__loss_weighting=weighting), SHAPE)
  state = _init(method)
  new, metrics = jax.jit(method.train_step)(state, _batch(), jax.random.key(2))
  assert np.isfinite(metrics['loss']) and int(new.step) == 1
  # The zero-initialised head gets the first gradient (the rest follow from step 2).
  assert not np.allclose(new.params['head']['kernel'], state.params['head']['kernel'])


def test_train_step_is_a_function_of_the_spec(load):
  spec = diffusion.DiffusionSpec(channels=(8, 16), num_res_blocks=1, attention_resolutions=(4,),
                                 patch_size=2, conditional=True, image_shape=SHAPE)
  assert spec.network is spec.network and spec.vp_schedule is spec.vp_schedule  # Built once.
  state = diffusion.init(spec, StateSpec(tx=optax.adam(1e-3)), jax.random.key(0), _batch(1))
  step = jax.jit(diffusion.train_step, static_argnums=0)
  new, metrics = step(spec, state, _batch(), jax.random.key(2))
  assert int(new.step) == 1 and np.isfinite(metrics['loss'])
  # `make` only binds: the same spec from the config gives the same step, bit for bit.
  config = _config(load, diffusion__conditional=True, optim__lr=1e-3)
  assert diffusion.decode_specs(config, SHAPE)[0] == spec
  _, bound = jax.jit(diffusion.make(config, SHAPE).train_step)(state, _batch(), jax.random.key(2))
  np.testing.assert_array_equal(bound['loss'], metrics['loss'])


def _reference_loss(network_fn, spec, x, labels, rng):
  """The loss as methods/diffusion.py wrote it inline before it moved to diffusion/losses.py."""
  noise_rng, level_rng, drop_rng = jax.random.split(rng, 3)
  eps = jax.random.normal(noise_rng, x.shape)
  b = x.shape[0]
  if spec.parameterization == 'edm':
    sigma = schedules.edm_sample_sigma(level_rng, (b,), spec.p_mean, spec.p_std)
    c_skip, c_out, c_in, c_noise = schedules.edm_precond(sigma, spec.sigma_data)
    bcast = lambda a: a[:, None, None, None]
    noisy = x + bcast(sigma) * eps
    out = network_fn(bcast(c_in) * noisy, c_noise, labels, drop_rng)
    denoised = bcast(c_skip) * noisy + bcast(c_out) * out
    err = jnp.mean((denoised - x)**2, axis=(1, 2, 3))
    return schedules.edm_loss_weight(sigma, spec.sigma_data) * err
  vp = spec.vp_schedule
  t = jax.random.randint(level_rng, (b,), 0, spec.num_timesteps)
  abar = vp.alphas_cumprod[t][:, None, None, None]
  x_t = jnp.sqrt(abar) * x + jnp.sqrt(1.0 - abar) * eps
  out = network_fn(x_t, t.astype(jnp.float32), labels, drop_rng)
  target = {'eps': eps, 'x0': x, 'v': jnp.sqrt(abar) * eps - jnp.sqrt(1.0 - abar) * x}
  err = jnp.mean((out - target[spec.parameterization])**2, axis=(1, 2, 3))
  if spec.loss_weighting == 'min_snr':
    return schedules.min_snr_weight(vp.sigmas[t], spec.min_snr_gamma, spec.parameterization) * err
  return err


@pytest.mark.parametrize('param,weighting', [('edm', 'edm'), ('v', 'min_snr'), ('eps', 'simple')])
def test_the_loss_is_bit_identical_to_the_inline_formula(param, weighting):
  _check_bit_identical(param, weighting, jitted=True)


@pytest.mark.slow  # Eager value-and-grad of a U-Net: a minute on 2 cores.
def test_the_loss_is_bit_identical_to_the_inline_formula_op_by_op():
  _check_bit_identical('eps', 'simple', jitted=False)


def _check_bit_identical(param, weighting, jitted):
  # EDM goes through make_edm_denoiser's preconditioning now: same operations, same order.
  spec = diffusion.DiffusionSpec(channels=(8, 16), num_res_blocks=1, attention_resolutions=(4,),
                                 patch_size=2, conditional=True, dropout=0.1, image_shape=SHAPE,
                                 parameterization=param, loss_weighting=weighting)
  params = diffusion.init(spec, StateSpec(tx=optax.sgd(1.0)), jax.random.key(0), _batch(1)).params
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(5), p.shape), params)
  batch, rng = _batch(), jax.random.key(3)

  def network_fn(p):
    return lambda x, noise, cond, r: spec.network.apply({'params': p}, x, noise, cond, train=True,
                                                        rngs={'dropout': r})

  def new(p):
    return jnp.mean(diffusion.loss_fn(spec, p, batch['image'], batch['label'], rng))

  def old(p):
    return jnp.mean(_reference_loss(network_fn(p), spec, batch['image'], batch['label'], rng))

  fn = (lambda f: jax.jit(jax.value_and_grad(f))) if jitted else jax.value_and_grad
  (loss_new, grads_new), (loss_old, grads_old) = fn(new)(params), fn(old)(params)
  np.testing.assert_array_equal(loss_new, loss_old)
  jax.tree.map(np.testing.assert_array_equal, grads_new, grads_old)


def test_bad_choices_are_refused_naming_the_key(load):
  with pytest.raises(ConfigError, match="config.diffusion.parameterization='magic'"):
    diffusion.make(_config(load, diffusion__parameterization='magic'), SHAPE)
  with pytest.raises(ConfigError, match="loss_weighting='edm'"):
    diffusion.make(_config(load, diffusion__parameterization='eps'), SHAPE)
  with pytest.raises(ConfigError, match="config.sample.sampler='magic'"):
    diffusion.make(_config(load, sample__sampler='magic'), SHAPE)
  with pytest.raises(ConfigError, match='config.sample.sigma_schedule'):
    diffusion.make(_config(load, sample__sigma_schedule='magic'), SHAPE)
  with pytest.raises(ValueError, match='n=2000'):  # Checked by make, not at the first evaluation.
    diffusion.make(_config(load, diffusion__parameterization='eps', diffusion__loss_weighting='simple',
                           sample__sigma_schedule='vp_uniform', sample__num_steps=2000), SHAPE)


def test_sample_spec_passes_only_the_knobs_its_sampler_takes():
  spec = diffusion.SampleSpec(sampler='heun', eta=0.5, s_churn=3.0)
  assert spec.knobs == {'s_churn': 3.0}
  assert spec.replace(sampler='ddim').knobs == {'eta': 0.5}
  assert spec.replace(sampler='dpmpp_2m').knobs == {}


def test_a_new_sampler_comes_in_its_own_table(load):
  config = _config(load, sample__sampler='euler')
  spec, sample_spec = diffusion.decode_specs(config, SHAPE)
  with pytest.raises(ConfigError, match="config.sample.sampler='mine'"):
    sample_spec.replace(sampler='mine')
  table = samplers.samplers_with({'mine': samplers.sample_euler})
  mine = sample_spec.replace(sampler='mine', samplers=table)
  assert 'mine' not in samplers.SAMPLERS and mine != sample_spec.replace(sampler='euler')
  params = _init(diffusion.make(config, SHAPE)).params
  keys = jax.random.split(jax.random.key(3), 2)
  np.testing.assert_array_equal(diffusion.make_sample_fn(spec, mine)(params, keys, None),
                                diffusion.make_sample_fn(spec, sample_spec)(params, keys, None))


def test_stochastic_samples_do_not_depend_on_the_batch(load):
  method = diffusion.make(_config(load, sample__sampler='euler_ancestral'), SHAPE)
  state = _init(method)
  rng = jax.random.key(3)
  a = sampling.draw(method.sample, state, rng, 5, batch_size=5)
  b = sampling.draw(method.sample, state, rng, 5, batch_size=2)
  np.testing.assert_allclose(a, b, atol=1e-5)
  assert a.shape == (5, *SHAPE)


def test_guidance_scales_one_and_zero_are_the_conditional_and_null_models(load):
  config = _config(load, diffusion__conditional=True)
  method = diffusion.make(config, SHAPE)
  assert method.num_classes == 10
  state = _init(method)
  # Random weights everywhere (the zero-initialised head would make every output equal).
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(5), p.shape),
                        state.params)
  spec, _ = diffusion.decode_specs(config, SHAPE)
  x = jax.random.normal(jax.random.key(4), (3, *SHAPE))
  labels = jnp.array([1, 2, 3])
  plain = jax.jit(lambda l: diffusion.denoiser(spec, params, l, None)(x, 2.0))
  guided = jax.jit(lambda w: diffusion.denoiser(spec, params, labels, w)(x, 2.0))
  null = plain(jnp.full((3,), 10))
  np.testing.assert_allclose(guided(1.0), plain(labels), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(guided(0.0), null, rtol=1e-4, atol=1e-5)
  plain, guided = plain(labels), guided(3.0)
  np.testing.assert_allclose(guided, null + 3.0 * (plain - null), rtol=1e-3, atol=1e-4)


def test_sigma_ranges_follow_the_parameterization(load):
  spec, sample_spec = diffusion.decode_specs(_config(load), SHAPE)
  edm = diffusion.sigmas(spec, sample_spec, 'karras', 5)
  np.testing.assert_allclose([edm[0], edm[-2], edm[-1]], [80.0, 0.002, 0.0], rtol=1e-5)
  vp_spec, _ = diffusion.decode_specs(_config(load, diffusion__parameterization='eps',
                                              diffusion__loss_weighting='simple'), SHAPE)
  vp = diffusion.sigmas(vp_spec, sample_spec, 'karras', 5)
  assert 150 < float(vp[0]) < 160 and 0.009 < float(vp[-2]) < 0.011  # Linear betas' range.


def test_bits_per_dim_is_reported_on_the_test_images(load):
  config = _config(load, eval__bpd_num_examples=4, diffusion__num_timesteps=20,
                   eval__bpd_batch_size=4, eval__bpd_chunk=5)
  method = diffusion.make(config, SHAPE)
  images = np.round(np.asarray(jax.random.uniform(jax.random.key(6), (4, *SHAPE))) * 255) / 127.5 - 1
  ctx = EvalContext(config=config, workdir='/tmp/unused', step=0, rng=jax.random.key(0),
                    load_split=lambda split, n: {'image': images.astype(np.float32)})
  result = method.evaluate(_init(method), ctx)
  assert result['bits_per_dim_num_examples'] == 4 and result['bits_per_dim_timesteps'] == 20
  assert 0.0 < result['bits_per_dim'] < 50.0
  assert result['nfe'] == 4 and result['sampler'] == config.sample.sampler


def test_a_conditional_vp_model_draws_its_pictures(load, tmp_path):
  config = _config(load, diffusion__parameterization='eps', diffusion__loss_weighting='simple',
                   diffusion__conditional=True)
  method = diffusion.make(config, SHAPE)
  ctx = EvalContext(config=config, workdir=str(tmp_path), step=0, rng=jax.random.key(0),
                    load_split=lambda split, n: {})
  paths = method.write_images(_init(method), ctx)
  assert [os.path.basename(p) for p in paths] == ['samples_per_class.png', 'denoising.png']
  assert all(os.path.getsize(p) > 0 for p in paths)
