"""GAN method, MLP GAN and DCGAN: seed parameter counts, losses and R1 against closed forms,
the alternating step and its two optimizers, per-sample seeds, labels and NaN.

configs/dcgan_celeba64.py:smoke (64x64x3, TFDS `celeb_a`) runs on TFDS mock data in
tests/test_train.py, with every other config's smoke variant."""
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import REPO
from genjax.config import ConfigError, load_config
from genjax.methods import gan, sampling
from genjax.methods.api import StateSpec
from genjax.methods.gan import d_update, g_update, inputs, losses, penalties
from genjax.methods.gan import method as gan_method
from genjax.models import gan as gan_models
from genjax.train import loop


def _count(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def _param_shapes(module, *args, **kwargs):
  return jax.eval_shape(lambda: module.init(jax.random.key(0), *args, **kwargs))


# The seed's Keras models, trainable weights by hand: Dense n_in*n_out + n_out, BatchNorm
# 2*c (gamma, beta; the moving mean/variance are not trained), Conv(T) k*k*c_in*c_out + c_out.
MLP_G_SEED = (100 * 128 + 128) + 2 * 128 + (128 * 256 + 256) + 2 * 256 + (256 * 512 + 512) \
    + 2 * 512 + (512 * 784 + 784)  # 581,520
MLP_D_SEED = (784 * 512 + 512) + (512 * 256 + 256) + (256 * 128 + 128) + (128 + 1)  # 566,273
DCGAN64_G_SEED = (100 * 4 * 4 * 1024 + 4 * 4 * 1024) + (16 * 1024 * 512 + 512) + 2 * 512 \
    + (16 * 512 * 256 + 256) + 2 * 256 + (16 * 256 * 128 + 128) + 2 * 128 + (16 * 128 * 3 + 3)
DCGAN64_D_SEED = (16 * 3 * 64 + 64) + (16 * 64 * 128 + 128) + 2 * 128 + (16 * 128 * 256 + 256) \
    + 2 * 256 + (16 * 256 * 512 + 512) + 2 * 512 + (4 * 4 * 512 + 1)
BN_AFTER_PROJECTION = 2 * 1024  # Our one addition to the seed's DCGAN generator (Radford et al.).


def test_parameter_counts_match_the_seed_architectures():
  assert (MLP_G_SEED, MLP_D_SEED) == (581_520, 566_273)
  assert (DCGAN64_G_SEED, DCGAN64_D_SEED) == (12_673_667, 2_766_529)
  z, img28, img64 = jnp.zeros((2, 100)), jnp.zeros((2, 28, 28, 1)), jnp.zeros((2, 64, 64, 3))
  g = _param_shapes(gan_models.MLPGenerator((28, 28, 1)), z)
  d = _param_shapes(gan_models.MLPDiscriminator(), img28)
  assert (_count(g['params']), _count(d['params'])) == (MLP_G_SEED, MLP_D_SEED)
  g = _param_shapes(gan_models.DCGANGenerator((64, 64, 3), (1024, 512, 256, 128)), z)
  d = _param_shapes(gan_models.DCGANDiscriminator((64, 128, 256, 512)), img64)
  assert _count(g['params']) == DCGAN64_G_SEED + BN_AFTER_PROJECTION
  assert _count(d['params']) == DCGAN64_D_SEED
  # 32x32 grayscale (configs/dcgan_mnist.py): 4x4x256 -> 8x8x128 -> 16x16x64 -> 32x32x1.
  g = _param_shapes(gan_models.DCGANGenerator((32, 32, 1), (256, 128, 64)), z)
  d = _param_shapes(gan_models.DCGANDiscriminator((64, 128, 256)), jnp.zeros((2, 32, 32, 1)))
  assert _count(g['params']) == (100 * 4096 + 4096) + 2 * 256 + (16 * 256 * 128 + 128) + 2 * 128 \
      + (16 * 128 * 64 + 64) + 2 * 64 + (16 * 64 + 1)
  assert _count(d['params']) == (16 * 64 + 64) + (16 * 64 * 128 + 128) + 2 * 128 \
      + (16 * 128 * 256 + 256) + 2 * 256 + (4 * 4 * 256 + 1)


def test_output_shapes_and_projection_head():
  z, labels = jnp.zeros((3, 100)), jnp.array([0, 4, 9])
  for g, d, shape in [
      (gan_models.MLPGenerator((28, 28, 1), num_classes=10), gan_models.MLPDiscriminator(num_classes=10),
       (28, 28, 1)),
      (gan_models.DCGANGenerator((32, 32, 1), num_classes=10),
       gan_models.DCGANDiscriminator(num_classes=10), (32, 32, 1)),
      (gan_models.DCGANGenerator((64, 64, 3), (32, 16, 8, 8)), gan_models.DCGANDiscriminator((8, 8, 8, 8)),
       (64, 64, 3))]:
    images = jax.eval_shape(lambda: g.init_with_output(jax.random.key(0), z, labels)[0])
    assert images.shape == (3, *shape)
    logits = jax.eval_shape(lambda: d.init_with_output(
        jax.random.key(0), jnp.zeros((3, *shape)), labels)[0])
    assert logits.shape == (3,)
  with pytest.raises(ValueError, match='makes 32x32 images, but the data is 28x28'):
    gan_models.DCGANGenerator((28, 28, 1)).init(jax.random.key(0), z)
  # Projection discriminator (Miyato & Koyama 2018): logit = w.phi + b + <embed(y), phi>.
  head = gan_models.ProjectionHead(num_classes=3)
  phi, y = jnp.array([[1.0, 2.0], [0.5, -1.0]]), jnp.array([2, 0])
  params = head.init(jax.random.key(1), phi, y)['params']
  emb, w, b = params['label_proj']['embedding'], params['out']['kernel'][:, 0], params['out']['bias'][0]
  np.testing.assert_allclose(head.apply({'params': params}, phi, y),
                             phi @ w + b + np.sum(emb[y] * phi, -1), rtol=1e-6)


def _softplus(x):
  return np.log1p(np.exp(x))


def test_losses_against_closed_forms():
  real, fake = jnp.array([2.0, -1.0, 0.5]), jnp.array([0.5, -3.0])
  ns = losses.LOSSES['non_saturating']
  # The seed's binary cross-entropy on probabilities sigmoid(l): -log sigmoid(l) = softplus(-l).
  bce = lambda p, t: -(t * np.log(p) + (1 - t) * np.log(1 - p))
  sig = lambda l: 1 / (1 + np.exp(-np.asarray(l)))
  np.testing.assert_allclose(ns.d_loss(real, fake), bce(sig(real), 1).mean() + bce(sig(fake), 0).mean(),
                             rtol=1e-6)
  np.testing.assert_allclose(ns.d_loss(real, fake), _softplus(-real).mean() + _softplus(fake).mean(),
                             rtol=1e-6)
  np.testing.assert_allclose(ns.g_loss(fake), bce(sig(fake), 1).mean(), rtol=1e-6)
  np.testing.assert_allclose(ns.d_loss(jnp.zeros(4), jnp.zeros(4)), 2 * math.log(2), rtol=1e-6)
  np.testing.assert_allclose(ns.display(jnp.zeros(2)), [0.5, 0.5])
  # softplus does not saturate where log(sigmoid) would in float32.
  assert np.isfinite(float(ns.g_loss(jnp.array([-200.0])))) and float(ns.g_loss(jnp.array([-200.0]))) > 199
  hinge = losses.LOSSES['hinge']
  # relu(1 - [2, -1, .5]) = [0, 2, .5]; relu(1 + [.5, -3]) = [1.5, 0].
  np.testing.assert_allclose(hinge.d_loss(real, fake), 2.5 / 3 + 1.5 / 2, rtol=1e-6)
  np.testing.assert_allclose(hinge.g_loss(fake), 1.25, rtol=1e-6)
  np.testing.assert_allclose(hinge.display(real), real)


def test_r1_penalty_is_the_squared_input_gradient_norm():
  x = jax.random.normal(jax.random.key(0), (5, 3, 3, 2))
  a = jax.random.normal(jax.random.key(1), (3, 3, 2))
  linear = lambda imgs: jnp.sum(imgs * a, axis=(1, 2, 3)) + 0.7  # grad_x D = a for every x.
  np.testing.assert_allclose(losses.r1_penalty(linear, x), np.sum(np.square(a)), rtol=1e-5)
  quadratic = lambda imgs: jnp.sum(imgs**2, axis=(1, 2, 3))  # grad_x D = 2x.
  want = np.mean(np.sum(np.square(2 * np.asarray(x)).reshape(5, -1), -1))
  np.testing.assert_allclose(losses.r1_penalty(quadratic, x), want, rtol=1e-5)


def test_path_lengths_and_penalty_closed_forms():
  # A linear "synthesis" images_n = sum_l A_l^T ws_{n,l}: J_w^T y = A_l y per layer, so the
  # length is sqrt(mean_l ||A_l y_n||^2).
  n, layers, w_dim, (h, w, c) = 3, 4, 5, (2, 3, 1)
  a = jax.random.normal(jax.random.key(0), (layers, w_dim, h * w * c))
  ws = jax.random.normal(jax.random.key(1), (n, layers, w_dim))
  y = jax.random.normal(jax.random.key(2), (n, h, w, c))
  synth = lambda v: jnp.einsum('nlw,lwp->np', v, a).reshape(n, h, w, c)
  got = losses.path_lengths(synth, ws, y)
  a_np, y_np = np.asarray(a, np.float64), np.asarray(y, np.float64).reshape(n, -1)
  want = np.sqrt(np.mean(np.sum(np.einsum('lwp,np->nlw', a_np, y_np) ** 2, -1), -1))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  with pytest.raises(ValueError, match='y has shape'):
    losses.path_lengths(synth, ws, y[:, :1])
  # a moves halfway to mean(lengths) = 2 first; the penalty is mean((l - a)^2) with a constant.
  lengths = jnp.array([1.0, 2.0, 3.0])
  penalty, new_mean = losses.path_length_penalty(lengths, jnp.float32(0.0), 0.5)
  assert float(new_mean) == 1.0 and math.isclose(float(penalty), 5 / 3, rel_tol=1e-6)
  grad = jax.grad(lambda l: losses.path_length_penalty(l, jnp.float32(0.0), 0.5)[0])(lengths)
  np.testing.assert_allclose(grad, 2 * (lengths - 1.0) / 3, rtol=1e-6)


def test_label_histogram_entropy():
  eye = jnp.eye(10)
  np.testing.assert_allclose(losses.label_histogram_entropy(eye), math.log(10), rtol=1e-6)
  assert float(losses.label_histogram_entropy(jnp.tile(eye[3], (8, 1)))) == 0.0
  two = jnp.concatenate([jnp.tile(eye[1], (3, 1)), eye[2:3]])  # 3/4 and 1/4.
  np.testing.assert_allclose(losses.label_histogram_entropy(two),
                             -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), rtol=1e-6)


def test_discriminator_optimizer_overrides(load):
  config = load('dcgan_mnist.py', gan__d_lr=1e-3, gan__d_b1=0.0)
  tx = gan.make_optimizers(gan.decode(config, (32, 32, 1)).spec, config.optim,
                           config.train.num_steps)
  grads = {'w': jnp.ones(3)}
  g_step, _ = tx.generator.update(grads, tx.generator.init(grads))
  d_step, _ = tx.discriminator.update(grads, tx.discriminator.init(grads))
  np.testing.assert_allclose(g_step['w'], -2e-4, rtol=1e-4)  # Adam's first step is -lr sign(g).
  np.testing.assert_allclose(d_step['w'], -1e-3, rtol=1e-4)


def test_specs_refuse_bad_values_and_misplaced_groups(load):
  with pytest.raises(ConfigError, match=r"config\.gan\.loss='wasserstein'"):
    gan.GanSpec(loss='wasserstein')
  with pytest.raises(ConfigError, match=r'config\.stylegan\.style_mixing_prob=1\.5'):
    gan.StyleGANSpec(style_mixing_prob=1.5)
  # config.stylegan belongs to gan.arch='stylegan' only, and StyleGAN needs it.
  with pytest.raises(ConfigError, match=r"config\.stylegan .*config\.gan\.arch='dcgan'"):
    gan.make(load('stylegan_mnist.py:smoke', gan__arch='dcgan'), (32, 32, 1))
  with pytest.raises(ConfigError, match=r"config\.gan\.arch='stylegan' needs the config\.stylegan"):
    gan.make(load('dcgan_mnist.py:smoke', gan__arch='stylegan'), (32, 32, 1))
  with pytest.raises(ConfigError, match='standing_stats_size'):
    gan.make(load('dcgan_mnist.py:smoke', gan__standing_stats_size=0, train__ema_decay=0.9),
             (32, 32, 1))


def _load(spec, **overrides):
  """Like conftest's `load` fixture, for module-scoped fixtures."""
  config = load_config(os.path.join(REPO, 'configs', spec))
  for dotted, value in overrides.items():
    group, key = dotted.split('__')
    config[group][key] = value
  return config


def _batch():
  return {'image': jax.random.uniform(jax.random.key(0), (8, 16, 16, 1), minval=-1, maxval=1),
          'label': jnp.arange(8, dtype=jnp.int32) % 10}


def _spied_step(config):
  """One step of `config`'s GAN with spying optimizers, through the module-level functions:
  (config, batch, gan, sample, state0, state1, metrics, calls, step)."""
  batch, calls = _batch(), []
  g = gan.decode(config, (16, 16, 1))
  tx = gan.make_optimizers(g.spec, config.optim, config.train.num_steps)

  def spy(name, inner):
    def update(grads, state, params=None):
      calls.append((name, jax.tree.structure(grads)))
      return inner.update(grads, state, params)
    return optax.GradientTransformation(inner.init, update)

  spied = gan.GanTx(spy('generator', tx.generator), spy('discriminator', tx.discriminator))
  state_spec = StateSpec.from_config(config, tx=spied)
  state0 = jax.jit(functools.partial(gan_method.init, g, state_spec))(
      jax.random.key(1), {k: v[:1] for k, v in batch.items()})
  step = jax.jit(functools.partial(gan_method.train_step, g))
  state1, metrics = step(state0, batch, jax.random.key(2))
  return dict(config=config, batch=batch, gan=g, sample=functools.partial(gan_method.sample, g),
              state0=state0, state1=state1, metrics=metrics, calls=calls, step=step)


def _tiny_cdcgan(**overrides):
  return _load('dcgan_mnist.py:smoke', gan__gen_channels=(8, 4), gan__disc_channels=(4, 8),
               gan__conditional=True, train__ema_decay=0.9, train__ema_warmup=False, **overrides)


@pytest.fixture(scope='module')
def stepped():
  """One D+G step of a tiny conditional 16x16 DCGAN, traced with spying optimizers."""
  return _spied_step(_tiny_cdcgan())


def test_g_first_updates_g_through_the_current_d_then_d(stepped):
  run = _spied_step(_tiny_cdcgan(gan__g_first=True))
  s0, s1 = run['state0'], run['state1']
  assert run['calls'] == [('generator', jax.tree.structure(s0.params['generator'])),
                          ('discriminator', jax.tree.structure(s0.params['discriminator']))]
  for net in ('generator', 'discriminator'):
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), s0.params[net], s1.params[net])
    assert all(jax.tree.leaves(changed)), net
  # Same initial state, batch and key: G's loss through the not-yet-updated D differs from
  # D-first's loss through the updated one.
  jax.tree.map(np.testing.assert_array_equal, s0.params, stepped['state0'].params)
  assert float(run['metrics']['g_loss']) != float(stepped['metrics']['g_loss'])
  assert np.isfinite(float(run['metrics']['loss']))


def test_one_step_updates_d_then_g_each_with_its_own_optimizer(stepped):
  s0, s1, calls = stepped['state0'], stepped['state1'], stepped['calls']
  g_struct = jax.tree.structure(s0.params['generator'])
  d_struct = jax.tree.structure(s0.params['discriminator'])
  # Traced once: D's optimizer saw D's gradients, then G's optimizer G's, once each.
  assert calls == [('discriminator', d_struct), ('generator', g_struct)]
  assert int(s1.step) == 1
  for net in ('generator', 'discriminator'):
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), s0.params[net], s1.params[net])
    assert all(jax.tree.leaves(changed)), net  # Every weight of both networks moved.
    counts = [int(x) for x in jax.tree.leaves(s1.opt_state[net]) if jnp.ndim(x) == 0]
    assert counts and set(counts) == {1}, net  # Adam's count: one update each.
  # The EMA generator follows its closed form, and only the generator has one.
  assert set(s1.ema_params) == {'generator'}
  jax.tree.map(lambda e, p0, p1: np.testing.assert_allclose(e, 0.9 * p0 + 0.1 * p1, rtol=1e-5,
                                                            atol=1e-7),
               s1.ema_params['generator'], s0.params['generator'], s1.params['generator'])
  # BatchNorm running averages moved, in extras.
  for net in ('generator', 'discriminator'):
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), s0.extras['batch_stats'][net],
                         s1.extras['batch_stats'][net])
    assert all(jax.tree.leaves(moved)), net
  m = stepped['metrics']
  assert {'loss', 'd_loss', 'g_loss', 'd_real', 'd_fake', 'g_grad_norm', 'd_grad_norm',
          'class_entropy', 'fake_label_accuracy'} <= set(m)
  np.testing.assert_allclose(m['loss'], m['d_loss'] + m['g_loss'], rtol=1e-6)
  assert 0 < float(m['d_real']) < 1 and 0 < float(m['d_fake']) < 1  # Probabilities (NS loss).
  assert 0 <= float(m['class_entropy']) <= math.log(10) + 1e-6


def test_samples_depend_on_their_own_key_only(stepped):
  sample, state = stepped['sample'], stepped['state1']
  rng, labels = jax.random.key(5), np.arange(8) % 10
  one = sampling.draw(sample, state, rng, 8, labels, batch_size=1)
  eight = sampling.draw(sample, state, rng, 8, labels, batch_size=8)
  assert one.shape == (8, 16, 16, 1) and np.all(np.abs(one) <= 1)
  np.testing.assert_allclose(one, eight, rtol=1e-5, atol=1e-6)


def test_conditional_sampling_honours_labels(stepped):
  sample, state = stepped['sample'], stepped['state1']
  keys = jax.random.split(jax.random.key(3), 4)
  threes = sample(state, keys, jnp.full(4, 3))
  np.testing.assert_array_equal(threes, sample(state, keys, jnp.full(4, 3)))
  sevens = sample(state, keys, jnp.full(4, 7))
  assert threes.shape == sevens.shape == (4, 16, 16, 1)
  # At init the DCGAN's N(0, 0.02) weights keep outputs small: compare relatively.
  assert float(jnp.max(jnp.abs(threes - sevens))) > 0.05 * float(jnp.max(jnp.abs(threes)))
  with pytest.raises(ValueError, match='conditional'):
    sample(state, keys, None)


def test_a_nan_batch_makes_the_loss_nan(stepped):
  batch = dict(stepped['batch'])
  batch['image'] = batch['image'].at[0, 0, 0, 0].set(jnp.nan)
  _, metrics = stepped['step'](stepped['state1'], batch, jax.random.key(4))
  assert np.isnan(float(metrics['loss']))


def test_non_finite_training_stops_the_loop(load, tmp_path):
  config = load('gan_mnist.py:smoke', optim__lr=1e30, train__num_steps=4)
  with pytest.raises(loop.NonFiniteLossError, match='at step'):
    loop.train(config, str(tmp_path))


def test_pack_for_discriminator_concatenates_consecutive_samples():
  images = jnp.arange(6 * 2 * 2 * 3, dtype=jnp.float32).reshape(6, 2, 2, 3)
  labels = jnp.arange(6)
  packed, packed_labels = gan.pack_for_discriminator(images, labels, 3)
  assert packed.shape == (2, 2, 2, 9)
  for p in range(2):
    for j in range(3):  # Channels [3j, 3j + 3) of pack p are sample 3p + j.
      np.testing.assert_array_equal(packed[p, ..., 3 * j:3 * j + 3], images[3 * p + j])
  np.testing.assert_array_equal(packed_labels, [[0, 1, 2], [3, 4, 5]])
  same, same_labels = gan.pack_for_discriminator(images, labels, 1)
  assert same is images and same_labels is labels
  assert gan.pack_for_discriminator(images, None, 2)[1] is None
  with pytest.raises(ValueError, match='d_pack=4 must divide the batch of 6'):
    gan.pack_for_discriminator(images, labels, 4)


def test_packed_conditional_dcgan_step():
  run = _spied_step(_tiny_cdcgan(gan__d_pack=2))
  d0 = run['state0'].params['discriminator']
  first = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(d0)
           if leaf.ndim == 4][0]
  assert first.shape[2] == 2  # The first conv reads packs of two grayscale samples.
  assert np.isfinite(float(run['metrics']['loss']))
  phi = jax.random.normal(jax.random.key(0), (3, 5))
  head = gan_models.ProjectionHead(10)
  params = head.init(jax.random.key(1), phi, jnp.zeros((3,), jnp.int32))
  pairs = jnp.array([[1, 2], [3, 3], [0, 9]])
  bias_only = phi @ params['params']['out']['kernel'][:, 0] + params['params']['out']['bias'][0]
  one_by_one = head.apply(params, phi, pairs[:, 0]) + head.apply(params, phi, pairs[:, 1])
  np.testing.assert_allclose(head.apply(params, phi, pairs), one_by_one - bias_only,
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(ConfigError, match=r'config\.gan\.d_pack=0 must be > 0'):
    gan.make(_tiny_cdcgan(gan__d_pack=0), (16, 16, 1))


def test_mode_seeking_penalty_closed_form():
  images = jnp.array([[0.0, 0.0], [1.0, 3.0], [2.0, 0.0], [1.0, 1.0]])  # Pairs (0, 2), (1, 3).
  z = jnp.array([[0.0], [0.0], [4.0], [2.0]])
  # mean |dI| = (2 + 0 + 0 + 2) / 4 = 1, mean |dz| = (4 + 2) / 2 = 3: 1 / (1/3 + eps).
  np.testing.assert_allclose(losses.mode_seeking_penalty(images, z, eps=0.0), 3.0, rtol=1e-6)
  collapsed = jnp.ones((4, 2))
  np.testing.assert_allclose(losses.mode_seeking_penalty(collapsed, z), 1e5, rtol=1e-6)
  with pytest.raises(ValueError, match='even batch'):
    losses.mode_seeking_penalty(images[:3], z[:3])


def test_mode_seeking_changes_g_loss_only(stepped):
  run = _spied_step(_tiny_cdcgan(gan__mode_seeking=1.0))
  m, ref = run['metrics'], stepped['metrics']
  assert float(m['d_loss']) == float(ref['d_loss'])  # D's update does not see the term,
  assert float(m['g_loss']) > float(ref['g_loss'])  # G's loss adds a positive penalty,
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), run['state1'].params['generator'],
                         stepped['state1'].params['generator'])
  assert any(jax.tree.leaves(changed))  # and G's update follows it.


def _spec_gan(**overrides):
  """A tiny 16x16 DCGAN from its spec alone (no config), and a state with Adam for G, SGD for D."""
  spec = gan.GanSpec(arch='dcgan', gen_channels=(8, 4), disc_channels=(4, 8), latent_dim=8,
                     r1_gamma=1.0, r1_every=1, monitor_classifier=None, **overrides)
  g = gan.Gan(spec, image_shape=(16, 16, 1))
  state_spec = StateSpec(gan.GanTx(optax.adam(1e-3), optax.sgd(0.1)))
  state = gan_method.init(g, state_spec, jax.random.key(1), {k: v[:1] for k, v in _batch().items()})
  return g, state


def test_d_then_g_updates_from_specs_are_the_step():
  """D's update, then G's through the updated D, called one by one: each is what its loss and
  optimizer say, and together they are train_step."""
  g, state = _spec_gan()
  batch, rng = _batch(), jax.random.key(2)
  step = inputs.make_step(g, batch, rng)
  fake, g_vjp, aux = g_update.fakes_with_vjp(g, state, step)
  d = d_update.update(g, state, step, fake)
  np.testing.assert_allclose(d.loss, losses.ns_d_loss(d.real_logits, d.fake_logits), rtol=1e-6)
  # D's gradient: its loss's plus gamma / 2 * r1_every (= 0.5) times R1's, at D's parameters.
  d_stats, d0 = inputs.batch_stats(state)['discriminator'], state.params['discriminator']
  loss_grads = jax.grad(lambda p: d_update.d_loss(g, p, d_stats, step, fake)[0])(d0)
  r1, r1_grads = jax.value_and_grad(lambda p: penalties.r1(g, p, d_stats, step))(d0)
  assert float(r1) > 0
  np.testing.assert_allclose(d.r1, r1, rtol=1e-5)
  jax.tree.map(lambda got, a, b: np.testing.assert_allclose(got, a + 0.5 * b, rtol=1e-5, atol=1e-6),
               d.grads, loss_grads, r1_grads)
  jax.tree.map(lambda new, old, grad: np.testing.assert_allclose(new, old - 0.1 * grad, rtol=1e-5,
                                                                 atol=1e-6),
               d.params, state.params['discriminator'], d.grads)  # SGD: -lr * grads.
  gu = g_update.update_through_updated_d(g, state, step, d, fake, g_vjp, aux)
  np.testing.assert_allclose(gu.loss, g_update.g_loss(g, d.params, d.stats, fake, step), rtol=1e-6)
  assert gu.w is None and gu.pl_penalty is None
  new_state, metrics = gan_method.train_step(g, state, batch, rng)
  np.testing.assert_allclose(metrics['d_loss'], d.loss, rtol=1e-6)
  np.testing.assert_allclose(metrics['g_loss'], gu.loss, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               new_state.params, {'generator': gu.params, 'discriminator': d.params})


def test_g_then_d_updates_from_specs_are_the_g_first_step():
  """g_first: G's update through the current D, then D's on fresh fakes of the updated G."""
  g, state = _spec_gan(g_first=True)
  batch, rng = _batch(), jax.random.key(2)
  step = inputs.make_step(g, batch, rng)
  gu = g_update.update_through_current_d(g, state, step)
  stats = inputs.batch_stats(state)
  fake = g_update.fakes(g, state.params['generator'], stats['generator'], step)[0]
  np.testing.assert_allclose(gu.loss, g_update.g_loss(g, state.params['discriminator'],
                                                      stats['discriminator'], fake, step),
                             rtol=1e-6)
  fresh = g_update.fresh_fakes(g, gu, step)
  assert float(jnp.max(jnp.abs(fresh - fake))) > 0  # New latents through the updated G.
  d = d_update.update(g, state, step, fresh)
  new_state, metrics = gan_method.train_step(g, state, batch, rng)
  np.testing.assert_allclose(metrics['g_loss'], gu.loss, rtol=1e-6)
  np.testing.assert_allclose(metrics['d_loss'], d.loss, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               new_state.params, {'generator': gu.params, 'discriminator': d.params})
