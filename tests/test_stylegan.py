"""StyleGAN(2): modulated convolution, AdaIN, style mixing, truncation, w_avg, minibatch
stddev against closed forms; the method's lazy R1, per-sample seeds and labels."""
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO
from genjax.config import ConfigError, load_config
from genjax.methods import gan, sampling
from genjax.models import stylegan as sg


def test_modulated_conv_equals_per_sample_demodulated_kernels():
  x = jax.random.normal(jax.random.key(0), (3, 6, 6, 4))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 4, 5))
  styles = jax.random.uniform(jax.random.key(2), (3, 4), minval=0.2, maxval=2.0)
  out = sg.modulated_conv(x, kernel, styles, demodulate=True, eps=0.0)
  for b in range(3):  # Eq. 1: w' = s w; eq. 3: w'' = w' / sqrt(sum_{k,i} w'^2).
    w1 = kernel * styles[b][None, None, :, None]
    w2 = w1 / jnp.sqrt(jnp.sum(w1**2, axis=(0, 1, 2), keepdims=True))
    np.testing.assert_allclose(out[b], sg.conv2d(x[b:b + 1], w2)[0], rtol=1e-4, atol=1e-5)
  plain = sg.modulated_conv(x, kernel, styles, demodulate=False)
  np.testing.assert_allclose(plain[1], sg.conv2d(x[1:2], kernel * styles[1][None, None, :, None])[0],
                             rtol=1e-4, atol=1e-5)


def test_demodulation_gives_unit_variance_outputs():
  # Eq. 2: with i.i.d. unit-variance inputs, output o has std sqrt(sum_{k,i} w'_{k,i,o}^2);
  # demodulation divides by exactly that, so every output channel has unit variance.
  x = jax.random.normal(jax.random.key(0), (4, 66, 66, 16))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 16, 8)) * jax.random.uniform(
      jax.random.key(2), (1, 1, 16, 8), minval=0.1, maxval=3.0)
  styles = jax.random.uniform(jax.random.key(3), (4, 16), minval=0.1, maxval=4.0)
  interior = lambda y: np.asarray(y)[:, 1:-1, 1:-1]  # Away from the zero padding.
  var = interior(sg.modulated_conv(x, kernel, styles)).var(axis=(1, 2))  # [B, Cout]
  np.testing.assert_allclose(var.mean(), 1.0, atol=0.02)
  np.testing.assert_allclose(var, 1.0, atol=0.12)  # 4096 pixels each: sampling error ~2%.
  plain = interior(sg.modulated_conv(x, kernel, styles, demodulate=False)).var(axis=(1, 2))
  closed = np.einsum('bi,klio->bo', np.square(styles), np.square(kernel))
  np.testing.assert_allclose(plain / closed, 1.0, atol=0.12)
  assert plain.min() > 10 and plain.max() / plain.min() > 2  # Far from 1 without demodulation.


def test_adain_sets_each_channel_mean_and_std_to_the_style():
  x = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  scale, bias = jnp.array([[1.0, 2.0, 0.5], [3.0, 1.0, 1.0]]), jnp.array([[0.0, -1.0, 2.0], [1, 1, 1.0]])
  y = sg.adain(x, scale, bias, eps=0.0)
  np.testing.assert_allclose(y.mean(axis=(1, 2)), bias, atol=1e-5)
  np.testing.assert_allclose(y.std(axis=(1, 2)), scale, rtol=1e-4)


def test_style_mixing_uses_w2_from_the_crossover_layer_on_only():
  b, n, d = 4, 8, 3
  w1 = jnp.broadcast_to(jnp.arange(b, dtype=jnp.float32)[:, None, None], (b, n, d))
  w2 = -1.0 - w1
  crossover = jnp.array([0, 3, 7, 8])
  ws = sg.mix_styles(w1, w2, crossover)
  for i, c in enumerate(np.asarray(crossover)):
    np.testing.assert_array_equal(ws[i, :c], w1[i, :c])
    np.testing.assert_array_equal(ws[i, c:], w2[i, c:])
  # Through the synthesis network: w2 reaches no layer when the crossover is num_ws, and
  # changing w2 changes the image when it starts at the finest to-RGB layer only.
  net = sg.SynthesisNetwork((16, 16, 1), (8, 8, 8))
  assert sg.num_styles(3) == 6 and [s[0] for s in sg.noise_shapes((16, 16, 1))] == [4, 8, 8, 16, 16]
  noise = [jnp.zeros((2,) + s) for s in sg.noise_shapes((16, 16, 1))]
  wa, wb = jax.random.normal(jax.random.key(0), (2, 2, 6, 5))
  params = net.init(jax.random.key(1), wa, noise)
  img = lambda ws: net.apply(params, ws, noise)
  np.testing.assert_array_equal(img(sg.mix_styles(wa, wb, jnp.full(2, 6))), img(wa))
  last = img(sg.mix_styles(wa, wb, jnp.full(2, 5)))
  assert float(jnp.max(jnp.abs(last - img(wa)))) > 1e-4
  np.testing.assert_allclose(last, img(wa.at[:, 5].set(wb[:, 5])), rtol=1e-6)


def test_truncation_endpoints_are_exact():
  w = jax.random.normal(jax.random.key(0), (5, 6, 7)) * 3
  w_avg = jax.random.normal(jax.random.key(1), (7,))
  np.testing.assert_array_equal(sg.truncate(w, w_avg, 1.0), w)
  np.testing.assert_array_equal(sg.truncate(w, w_avg, 0.0), jnp.broadcast_to(w_avg, w.shape))
  np.testing.assert_allclose(sg.truncate(w, w_avg, 0.25), w_avg + 0.25 * (w - w_avg), rtol=1e-6)


def test_w_avg_tracking_follows_its_ema_closed_form():
  beta, n = 0.9, 12
  w0 = jnp.array([[1.0, -2.0]])
  batch = jnp.array([[3.0, 1.0], [5.0, 3.0]])  # Mean (4, 2).
  w_avg = w0
  for _ in range(n):
    w_avg = sg.update_w_avg(w_avg, batch, None, beta)
  want = beta**n * w0 + (1 - beta**n) * jnp.array([[4.0, 2.0]])
  np.testing.assert_allclose(w_avg, want, rtol=1e-5)
  # Conditional: one row per class, updated with that class's mean; absent classes stay.
  rows = sg.update_w_avg(jnp.ones((3, 2)), batch, jnp.array([2, 2]), beta)
  np.testing.assert_allclose(rows, [[1, 1], [1, 1], [0.9 + 0.4, 0.9 + 0.2]], rtol=1e-6)


def test_minibatch_stddev_feature():
  x = jnp.arange(4 * 2 * 2 * 1, dtype=jnp.float32).reshape(4, 2, 2, 1)
  y = sg.minibatch_stddev(x, group_size=2)  # Groups {0, 2} and {1, 3}: members differ by 8.
  assert y.shape == (4, 2, 2, 2)
  np.testing.assert_allclose(y[..., 1], 4.0, rtol=1e-5)  # std of (a, a + 8) is 4.
  np.testing.assert_array_equal(y[..., :1], x)


def _load(spec, **overrides):
  config = load_config(os.path.join(REPO, 'configs', spec))
  for dotted, value in overrides.items():
    group, key = dotted.split('__')
    config[group][key] = value
  return config


def _tiny_method(**overrides):
  """A tiny conditional 16x16 StyleGAN2 method and a batch of 8: (config, method, batch)."""
  config = _load('cstylegan_mnist.py:smoke', gan__gen_channels=(8, 8, 8),
                 gan__disc_channels=(8, 8, 8), stylegan__mapping_layers=2,
                 gan__monitor_classifier=None, **overrides)
  batch = {'image': jax.random.uniform(jax.random.key(0), (8, 16, 16, 1), minval=-1, maxval=1),
           'label': jnp.arange(8, dtype=jnp.int32) % 10}
  return config, gan.make(config, (16, 16, 1)), batch


@pytest.fixture(scope='module')
def tiny():
  """A tiny conditional 16x16 StyleGAN2 with lazy R1 every 2 steps, and three steps of it."""
  config, method, batch = _tiny_method(gan__r1_every=2, stylegan__truncation_psi=0.5)
  states = [jax.jit(method.init)(jax.random.key(1), {k: v[:1] for k, v in batch.items()})]
  step = jax.jit(method.train_step)
  metrics = []
  for i in range(3):
    state, m = step(states[-1], batch, jax.random.key(10 + i))
    states.append(state)
    metrics.append(jax.device_get(m))
  return dict(config=config, method=method, states=states, metrics=metrics)


def test_lazy_r1_runs_every_k_steps_and_w_avg_moves(tiny):
  r1 = [float(s.extras['r1']) for s in tiny['states']]
  assert r1[0] == 0.0 and r1[1] > 0.0  # Step 0 is a regularisation step...
  assert r1[2] == r1[1]  # ...step 1 is not (the logged value is carried)...
  assert r1[3] != r1[2]  # ...and step 2 is again.
  assert all(np.isfinite(m['loss']) for m in tiny['metrics'])
  w_avg = [np.asarray(s.extras['w_avg']) for s in tiny['states']]
  assert w_avg[0].shape == (10, tiny['config'].stylegan.w_dim) and not w_avg[0].any()
  # Classes 0-7 are in every batch, 8 and 9 never: their rows stay at zero.
  assert np.abs(w_avg[3][:8]).min() > 0 and not w_avg[3][8:].any()
  assert set(tiny['states'][3].ema_params) == {'generator'}


def test_lazy_path_length_regularization():
  """pl_weight > 0: every pl_every steps G's gradient gains the path-length penalty's and the
  running mean moves; other GANs refuse config.stylegan (where it lives)."""
  # D's update first (not the config's g_first), so the penalty cannot change D's loss.
  _, method, batch = _tiny_method(gan__r1_gamma=0.0, stylegan__pl_weight=2.0,
                                  stylegan__pl_every=2, gan__g_first=False)
  plain = _tiny_method(gan__r1_gamma=0.0, gan__g_first=False)[1]
  state = jax.jit(method.init)(jax.random.key(1), {k: v[:1] for k, v in batch.items()})
  assert float(state.extras['pl_mean']) == 0.0
  step, plain_step = jax.jit(method.train_step), jax.jit(plain.train_step)
  means, norms = [], []
  for i in range(3):
    key = jax.random.key(10 + i)
    _, plain_metrics = plain_step(state, batch, key)  # The same step without the penalty.
    state, metrics = step(state, batch, key)
    means.append(float(metrics['pl_mean']))
    norms.append((float(metrics['g_grad_norm']), float(plain_metrics['g_grad_norm'])))
    assert np.isfinite(float(metrics['loss'])) and float(metrics['pl_penalty']) >= 0
    np.testing.assert_allclose(metrics['d_loss'], plain_metrics['d_loss'], rtol=1e-6)
  assert 0 < means[0] == means[1] < means[2]  # Steps 0 and 2 regularize, step 1 does not.
  assert norms[0][0] != norms[0][1] and norms[1][0] == norms[1][1]
  config = _load('stylegan_mnist.py:smoke', gan__arch='dcgan', stylegan__pl_weight=2.0)
  with pytest.raises(ConfigError, match=r"config\.stylegan is StyleGAN's group.*gan\.arch='dcgan'"):
    gan.make(config, (32, 32, 1))


def test_stylegan_samples_per_sample_seeds_and_labels(tiny):
  method, state = tiny['method'], tiny['states'][3]
  rng, labels = jax.random.key(5), np.arange(8) % 10
  one = sampling.draw(method.sample, state, rng, 8, labels, batch_size=1)
  eight = sampling.draw(method.sample, state, rng, 8, labels, batch_size=8)
  assert one.shape == (8, 16, 16, 1) and np.all(np.abs(one) <= 1)
  np.testing.assert_allclose(one, eight, rtol=1e-5, atol=1e-5)
  keys = jax.random.split(jax.random.key(3), 4)
  threes = method.sample(state, keys, jnp.full(4, 3))
  np.testing.assert_array_equal(threes, method.sample(state, keys, jnp.full(4, 3)))
  assert float(jnp.max(jnp.abs(threes - method.sample(state, keys, jnp.full(4, 7))))) > 1e-4
  with pytest.raises(ValueError, match='conditional'):
    method.sample(state, keys, None)


def test_stylegan_shapes_and_adain_mode():
  z = jnp.zeros((2, 16))
  noise = [jnp.zeros((2,) + s) for s in sg.noise_shapes((32, 32, 1))]
  for mode in sg.STYLE_MODES:
    g = sg.StyleGenerator((32, 32, 1), (16, 8, 8, 4), 16, 2, style_mode=mode)
    out = jax.eval_shape(lambda: g.init_with_output(jax.random.key(0), z, None, noise)[0])
    assert out.shape == (2, 32, 32, 1) and g.num_ws == 8
  d = sg.StyleDiscriminator((4, 8, 8, 16), num_classes=10)
  logits = jax.eval_shape(lambda: d.init_with_output(
      jax.random.key(0), jnp.zeros((2, 32, 32, 1)), jnp.array([1, 2]))[0])
  assert logits.shape == (2,)
  with pytest.raises(ValueError, match='makes 32x32 images, but the data is 16x16'):
    sg.SynthesisNetwork((16, 16, 1), (8, 8, 8, 8)).init(jax.random.key(0), jnp.zeros((1, 8, 4)),
                                                       noise)
  # The mapping network's equalized lr: unit-variance inputs give O(1) outputs at init.
  mapping, z64 = sg.MappingNetwork(64, 8), jax.random.normal(jax.random.key(1), (256, 64))
  w = mapping.apply(mapping.init(jax.random.key(0), z64), z64)
  assert 0.2 < float(jnp.std(w)) < 5.0
  assert math.isclose(float(sg.lrelu(jnp.array(-1.0))), -0.2 * math.sqrt(2), rel_tol=1e-6)


def test_packed_discriminator_step_and_projection_sums_members():
  """PacGAN (gan.d_pack=2) on a conditional StyleGAN: D reads 2-channel packs of 2 samples,
  and a pack's projection term is the sum of its members' terms."""
  _, method, batch = _tiny_method(gan__r1_every=1, gan__d_pack=2)
  state = jax.jit(method.init)(jax.random.key(1), {k: v[:2] for k, v in batch.items()})
  d_params = state.params['discriminator']
  assert d_params['from_rgb']['kernel'].shape[2] == 2  # Two grayscale members per input.
  state, metrics = jax.jit(method.train_step)(state, batch, jax.random.key(2))
  assert np.isfinite(float(metrics['loss'])) and float(state.extras['r1']) > 0

  d = sg.StyleDiscriminator((8, 8, 8), num_classes=10)
  x, _ = gan.pack_for_discriminator(batch['image'], None, 2)
  pairs = jnp.array([[1, 2], [3, 3], [0, 9], [5, 4]])
  params = d.init(jax.random.key(0), x, pairs)
  both = d.apply(params, x, pairs)
  # Projection is linear in the one-hot: f(y0, y1) = f(y0) + f(y1) - f(no label term).
  no_label = sg.StyleDiscriminator((8, 8, 8)).apply(
      {'params': {k: v for k, v in params['params'].items() if k != 'label_proj'}}, x)
  np.testing.assert_allclose(both, d.apply(params, x, pairs[:, 0]) + d.apply(params, x, pairs[:, 1])
                             - no_label, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('mode', sg.STYLE_MODES)
def test_affine_lr_mult_keeps_the_function_and_scales_only_affine_gradients(mode):
  """affine_lr_mult = m stores each style affine's parameters as (effective / m): the same
  generator at init, and d loss / d stored = m * d loss / d effective for the affines only, so
  Adam moves their effective values m times slower."""
  z = jax.random.normal(jax.random.key(0), (3, 16))
  noise = [jax.random.normal(jax.random.key(i), (3,) + s)
           for i, s in enumerate(sg.noise_shapes((32, 32, 1)))]
  make = lambda m: sg.StyleGenerator((32, 32, 1), (8, 8, 4, 4), 16, 2, style_mode=mode,
                                     affine_lr_mult=m)
  slow, plain = make(0.01), make(1.0)
  # Jitted: op by op, these U-Net-sized calls cost half a minute each on 2 cores.
  init = lambda g: jax.jit(lambda k: g.init(k, z, None, noise))(jax.random.key(1))
  p_slow, p_plain = init(slow), init(plain)
  apply = lambda g, p: jax.jit(lambda p: g.apply(p, z, None, noise))(p)
  np.testing.assert_allclose(apply(slow, p_slow), apply(plain, p_plain), rtol=1e-5, atol=1e-5)
  loss = lambda g: lambda p: jnp.sum(jnp.sin(g.apply(p, z, None, noise)))
  g_slow, g_plain = jax.jit(jax.grad(loss(slow)))(p_slow), jax.jit(jax.grad(loss(plain)))(p_plain)
  flat_slow = dict(jax.tree_util.tree_flatten_with_path(g_slow)[0])
  affines = 0
  for path, g in jax.tree_util.tree_flatten_with_path(g_plain)[0]:
    is_affine = any(getattr(k, 'key', None) == 'affine' for k in path)
    affines += is_affine
    want = g * (0.01 if is_affine else 1.0)
    np.testing.assert_allclose(flat_slow[path], want, rtol=1e-4,
                               atol=1e-5 * float(jnp.max(jnp.abs(want))))
  assert affines == 2 * (7 + 4)  # Kernel and bias of 7 styled layers' and 4 to-RGB affines.


def test_dcgan_discriminator_behind_a_stylegan_generator():
  """stylegan.discriminator='dcgan': DCGAN's D (BatchNorm) judges StyleGAN's fakes; its
  running statistics live in extras and move; R1 and the conditional projection still work."""
  config, method, batch = _tiny_method(stylegan__discriminator='dcgan', gan__r1_every=1)
  state = jax.jit(method.init)(jax.random.key(1), {k: v[:1] for k, v in batch.items()})
  assert 'head' in state.params['discriminator'] and 'bn1' in state.params['discriminator']
  stats0 = state.extras['batch_stats']
  assert stats0['generator'] == {} and 'bn1' in stats0['discriminator']
  state, metrics = jax.jit(method.train_step)(state, batch, jax.random.key(2))
  assert np.isfinite(float(metrics['loss'])) and float(metrics['r1']) > 0
  moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), stats0['discriminator'],
                       state.extras['batch_stats']['discriminator'])
  assert all(jax.tree.leaves(moved))
  bad = _load('stylegan_mnist.py:smoke', stylegan__discriminator='patchgan')
  with pytest.raises(ConfigError, match=r"config\.stylegan\.discriminator='patchgan' is not acc"):
    gan.make(bad, (32, 32, 1))


def test_tanh_output_squashes_the_linear_generator():
  """stylegan.output='tanh' is tanh of the 'linear' generator with the same parameters
  (the option adds no parameter), and any other value is refused by name."""
  z = jax.random.normal(jax.random.key(0), (3, 16))
  noise = [jax.random.normal(jax.random.key(i), (3,) + s)
           for i, s in enumerate(sg.noise_shapes((32, 32, 1)))]
  make = lambda out: sg.StyleGenerator((32, 32, 1), (8, 8, 4, 4), 16, 2, output=out)
  params = make('linear').init(jax.random.key(1), z, None, noise)
  linear = make('linear').apply(params, z, None, noise)
  squashed = make('tanh').apply(params, z, None, noise)
  np.testing.assert_allclose(squashed, jnp.tanh(linear), rtol=1e-6, atol=1e-6)
  assert float(jnp.max(jnp.abs(linear))) > 1.0 > float(jnp.max(jnp.abs(squashed)))
  bad = _load('stylegan_mnist.py:smoke', stylegan__output='sigmoid')
  with pytest.raises(ConfigError, match=r"config\.stylegan\.output='sigmoid' is not accepted"):
    gan.make(bad, (32, 32, 1))
