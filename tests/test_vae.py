"""VAE family: the seed's architecture, the ELBO's terms against closed forms, IWAE, sampling."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax import config as config_lib
from genjax.methods import sampling
from genjax.methods import vae as vae_method
from genjax.methods.api import EvalContext, StateSpec
from genjax.models.vae import VAE


def test_seed_architecture_shapes_and_parameter_count():
  model = VAE(image_shape=(28, 28, 1), latent_dim=32)
  x = jnp.zeros((2, 28, 28, 1))
  params = model.init(jax.random.key(0), x, jax.random.key(1))['params']
  out, mean, logvar, z = model.apply({'params': params}, x, jax.random.key(1))
  assert out.shape == (2, 28, 28, 1) and mean.shape == logvar.shape == z.shape == (2, 32)
  # Keras' count for the seed: encoder conv 3x3x1x32, 3x3x32x64, dense 3136->256, two heads
  # 256->32; decoder dense 32->3136, convT 3x3x64x64, 3x3x64x32, 3x3x32x1 (+ biases).
  expected = (9 * 32 + 32) + (9 * 32 * 64 + 64) + (3136 * 256 + 256) + 2 * (256 * 32 + 32) + (
      32 * 3136 + 3136) + (9 * 64 * 64 + 64) + (9 * 64 * 32 + 32) + (9 * 32 + 1)
  assert sum(p.size for p in jax.tree.leaves(params)) == expected == 997_505


def test_gaussian_kl_closed_form_and_monte_carlo():
  assert float(vae_method.gaussian_kl(jnp.zeros((1, 4)), jnp.zeros((1, 4)))[0]) == 0.0
  mean, logvar = jnp.array([[0.5, -1.0]]), jnp.array([[np.log(0.3), np.log(2.0)]])
  z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(jax.random.key(0), (400_000, 2))
  log_q = -0.5 * jnp.sum((z - mean)**2 / jnp.exp(logvar) + logvar + np.log(2 * np.pi), -1)
  log_p = -0.5 * jnp.sum(z**2 + np.log(2 * np.pi), -1)
  np.testing.assert_allclose(vae_method.gaussian_kl(mean, logvar)[0], jnp.mean(log_q - log_p),
                             rtol=1e-2)


def test_dynamic_binarization_keeps_the_grey_level_in_expectation():
  grey = jnp.full((20_000, 1, 1, 1), 0.4)  # Pixel value 0.4 in [-1, 1]: p(on) = 0.7.
  binary = vae_method.binarize(grey, jax.random.key(0))
  assert set(np.unique(binary)) == {-1.0, 1.0}
  np.testing.assert_allclose(np.mean(binary == 1.0), 0.7, atol=0.01)


def test_bernoulli_likelihood_of_certain_logits():
  x = jnp.array([[[[1.0], [-1.0]]]])  # one on, one off pixel
  ll = vae_method.log_likelihood(x, jnp.array([[[[30.0], [-30.0]]]]), 'bernoulli', 0.1)
  np.testing.assert_allclose(ll, [0.0], atol=1e-6)
  ll = vae_method.log_likelihood(x, jnp.zeros_like(x), 'bernoulli', 0.1)
  np.testing.assert_allclose(ll, [2 * np.log(0.5)], rtol=1e-6)


def test_spec_refuses_an_unknown_likelihood_naming_its_key(load):
  with pytest.raises(config_lib.ConfigError, match=r"config\.vae\.likelihood='poisson'.*bernoulli"):
    vae_method.VAESpec(likelihood='poisson')
  config = load('vae_mnist.py:smoke', vae__likelihood='poisson')
  with pytest.raises(config_lib.ConfigError, match=r'config\.vae\.likelihood'):
    vae_method.make(config, (28, 28, 1))


def test_spec_builds_the_network_for_the_data_shape():
  spec = vae_method.VAESpec(channels=(32, 64), latent_dim=8, conditional=True,
                            image_shape=(32, 32, 3))
  assert spec.network is spec.network  # Built once per spec.
  assert spec.network.image_shape == (32, 32, 3) and spec.network.num_classes == 10
  assert spec.network.dec_channels == (64, 32)
  assert vae_method.VAESpec().network.num_classes == 0  # Unconditional: no labels.


def test_train_step_is_one_gradient_step_on_the_loss_of_a_spec():
  """Module-level functions of a spec alone: train_step binarizes with the first half of its
  key, draws z with the second, and steps along the gradient of loss_fn."""
  spec = vae_method.VAESpec(channels=(8, 16), latent_dim=4, hidden_dim=16, beta=2.0)
  lr = 0.1
  batch = {'image': jax.random.uniform(jax.random.key(3), (4, 28, 28, 1), minval=-1.0),
           'label': jnp.zeros((4,), jnp.int32)}
  state = vae_method.init(spec, StateSpec(tx=optax.sgd(lr)), jax.random.key(0), batch)
  rng = jax.random.key(5)
  new_state, metrics = vae_method.train_step(spec, state, batch, rng)

  bin_rng, z_rng = jax.random.split(rng)
  x = vae_method.binarize(batch['image'], bin_rng)
  (loss, (ll, kl)), grads = jax.value_and_grad(
      lambda p: vae_method.loss_fn(spec, p, x, None, z_rng), has_aux=True)(state.params)
  assert metrics['loss'] == loss and metrics['kl'] == jnp.mean(kl)
  np.testing.assert_allclose(loss, jnp.mean(-ll) + spec.beta * jnp.mean(kl), rtol=1e-5)
  np.testing.assert_allclose(metrics['elbo'], jnp.mean(ll - kl), rtol=1e-6)
  expected = jax.tree.map(lambda p, g: p - lr * g, state.params, grads)
  for a, b in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_method_reports_its_label_classes(load):
  assert _method(load).num_classes == 0
  assert _method(load, vae__conditional=True).num_classes == 10


def _method(load, **overrides):
  return vae_method.make(load('vae_mnist.py:smoke', **overrides), (28, 28, 1))


def _state(method):
  batch = {'image': jnp.zeros((1, 28, 28, 1)), 'label': jnp.zeros((1,), jnp.int32)}
  return jax.jit(method.init)(jax.random.key(0), batch)


def test_loss_is_reconstruction_plus_beta_kl(load):
  batch = {'image': jax.random.uniform(jax.random.key(3), (8, 28, 28, 1), minval=-1.0),
           'label': jnp.zeros((8,), jnp.int32)}
  metrics = {beta: jax.jit(_method(load, vae__beta=beta).train_step)(
      _state(_method(load)), batch, jax.random.key(5))[1] for beta in (1.0, 4.0)}
  for beta, m in metrics.items():
    np.testing.assert_allclose(m['loss'], m['recon_nll'] + beta * m['kl'], rtol=1e-5)
  np.testing.assert_allclose(metrics[1.0]['kl'], metrics[4.0]['kl'], rtol=1e-6)


def test_samples_use_per_sample_seeds(load):
  method = _method(load)
  state = _state(method)
  rng = jax.random.key(42)
  a = sampling.draw(method.sample, state, rng, 7, batch_size=7)
  b = sampling.draw(method.sample, state, rng, 7, batch_size=2)
  c = sampling.draw(method.sample, state, rng, 3, batch_size=1)
  # Same noise per sample; only float summation order may differ between batch shapes.
  np.testing.assert_allclose(a, b, atol=1e-5)
  np.testing.assert_allclose(a[:3], c, atol=1e-5)
  d = sampling.draw(method.sample, state, jax.random.key(43), 7)
  assert np.abs(a - d).max() > 0.1  # Another key, other samples.
  assert a.shape == (7, 28, 28, 1) and a.min() >= -1 and a.max() <= 1


def test_conditional_vae_needs_and_uses_labels(load):
  method = _method(load, vae__conditional=True)
  state = _state(method)
  keys = jax.random.split(jax.random.key(0), 4)
  with pytest.raises(ValueError, match='conditional'):
    method.sample(state, keys)
  a = method.sample(state, keys, jnp.array([0, 1, 2, 3]))
  b = method.sample(state, keys, jnp.array([9, 9, 9, 9]))
  assert not np.allclose(a, b)


def test_iwae_bound_sits_below_the_elbo(load):
  """-IWAE_k decreases with k, and at k=1 estimates the negative ELBO (100 digits)."""
  x = vae_method.binarize(jax.random.uniform(jax.random.key(1), (100, 28, 28, 1), minval=-1.0),
                          jax.random.key(2))  # Already binary: evaluation's binarization keeps it.
  ctx = EvalContext(config=load('vae_mnist.py:smoke', eval__feature_extractor=None),
                    workdir='/tmp/unused', step=0,
                    rng=jax.random.key(0), load_split=lambda split, n: {'image': np.asarray(x)})
  state = _state(_method(load))

  def evaluate(k):
    method = _method(load, vae__iwae_k=k)
    return method.evaluate(state, ctx)

  one, fifty = evaluate(1), evaluate(50)
  assert fifty['iwae_nll_nats'] < one['iwae_nll_nats']
  np.testing.assert_allclose(one['iwae_nll_nats'], one['neg_elbo_nats'], rtol=0.02)
  assert 'fid' not in one  # Sample metrics are off without a feature extractor.
