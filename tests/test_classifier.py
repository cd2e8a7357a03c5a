"""The article's CNN classifier: shapes, feature layer, augmentation, and learning."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax import config as config_lib
from genjax.methods import classifier
from genjax.methods.api import StateSpec
from genjax.methods.classifier import ClassifierSpec, random_shift
from genjax.models.classifier import CNNClassifier


def test_shapes_of_logits_features_and_feature_maps():
  model = CNNClassifier()
  x = jnp.zeros((2, 28, 28, 1))
  params = model.init(jax.random.key(0), x)['params']
  assert model.apply({'params': params}, x).shape == (2, 10)
  assert model.apply({'params': params}, x, method=CNNClassifier.features).shape == (2, 128)
  maps = model.apply({'params': params}, x, method=CNNClassifier.feature_maps)
  assert [m.shape for m in maps] == [(2, 28, 28, 32), (2, 14, 14, 64), (2, 7, 7, 128)]
  feats, logits = model.apply({'params': params}, x, method=CNNClassifier.features_and_logits)
  np.testing.assert_allclose(logits, model.apply({'params': params}, x), rtol=1e-6)
  assert feats.shape == (2, 128) and (feats >= 0).all()  # Post-ReLU features.


def test_random_shift_translates_and_fills_with_background():
  img = (-jnp.ones((1, 5, 5, 1))).at[0, 2, 2, 0].set(1.0)  # One bright pixel in the centre.
  for seed in range(20):
    out = np.asarray(random_shift(img, jax.random.key(seed), 2))[0, ..., 0]
    assert out.sum() == -23.0  # The pixel moved (never lost: shift <= 2 keeps it inside).
  assert random_shift(img, jax.random.key(0), 0) is img
  batch = jnp.tile(img, (64, 1, 1, 1))
  outs = np.asarray(random_shift(batch, jax.random.key(1), 2))[..., 0]
  positions = {tuple(np.argwhere(o == 1.0)[0]) for o in outs}
  assert len(positions) > 15  # Independent offsets per example, up to 25 positions.


def test_spec_is_checked_naming_the_key(load):
  config = load('classifier_mnist.py', classifier__conv_method='fft')
  with pytest.raises(config_lib.ConfigError, match=r"config\.classifier\.conv_method='fft'"):
    config_lib.decode(ClassifierSpec, config, 'classifier')
  with pytest.raises(config_lib.ConfigError, match=r'config\.classifier\.dropout=1\.0'):
    ClassifierSpec(dropout=1.0)


def test_conv_method_changes_the_formulation_not_the_function(load):
  """classifier.conv_method='lax' (classifier_mnist.py) against the per-layer rule (im2col for the
  widening convs): the same parameters, the same outputs and gradients, other primitives."""
  x = jax.random.normal(jax.random.key(0), (4, 28, 28, 1))
  rule = CNNClassifier()
  plain = config_lib.decode(ClassifierSpec, load('classifier_mnist.py'), 'classifier').network
  assert plain.conv_method == 'lax'
  params = rule.init(jax.random.key(1), x)['params']
  plain_params = plain.init(jax.random.key(1), x)['params']
  assert jax.tree.structure(params) == jax.tree.structure(plain_params)
  loss = lambda model: lambda p: jnp.sum(jnp.sin(model.apply({'params': p}, x)))
  (v0, g0), (v1, g1) = [jax.value_and_grad(loss(m))(params) for m in (rule, plain)]
  np.testing.assert_allclose(v1, v0, rtol=1e-4)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
  count = lambda model: str(jax.make_jaxpr(loss(model))(params)).count('conv_general_dilated')
  assert count(rule) == 0 and count(plain) > 0  # The rule's convs are matrix products here.


def test_train_step_is_one_gradient_step_on_the_loss_of_a_spec():
  """Module-level functions of a spec alone: the first half of the key shifts the images,
  the second drives dropout, and the step follows loss_fn's gradient."""
  spec = ClassifierSpec(channels=(4, 8, 8), feature_dim=8, dropout=0.5, augment_shift=2,
                        label_smoothing=0.1)
  lr = 0.1
  batch = {'image': jax.random.uniform(jax.random.key(3), (4, 28, 28, 1), minval=-1.0),
           'label': jnp.array([0, 1, 2, 3])}
  state = classifier.init(spec, StateSpec(tx=optax.sgd(lr)), jax.random.key(0), batch)
  rng = jax.random.key(5)
  new_state, metrics = classifier.train_step(spec, state, batch, rng)
  aug_rng, drop_rng = jax.random.split(rng)
  images = random_shift(batch['image'], aug_rng, spec.augment_shift)
  (loss, _), grads = jax.value_and_grad(
      lambda p: classifier.loss_fn(spec, p, images, batch['label'], drop_rng), has_aux=True)(
          state.params)
  assert metrics['loss'] == loss
  expected = jax.tree.map(lambda p, g: p - lr * g, state.params, grads)
  for a, b in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
