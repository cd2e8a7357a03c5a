"""Inpainting: partial convolutions, the losses, RePaint on an exact denoiser, fills, the CLI."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.config import ConfigError
from genjax.diffusion import karras_sigmas, make_gaussian_mixture_denoiser, sample_ddpm
from genjax.diffusion.samplers import repaint_nfe, repaint_schedule, sample_repaint
from genjax.methods import inpaint
from genjax.models.pconv import PartialConv2D, PConvUNet


def _pconv_numpy(x, m, kernel, bias, stride):
  """Liu et al. (2018) eq. 1-2 window by window: SAME padding, padded pixels known zeros."""
  k, (b, h, w, _) = kernel.shape[0], x.shape
  ho, wo = -(-h // stride), -(-w // stride)
  ph, pw = max((ho - 1) * stride + k - h, 0), max((wo - 1) * stride + k - w, 0)
  pads = ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
  xp = np.pad(x * m[..., None], pads + ((0, 0),))
  mp = np.pad(m, pads, constant_values=1)
  out, new_m = np.zeros((b, ho, wo, kernel.shape[-1])), np.zeros((b, ho, wo))
  for n in range(b):
    for i in range(ho):
      for j in range(wo):
        win = xp[n, i * stride:i * stride + k, j * stride:j * stride + k]
        total = mp[n, i * stride:i * stride + k, j * stride:j * stride + k].sum()
        if total > 0:
          out[n, i, j] = np.einsum('hwc,hwco->o', win, kernel) * (k * k / total) + bias
          new_m[n, i, j] = 1
  return out, new_m


def _hand_made_mask():
  m = np.ones((2, 7, 7), np.float32)
  m[0, 1:6, 1:6] = 0  # A 5x5 hole: the 3x3 windows at its centre see no known pixel.
  m[1, :, 3] = 0
  m[1, 0, :] = 0
  return m


@pytest.mark.parametrize('stride', [1, 2])
def test_partial_conv_matches_numpy_with_mask_update_and_bias(stride):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 7, 7, 2)).astype(np.float32)
  m = _hand_made_mask()
  kernel = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
  bias = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
  layer = PartialConv2D(4, (3, 3), (stride, stride))
  params = {'params': {'conv': {'kernel': kernel}, 'bias': bias}}
  out, new_m = layer.apply(params, x, m[..., None])
  want, want_m = _pconv_numpy(x, m, kernel, bias, stride)
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(new_m[..., 0], want_m)
  if stride == 1:  # Windows without a known pixel give 0 (not the bias) and a hole.
    assert want_m[0, 3, 3] == 0 and np.all(np.asarray(out)[0, 3, 3] == 0)
    # Re-normalisation: a window with 3 known pixels of 9 is scaled by 3 before the bias.
    win = (x[0] * m[0, ..., None])[0:3, 0:3]
    np.testing.assert_allclose(out[0, 1, 1], np.einsum('hwc,hwco->o', win, kernel) * 9 / 5
                               + bias, rtol=1e-5)


def test_partial_conv_with_an_all_ones_mask_is_the_ordinary_conv():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 9, 8, 3)).astype(np.float32)
  layer = PartialConv2D(5, (3, 3), (2, 2))
  params = layer.init(jax.random.key(0), x, jnp.ones((2, 9, 8, 1)))
  params = jax.tree.map(lambda p: p + 0.1, params)  # A nonzero bias.
  out, new_m = layer.apply(params, x, jnp.ones((2, 9, 8, 1)))
  p = params['params']
  ref = jax.lax.conv_general_dilated(x, p['conv']['kernel'], (2, 2), 'SAME',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + p['bias']
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
  assert np.all(np.asarray(new_m) == 1)


@pytest.mark.parametrize('arch', ['ae', 'pconv'])
def test_networks_keep_the_image_size_and_fill_pastes_known_pixels(arch):
  spec = inpaint.InpaintSpec(arch=arch, channels=(4,), kernel_sizes=(3,), feature_net=None)
  x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (3, 14, 14, 1)), jnp.float32)
  params = spec.network.init(jax.random.key(0), x, jnp.ones((3, 14, 14, 1)))['params']
  m = np.ones((3, 14, 14), np.float32)
  m[1, 3:10, 4:11] = 0
  m[2] = 0
  filled = np.asarray(inpaint.fill(spec, params, x, m))
  assert filled.shape == x.shape
  np.testing.assert_array_equal(filled[0], x[0])  # All known: the input, exactly.
  np.testing.assert_array_equal(filled[1][m[1] > 0], np.asarray(x[1])[m[1] > 0])
  from genjax.data.masks import MaskError
  with pytest.raises(MaskError, match=r'values \[0.5\]'):
    inpaint.fill(spec, params, x, m * 0.5)
  with pytest.raises(MaskError, match=r'\(3, 28, 28\)'):
    inpaint.fill(spec, params, x, np.ones((3, 28, 28)))


def test_pconv_tanh_output_is_tanh_of_the_linear_one():
  x = jnp.asarray(np.random.default_rng(3).uniform(-1, 1, (2, 14, 14, 1)), jnp.float32)
  m = jnp.ones((2, 14, 14, 1)).at[:, 4:9].set(0.0)
  linear = inpaint.InpaintSpec(channels=(4,), kernel_sizes=(3,), feature_net=None)
  tanh = inpaint.InpaintSpec(channels=(4,), kernel_sizes=(3,), feature_net=None, output='tanh')
  params = linear.network.init(jax.random.key(0), x, m)['params']
  params = jax.tree.map(lambda p: p * 8.0, params)  # Outputs well outside [-1, 1].
  raw = np.asarray(inpaint.predict(linear, params, x, m))
  assert np.abs(raw).max() > 1.5
  np.testing.assert_allclose(inpaint.predict(tanh, params, x, m), np.tanh(raw), rtol=1e-5,
                             atol=1e-6)
  clip = inpaint.InpaintSpec(channels=(4,), kernel_sizes=(3,), feature_net=None, output='clip')
  np.testing.assert_array_equal(inpaint.predict(clip, params, x, m), np.clip(raw, -1, 1))
  with pytest.raises(ConfigError, match="inpaint.output='sigmoid'"):
    inpaint.InpaintSpec(output='sigmoid')


def test_pconv_clip_output_costs_nothing_beyond_a_bound_it_overshoots():
  """output='clip': an L1 loss has zero gradient at pixels predicted past the bound their
  truth sits on (background at -1 predicted below -1), and a gradient (straight through the
  clip) where the truth is inside the range, even past the bound: no dead network."""
  x = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (1, 8, 8, 1)), jnp.float32)
  m = jnp.ones((1, 8, 8, 1)).at[:, 2:6].set(0.0)
  spec = inpaint.InpaintSpec(channels=(4,), kernel_sizes=(3,), feature_net=None, output='clip')
  params = spec.network.init(jax.random.key(1), x, m)['params']
  params = jax.tree.map(lambda p: p * 8.0, params)
  raw = np.asarray(inpaint.InpaintSpec(channels=(4,), kernel_sizes=(3,), feature_net=None)
                   .network.apply({'params': params}, x * m, m))
  below = raw < -1.0
  assert below.any() and (~below).any()
  target = jnp.full_like(x, -1.0)
  only_below = jax.grad(lambda p: jnp.abs(inpaint.predict(spec, p, x, m) - target)[below].sum())(
      params)
  assert all(np.all(g == 0) for g in jax.tree.leaves(only_below))
  inside = jax.grad(lambda p: jnp.abs(inpaint.predict(spec, p, x, m) - 0.5)[below].sum())(params)
  assert any(np.any(g != 0) for g in jax.tree.leaves(inside))


def test_loss_terms_against_closed_forms():
  spec = inpaint.InpaintSpec(feature_net=None)
  images = jnp.zeros((1, 4, 4, 1))
  masks = jnp.ones((1, 4, 4, 1)).at[0, 0, 0, 0].set(0.0)
  pred = jnp.full((1, 4, 4, 1), 0.5)
  t = inpaint.loss_terms(spec, None, images, masks, pred)
  np.testing.assert_allclose(t['valid'], 15 * 0.5 / 16)
  np.testing.assert_allclose(t['hole'], 0.5 / 16)
  # Composite: 0.5 at (0, 0) only; P = rows/cols 0-1, so two differences of 0.5 inside P.
  np.testing.assert_allclose(t['tv'], 2 * 0.5 / 16)
  np.testing.assert_allclose(t['loss'], t['valid'] + 6 * t['hole'] + 0.1 * t['tv'])
  features = inpaint.make_feature_fn('classifier')
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 28, 28, 1)), jnp.float32)
  m = jnp.ones_like(x).at[:, 10:20].set(0.0)
  terms = jax.jit(lambda p: inpaint.loss_terms(inpaint.InpaintSpec(), features, x, m, p))
  perfect = terms(x)  # A perfect prediction costs nothing but the truth's own roughness (TV).
  assert all(float(perfect[k]) == 0 for k in ('valid', 'hole', 'perceptual', 'style'))
  worse = terms(x.at[:, 12:18].set(0.0))
  assert worse['perceptual'] > 0 and worse['style'] > 0 and worse['valid'] == 0


def test_vgg_features_read_a_weights_file_or_fall_back_to_random_weights(tmp_path):
  from genjax.models import vgg

  x = jnp.asarray(np.random.default_rng(5).uniform(-1, 1, (1, 16, 16, 3)), jnp.float32)
  random_maps = inpaint.make_feature_fn('vgg')(x)
  assert [m.shape for m in random_maps] == [(1, 8, 8, 64), (1, 4, 4, 128), (1, 2, 2, 256)]
  vgg.save_weights(str(tmp_path / 'vgg19.npz'), vgg.random_params(7)['params'], 'vgg19', 'torch')
  from_file = inpaint.make_feature_fn('vgg', str(tmp_path / 'vgg19.npz'))(x)
  by_hand = vgg.network('vgg19').apply(vgg.random_params(7), vgg.preprocess((x + 1) / 2, 'torch'),
                                       ('block1_pool', 'block2_pool', 'block3_pool'))
  np.testing.assert_allclose(from_file[2], by_hand['block3_pool'], rtol=1e-5, atol=1e-5)
  assert not np.allclose(from_file[2], random_maps[2])


def test_spec_refuses_bad_values_naming_the_key():
  with pytest.raises(ConfigError, match='inpaint.arch'):
    inpaint.InpaintSpec(arch='unet')
  with pytest.raises(ConfigError, match='kernel_sizes'):
    inpaint.InpaintSpec(channels=(8, 16, 32), kernel_sizes=(3, 3))
  with pytest.raises(ConfigError, match="'vgg'"):
    inpaint.InpaintSpec(image_shape=(32, 32, 3))
  with pytest.raises(ConfigError, match=r'crop_size=40 .* side 32 \(images are 32x48\)'):
    inpaint.InpaintSpec(feature_net=None, crop_size=40, image_shape=(32, 48, 1))


def test_training_on_crops_draws_masks_and_crops_at_the_crop_size(monkeypatch):
  import optax

  from genjax.methods.api import StateSpec

  spec = inpaint.InpaintSpec(channels=(4,), kernel_sizes=(3,), feature_net=None, crop_size=12,
                             mask_bank_size=8, image_shape=(20, 24, 1))
  assert inpaint.training_masks(spec, 0).shape == (8, 12, 12)
  images = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (2, 20, 24, 1)), jnp.float32)
  state = inpaint.init(spec, StateSpec(tx=optax.sgd(0.1)), jax.random.key(0),
                       {'image': images[:, :12, :12]})
  seen = []  # The images the loss sees: crops of the batch, of the crop size.
  real_loss_terms = inpaint.loss_terms

  def spy(spec_, feature_fn, x, masks, pred):
    seen.append((x, masks))
    return real_loss_terms(spec_, feature_fn, x, masks, pred)
  monkeypatch.setattr(inpaint, 'loss_terms', spy)
  inpaint.train_step(spec, None, 0, state, {'image': images}, jax.random.key(3))
  x, masks = seen[0]
  assert x.shape == (2, 12, 12, 1) and masks.shape == (2, 12, 12, 1)
  for crop, image in zip(np.asarray(x), np.asarray(images)):  # Each crop is a window of its image.
    assert any(np.array_equal(crop, image[t:t + 12, l:l + 12])
               for t in range(9) for l in range(13))


def test_biharmonic_keeps_known_pixels_and_fills_smoothly():
  yy, xx = np.mgrid[0:16, 0:16] / 15.0
  ramp = (yy + xx - 1.0)[None, ..., None].astype(np.float32)  # Harmonic: filled exactly.
  m = np.ones((1, 16, 16), np.float32)
  m[0, 4:10, 5:12] = 0
  out = inpaint.biharmonic_fill(ramp, m)
  np.testing.assert_allclose(out, ramp, atol=1e-4)
  np.testing.assert_array_equal(inpaint.biharmonic_fill(ramp, np.ones_like(m)), ramp)


def test_repaint_schedule_is_the_papers():
  assert repaint_schedule(5, 2, 1).tolist() == [0, 1, 2, 3, 4, 5]
  levels = repaint_schedule(20, 5, 3)
  assert levels[0] == 0 and levels[-1] == 20 and set(np.abs(np.diff(levels))) == {1}
  # Jumps at t = 0, 5, 10 (< n - j = 15), twice each: 3 * 2 * 5 extra moves each way.
  assert len(levels) - 1 == 20 + 2 * 30 and repaint_nfe(20, 5, 3) == 20 + 30


_W, _MEANS, _STDS = [0.5, 0.5], [[-1.0, -1.0], [1.0, 1.0]], [[0.7, 0.7], [0.7, 0.7]]


def _repaint_mixture(y1, mask, jump_length, jump_n_sample, n=40, batch=2000):
  d = make_gaussian_mixture_denoiser(jnp.array(_W), jnp.array(_MEANS), jnp.array(_STDS))
  sigmas = karras_sigmas(n, sigma_min=0.01, sigma_max=20.0)
  x = sigmas[0] * jax.random.normal(jax.random.key(0), (batch, 2))
  known = jnp.tile(jnp.array([[y1, 0.0]]), (batch, 1))
  run = jax.jit(lambda x: sample_repaint(d, x, sigmas, rng=jax.random.key(1), known=known,
                                         mask=jnp.asarray(mask), jump_length=jump_length,
                                         jump_n_sample=jump_n_sample))
  return np.asarray(run(x))


def test_repaint_samples_the_conditional_of_a_gaussian_mixture():
  y1 = 0.5
  lik = np.array(_W) * np.exp(-0.5 * ((y1 - np.array(_MEANS)[:, 0]) / 0.7) ** 2)
  r = lik / lik.sum()  # p(component | x1 = y1): x2 | x1 is the mixture with these weights.
  mean = float(r @ np.array(_MEANS)[:, 1])
  std = float(np.sqrt(r @ (0.49 + np.array(_MEANS)[:, 1] ** 2) - mean ** 2))
  mask = np.array([1.0, 0.0])
  out = _repaint_mixture(y1, mask, jump_length=5, jump_n_sample=30)
  assert np.all(out[:, 0] == y1)  # Known coordinates come back exactly.
  assert abs(out[:, 1].mean() - mean) < 0.1 and abs(out[:, 1].std() - std) < 0.1
  # Without resampling the hole ignores most of what is known (the paper's motivation).
  plain = _repaint_mixture(y1, mask, jump_length=5, jump_n_sample=1)
  assert abs(plain[:, 1].mean() - mean) > 0.3


def test_repaint_with_an_all_hole_mask_is_unconditional_ddpm():
  n = 30
  out = _repaint_mixture(0.0, np.zeros(2), jump_length=1, jump_n_sample=1, n=n)
  d = make_gaussian_mixture_denoiser(jnp.array(_W), jnp.array(_MEANS), jnp.array(_STDS))
  sigmas = karras_sigmas(n, sigma_min=0.01, sigma_max=20.0)
  ddpm = np.asarray(sample_ddpm(d, sigmas[0] * jax.random.normal(jax.random.key(2), (2000, 2)),
                                sigmas, rng=jax.random.key(3)))
  np.testing.assert_allclose(out.mean(0), ddpm.mean(0), atol=0.06)
  np.testing.assert_allclose(out.std(0), ddpm.std(0), atol=0.04)
  np.testing.assert_allclose(out.std(0), np.sqrt(0.49 + 1.0), atol=0.12)  # The prior's.


# -- The command line's pieces (the verb end to end: experiments/inpainting/README.md). --


def test_cli_fills_a_batch_keeping_known_bytes_and_refuses_bad_masks(tmp_path, load):
  import types

  from PIL import Image

  from genjax.data.masks import MaskError
  from genjax.tools import inpaint as tool

  images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
  masks = np.ones((3, 28, 28), np.uint8)
  masks[1, 4:20, 4:20] = 0
  masks[2] = 0
  np.savez(tmp_path / 'x.npz', images=images)
  np.savez(tmp_path / 'm.npz', masks=masks)
  x, m = tool.read_batch(str(tmp_path / 'x.npz'), str(tmp_path / 'm.npz'), (28, 28, 1))
  config = load('pconv_mnist.py:smoke')
  spec = inpaint.InpaintSpec(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in config.inpaint.to_dict().items()})
  params = spec.network.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                             jnp.ones((1, 28, 28, 1)))['params']
  trained = types.SimpleNamespace(config=config, state=types.SimpleNamespace(eval_params=params))
  out = tool.fill_uint8(trained, x, m, seed=0)
  assert out.dtype == np.uint8 and out.shape == images.shape
  np.testing.assert_array_equal(out[0], images[0])  # All known: exactly the input's bytes.
  np.testing.assert_array_equal(out[1][masks[1] > 0], images[1][masks[1] > 0])
  assert not np.array_equal(out[1], images[1])
  np.savez(tmp_path / 'm2.npz', masks=masks[:2])
  with pytest.raises(MaskError, match=r'\(2, 28, 28\).*\(3, 28, 28\)'):
    tool.read_batch(str(tmp_path / 'x.npz'), str(tmp_path / 'm2.npz'), (28, 28, 1))
  Image.fromarray(np.full((28, 28), 7, np.uint8)).save(tmp_path / 'bad.png')
  with pytest.raises(MaskError, match=r'values \[7\]'):
    tool.read_mask(str(tmp_path / 'bad.png'), (28, 28, 1), 0)
  Image.fromarray(np.full((28, 28), 255, np.uint8)).save(tmp_path / 'white.png')
  assert np.all(tool.read_mask(str(tmp_path / 'white.png'), (28, 28, 1), 0) == 1)
  drawn = tool.read_mask('random:0.25', (28, 28, 1), 0)
  assert (drawn == 0).sum() == round(0.25 * 784)
  Image.fromarray(np.zeros((20, 28), np.uint8)).save(tmp_path / 'small.png')
  with pytest.raises(ValueError, match='20x28'):
    tool.read_image(str(tmp_path / 'small.png'), (28, 28, 1))
