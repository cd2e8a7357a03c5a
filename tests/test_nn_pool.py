"""genjax.nn.pool.max_pool equals flax's max_pool (stride = window, SAME or VALID), values and
gradients."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nn.pool import max_pool


@pytest.mark.parametrize('padding', ['SAME', 'VALID'])
@pytest.mark.parametrize('shape,window', [((3, 28, 28, 5), 2), ((2, 7, 7, 4), 2),
                                          ((2, 9, 6, 3), 3), ((1, 5, 8, 2), 1)])
def test_max_pool_equals_flax_in_values_and_gradients(shape, window, padding):
  x = jax.random.normal(jax.random.key(0), shape)  # Continuous: no ties within a tile.
  ref = lambda v: nn.max_pool(v, (window, window), strides=(window, window), padding=padding)
  ours = lambda v: max_pool(v, window, padding)
  np.testing.assert_array_equal(ours(x), ref(x))
  ct = jax.random.normal(jax.random.key(1), ref(x).shape)
  np.testing.assert_array_equal(jax.vjp(ours, x)[1](ct)[0], jax.vjp(ref, x)[1](ct)[0])


def test_max_pool_after_relu_has_flax_gradients_despite_tied_zeros():
  x = jax.random.normal(jax.random.key(2), (2, 14, 14, 8))
  loss = lambda pool: lambda v: jnp.sum(pool(jax.nn.relu(v)) ** 2)
  np.testing.assert_allclose(
      jax.grad(loss(max_pool))(x),
      jax.grad(loss(lambda v: nn.max_pool(v, (2, 2), strides=(2, 2), padding='SAME')))(x))


def test_max_pool_rejects_bad_input():
  with pytest.raises(ValueError, match=r'\[B, H, W, C\]'):
    max_pool(jnp.zeros((4, 4, 1)))
  with pytest.raises(ValueError, match='window must be >= 1'):
    max_pool(jnp.zeros((1, 4, 4, 1)), 0)
  with pytest.raises(ValueError, match="'SAME' or 'VALID', got 'FULL'"):
    max_pool(jnp.zeros((1, 4, 4, 1)), 2, 'FULL')


def test_max_pool_splits_the_gradient_of_tied_maxima():
  # A 2x2 tile of four equal values: each gets a quarter; a 3x3 tile's shares sum to one.
  g2 = jax.grad(lambda v: jnp.sum(max_pool(v, 2)))(jnp.ones((1, 2, 2, 1)))
  np.testing.assert_array_equal(g2, np.full((1, 2, 2, 1), 0.25))
  g3 = jax.grad(lambda v: jnp.sum(max_pool(v, 3)))(jnp.ones((1, 3, 3, 1)))
  np.testing.assert_allclose(float(jnp.sum(g3)), 1.0)
  assert float(jnp.min(g3)) > 0.0
