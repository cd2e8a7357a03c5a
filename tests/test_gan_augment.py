"""DiffAugment: each operation against what it must do, its gradient, and its use in a GAN step."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO
from genjax.config import ConfigError, load_config
from genjax.methods import gan
from genjax.methods.gan import augment


def _dots(n: int, side: int = 32) -> jax.Array:
  """n images on background -1, each with one +1 pixel at the centre: [n, side, side, 1]."""
  return jnp.full((n, side, side, 1), -1.0).at[:, side // 2, side // 2, 0].set(1.0)


def test_translation_moves_content_by_at_most_an_eighth_and_fills_with_background():
  x = _dots(64)
  y = np.asarray(augment.translation(x, jax.random.key(0)))
  assert y.shape == x.shape
  shifts = set()
  for img in y[..., 0]:
    (r,), (c,) = np.nonzero(img == 1.0)  # The dot survives, once, and nothing else changes.
    assert np.all(np.delete(img.ravel(), r * 32 + c) == -1.0)
    shifts.add((r - 16, c - 16))
  assert max(max(abs(a), abs(b)) for a, b in shifts) == 4  # ratio 1/8 of 32.
  assert len(shifts) > 20  # Per-sample shifts, not one per batch.
  # A corner pixel shifted inwards leaves background (-1) behind, not zeros.
  corner = jnp.zeros((1, 8, 8, 1)).at[0, 0, 0, 0].set(5.0)
  moved = np.asarray(augment.translation(corner, jax.random.key(3), ratio=0.5, fill=-1.0))
  assert np.sum(moved == 5.0) <= 1 and np.all(np.isin(moved, [5.0, 0.0, -1.0]))


def test_cutout_zeroes_one_square_of_half_the_side():
  x = jnp.ones((200, 32, 32, 1))
  y = np.asarray(augment.cutout(x, jax.random.key(1)))[..., 0]
  for img in y:
    rows, cols = np.nonzero(img == 0.0)
    assert set(np.unique(img)) <= {0.0, 1.0}
    h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert len(rows) == h * w and h <= 16 and w <= 16  # One axis-aligned rectangle, clipped at edges.
  full = [img for img in y if np.sum(img == 0) == 256]  # Squares away from the edges: 16x16.
  assert len(full) > 40


def test_color_is_per_sample_affine_and_saturation_is_a_no_op_on_grayscale():
  x = jax.random.uniform(jax.random.key(2), (6, 8, 8, 1), minval=-1, maxval=1)
  y = augment.color(x, jax.random.key(4))
  for xi, yi in zip(np.asarray(x).reshape(6, -1), np.asarray(y).reshape(6, -1)):
    slope, intercept = np.polyfit(xi, yi, 1)
    np.testing.assert_allclose(yi, slope * xi + intercept, atol=1e-5)
    assert 0.5 - 1e-5 <= slope <= 1.5 + 1e-5  # Contrast only: saturation cancels for C = 1.


def test_policy_parsing_identity_and_gradients():
  assert augment.parse_policy('') == ()
  assert augment.parse_policy(' translation, cutout ') == ('translation', 'cutout')
  with pytest.raises(ValueError, match="unknown \\['flip'\\].*accepted"):
    augment.parse_policy('translation,flip')
  x = jax.random.normal(jax.random.key(5), (4, 16, 16, 1))
  np.testing.assert_array_equal(augment.diff_augment(x, jax.random.key(0), ()), x)
  policy = ('translation', 'cutout', 'color')
  same = augment.diff_augment(x, jax.random.key(7), policy)
  np.testing.assert_array_equal(same, augment.diff_augment(x, jax.random.key(7), policy))
  grad = jax.grad(lambda v: jnp.sum(augment.diff_augment(v, jax.random.key(7), policy) ** 2))(x)
  assert np.all(np.isfinite(grad)) and float(jnp.sum(jnp.abs(grad))) > 0  # G learns through it.


def test_a_gan_step_with_diff_augment_differs_from_one_without():
  config = load_config(os.path.join(REPO, 'configs', 'dcgan_mnist.py:smoke'))
  config.gan.gen_channels, config.gan.disc_channels = (8, 4), (4, 8)
  batch = {'image': jax.random.uniform(jax.random.key(0), (8, 16, 16, 1), minval=-1, maxval=1),
           'label': jnp.zeros(8, jnp.int32)}
  d_params = []
  for policy in ('', 'translation,cutout'):
    config.gan.diff_augment = policy
    method = gan.make(config, (16, 16, 1))
    state = method.init(jax.random.key(1), batch)
    state, metrics = jax.jit(method.train_step)(state, batch, jax.random.key(2))
    assert np.isfinite(float(metrics['loss']))
    d_params.append(state.params['discriminator'])
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), *d_params))
  assert any(moved)  # The policy reached D's inputs.
  config.gan.diff_augment = 'zoom'
  with pytest.raises(ConfigError, match=r"config\.gan\.diff_augment='zoom'"):
    gan.make(config, (16, 16, 1))
