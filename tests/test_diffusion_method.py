"""The diffusion method: the DDPM U-Net, training losses, guidance, per-sample seeds, bits/dim."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.methods import diffusion, sampling
from genjax.methods.api import EvalContext
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


def _config(load, **overrides):
  base = dict(model__channels=(8, 16), model__num_res_blocks=1, model__attention_resolutions=(4,),
              eval__feature_extractor=None, sample__num_steps=4, optim__schedule='constant')
  return load('ddpm_mnist.py:smoke', **{**base, **overrides})


def _init(method, conditional=False):
  batch = {'image': jnp.zeros((1, *SHAPE)), 'label': jnp.zeros((1,), jnp.int32)}
  return method.init(jax.random.key(0), batch)


@pytest.mark.parametrize('param,weighting', [('edm', 'edm'), ('eps', 'simple'), ('v', 'min_snr')])
def test_every_parameterization_trains(load, param, weighting):
  method = diffusion.make(_config(load, method__parameterization=param,
                                  method__loss_weighting=weighting), SHAPE)
  state = _init(method)
  batch = {'image': jax.random.uniform(jax.random.key(1), (4, *SHAPE), minval=-1),
           'label': jnp.zeros((4,), jnp.int32)}
  new, metrics = jax.jit(method.train_step)(state, batch, jax.random.key(2))
  assert np.isfinite(metrics['loss']) and int(new.step) == 1
  # The zero-initialised head gets the first gradient (the rest follow from step 2).
  assert not np.allclose(new.params['head']['kernel'], state.params['head']['kernel'])


def test_bad_choices_are_refused(load):
  with pytest.raises(ValueError, match="loss_weighting='edm'"):
    diffusion.make(_config(load, method__parameterization='eps'), SHAPE)
  with pytest.raises(ValueError, match='sample.sampler'):
    diffusion.make(_config(load, sample__sampler='magic'), SHAPE)


def test_stochastic_samples_do_not_depend_on_the_batch(load):
  method = diffusion.make(_config(load, sample__sampler='euler_ancestral'), SHAPE)
  state = _init(method)
  rng = jax.random.key(3)
  a = sampling.draw(method.sample, state, rng, 5, batch_size=5)
  b = sampling.draw(method.sample, state, rng, 5, batch_size=2)
  np.testing.assert_allclose(a, b, atol=1e-5)
  assert a.shape == (5, *SHAPE)


def test_guidance_scales_one_and_zero_are_the_conditional_and_null_models(load):
  config = _config(load, model__conditional=True)
  state = _init(diffusion.make(config, SHAPE))
  # Random weights everywhere (the zero-initialised head would make every output equal).
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(5), p.shape),
                        state.params)
  denoiser = diffusion.make_denoiser_fn(config, SHAPE)
  x = jax.random.normal(jax.random.key(4), (3, *SHAPE))
  labels = jnp.array([1, 2, 3])
  plain = jax.jit(lambda l: denoiser(params, l, None)(x, 2.0))
  guided = jax.jit(lambda w: denoiser(params, labels, w)(x, 2.0))
  null = plain(jnp.full((3,), 10))
  np.testing.assert_allclose(guided(1.0), plain(labels), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(guided(0.0), null, rtol=1e-4, atol=1e-5)
  plain, guided = plain(labels), guided(3.0)
  np.testing.assert_allclose(guided, null + 3.0 * (plain - null), rtol=1e-3, atol=1e-4)


def test_sigma_ranges_follow_the_parameterization(load):
  edm = diffusion.make_sigmas_fn(_config(load))('karras', 5)
  np.testing.assert_allclose([edm[0], edm[-2], edm[-1]], [80.0, 0.002, 0.0], rtol=1e-5)
  vp = diffusion.make_sigmas_fn(_config(load, method__parameterization='eps',
                                        method__loss_weighting='simple'))('karras', 5)
  assert 150 < float(vp[0]) < 160 and 0.009 < float(vp[-2]) < 0.011  # Linear betas' range.


def test_bits_per_dim_is_reported_on_the_test_images(load):
  config = _config(load, eval__bpd_num_examples=4, method__num_timesteps=20, eval__bpd_batch_size=4,
                   eval__bpd_chunk=5)
  method = diffusion.make(config, SHAPE)
  images = np.round(np.asarray(jax.random.uniform(jax.random.key(6), (4, *SHAPE))) * 255) / 127.5 - 1
  ctx = EvalContext(config=config, workdir='/tmp/unused', step=0, rng=jax.random.key(0),
                    load_split=lambda split, n: {'image': images.astype(np.float32)})
  result = method.evaluate(_init(method), ctx)
  assert result['bits_per_dim_num_examples'] == 4 and result['bits_per_dim_timesteps'] == 20
  assert 0.0 < result['bits_per_dim'] < 50.0
  assert result['nfe'] == 4 and result['sampler'] == config.sample.sampler
