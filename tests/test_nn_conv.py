"""The fast ConvTranspose equals flax's, in outputs, parameters and gradients."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nn.conv import ConvTranspose


@pytest.mark.parametrize('kernel,stride,size', [((3, 3), (2, 2), 7), ((4, 4), (2, 2), 4),
                                                 ((3, 3), (1, 1), 6), ((3, 2), (2, 1), 5)])
def test_equals_flax_conv_transpose(kernel, stride, size):
  x = jax.random.normal(jax.random.key(0), (3, size, size + 1, 5))
  ours, ref = ConvTranspose(4, kernel, stride), nn.ConvTranspose(4, kernel, stride, padding='SAME')
  params = ref.init(jax.random.key(1), x)
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)
  np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)

  def loss(module):
    return lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))

  g_ours = jax.grad(loss(ours), argnums=(0, 1))(params, x)
  g_ref = jax.grad(loss(ref), argnums=(0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_same_initialization_as_flax():
  x = jnp.zeros((1, 4, 4, 3))
  a = ConvTranspose(8, (3, 3), (2, 2)).init(jax.random.key(0), x)
  b = nn.ConvTranspose(8, (3, 3), (2, 2)).init(jax.random.key(0), x)
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(u, v)
