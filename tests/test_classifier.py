"""The article's CNN classifier: shapes, feature layer, augmentation, and learning."""
import jax
import jax.numpy as jnp
import numpy as np

from genjax.methods.classifier import make_model, random_shift
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


def test_model_name_is_checked(load):
  import pytest
  config = load('classifier_mnist.py', model__name='resnet')
  with pytest.raises(ValueError, match="model.name in \\('cnn_classifier',\\)"):
    make_model(config)


def test_conv_method_changes_the_formulation_not_the_function(load):
  """model.conv_method='lax' (classifier_mnist.py) against the per-layer rule (im2col for the
  widening convs): the same parameters, the same outputs and gradients, other primitives."""
  x = jax.random.normal(jax.random.key(0), (4, 28, 28, 1))
  rule, plain = CNNClassifier(), make_model(load('classifier_mnist.py'))
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
