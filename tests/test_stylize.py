"""Neural style transfer: the losses against numpy, the optimisers lower the loss, the command
line refuses bad inputs in one line."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import config as config_lib
from genjax import stylize
from genjax.models import vgg
from genjax.stylize import losses
from tests.conftest import REPO
from tests import subprocesses

SIDE = 32


def _feats(seed, shape=(4, 5, 3)):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_gram_matrix_by_hand():
  f = np.zeros((1, 2, 2), np.float32)  # Two positions, two channels.
  f[0, 0] = [1.0, 2.0]
  f[0, 1] = [3.0, -1.0]
  # F^T F = [[1 + 9, 2 - 3], [2 - 3, 4 + 1]], over 2 positions.
  np.testing.assert_allclose(stylize.gram_matrix(jnp.asarray(f)), [[5.0, -0.5], [-0.5, 2.5]])
  batch = _feats(0, (2, 3, 4, 5))
  g = np.asarray(stylize.gram_matrix(jnp.asarray(batch)))
  assert g.shape == (2, 5, 5)
  flat = batch[1].reshape(12, 5)
  np.testing.assert_allclose(g[1], flat.T @ flat / 12, rtol=1e-5)


def test_gram_matrix_gradient_is_autodiffs_of_the_plain_product():
  """The one-product custom gradient F (dG + dG^T) / (H W) equals autodiff of F^T F / (H W)
  for a non-symmetric cotangent (the loss weights (i, j) and (j, i) differently)."""
  feats = jnp.asarray(_feats(1, (2, 3, 4, 5)))
  weights = jnp.asarray(_feats(2, (2, 5, 5)))  # Not symmetric.

  def plain(f):
    flat = f.reshape(2, 12, 5)
    return jnp.einsum('bpi,bpj->bij', flat, flat) / 12

  loss = lambda gram: lambda f: jnp.sum(weights * gram(f) ** 2)
  np.testing.assert_allclose(jax.grad(loss(stylize.gram_matrix))(feats),
                             jax.grad(loss(plain))(feats), rtol=1e-5, atol=1e-6)


def test_losses_against_numpy():
  f, p = _feats(1), _feats(2)
  np.testing.assert_allclose(stylize.content_loss(f, p), np.mean((f - p) ** 2), rtol=1e-6)
  np.testing.assert_allclose(stylize.content_loss(f, p, 4.0), np.mean((f - p) ** 2) / 4, rtol=1e-6)
  a = _feats(3, (3, 3))
  flat = f.reshape(-1, 3)
  expected = np.mean((flat.T @ flat / flat.shape[0] - a) ** 2)
  np.testing.assert_allclose(stylize.style_layer_loss(f, a), expected, rtol=1e-5)
  np.testing.assert_allclose(stylize.style_layer_loss(f, a, 2.0), expected / 2, rtol=1e-5)
  x = _feats(4, (6, 7, 3))
  tv = np.mean((x[1:] - x[:-1]) ** 2) + np.mean((x[:, 1:] - x[:, :-1]) ** 2)
  np.testing.assert_allclose(stylize.total_variation(x), tv, rtol=1e-5)


def test_yiq_round_trip_and_luminance_match():
  x = np.random.default_rng(5).uniform(size=(8, 8, 3)).astype(np.float32)
  yiq = losses.rgb_to_yiq(jnp.asarray(x))
  np.testing.assert_allclose(yiq[..., 0], x @ [0.299, 0.587, 0.114], rtol=1e-5)
  np.testing.assert_allclose(losses.yiq_to_rgb(yiq), x, atol=1e-5)
  s, c = jnp.linspace(0.0, 0.2, 64), jnp.linspace(0.3, 0.7, 64)
  m = losses.match_luminance(s, c)
  np.testing.assert_allclose([m.mean(), m.std()], [c.mean(), c.std()], rtol=1e-4)


def _pair(side=SIDE):
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[0:side, 0:side] / side
  content = np.stack([yy, xx, 0.5 * np.ones_like(xx)], -1).astype(np.float32)
  stripes = (np.sin(xx * 40 + yy * 20) > 0).astype(np.float32)
  style = np.stack([stripes, 1 - stripes, rng.uniform(size=stripes.shape)], -1).astype(np.float32)
  return content, style


# L-BFGS evaluates the loss several times a step (its line search): a smaller image, fewer steps.
@pytest.mark.parametrize('optimizer,side,steps', [('adam', SIDE, 20), ('lbfgs', 16, 10)])
def test_steps_lower_the_loss(optimizer, side, steps):
  content, style = _pair(side)
  image, history = stylize.stylize(content, style, optimizer=optimizer, steps=steps,
                                   progress=False, log=None)
  assert image.shape == (side, side, 3) and image.min() >= 0 and image.max() <= 1
  assert history['total'].shape == (steps,) and np.isfinite(history['total']).all()
  assert history['total'][-1] < 0.9 * history['total'][0], history['total']
  assert history['style'][-1] < history['style'][0]


def test_the_steps_precomputed_kernels_leave_the_image_gradient_unchanged():
  from genjax.stylize import transfer  # pylint: disable=g-import-not-at-top
  content, style = (jnp.asarray(a) for a in _pair(32))
  spec, params = transfer.StylizeSpec(), vgg.random_params(0)
  targets = transfer._targets(params, content, style, spec, 'torch', 'style')  # pylint: disable=protected-access
  image = jnp.clip(content + 0.1 * jax.random.normal(jax.random.key(0), content.shape), 0, 1)
  grad = jax.jit(jax.grad(lambda x, gk: transfer.loss_terms(
      x, params, targets, spec, 'torch', (1.0, 1.0), gk)[0]))
  given = grad(image, vgg.input_grad_kernels(params))
  assert float(jnp.max(jnp.abs(given))) > 0
  np.testing.assert_allclose(given, grad(image, None), rtol=1e-5, atol=1e-7)


def test_the_network_is_loaded_onto_the_device_once():
  # numpy weights would be copied to the device by every step (80 MB for VGG19).
  leaves = jax.tree.leaves(stylize.load_network().params)
  assert len(leaves) == 2 * len(vgg.conv_layers('vgg19'))
  assert all(isinstance(leaf, jax.Array) for leaf in leaves)


def test_noise_init_coarse_to_fine_and_colour_preservation():
  content, style = _pair()
  lines = []
  image, history = stylize.stylize(content, style, steps=4, scales=(0.5, 1.0), init='noise',
                                   preserve_color=True, progress=False, log=lines.append)
  assert image.shape == (SIDE, SIDE, 3)
  assert list(history['level']) == [0] * 4 + [1] * 4
  assert len(lines) == 1 and 'random-weight VGG19 (He et al. init, seed 0' in lines[0]
  # Colour preserved: the result's chrominance is the content's.
  iq = np.asarray(losses.rgb_to_yiq(jnp.asarray(image)))[..., 1:]
  content_iq = np.asarray(losses.rgb_to_yiq(jnp.asarray(content)))[..., 1:]
  assert np.abs(iq - content_iq).mean() < 0.02


def test_spec_refuses_bad_values():
  with pytest.raises(config_lib.ConfigError, match='optimizer'):
    stylize.StylizeSpec(optimizer='sgd')
  with pytest.raises(config_lib.ConfigError, match='scales'):
    stylize.StylizeSpec(scales=(1.0, 0.5))
  with pytest.raises(config_lib.ConfigError, match='block9_conv1'):
    stylize.StylizeSpec(style_layers=('block9_conv1',))


def test_working_size_keeps_the_aspect_ratio():
  assert stylize.working_size(1000, 500, 512) == (512, 256)
  assert stylize.working_size(100, 50, 512) == (100, 50)


# ------------------------------------------------------------------------------------------------
# The command line.

def _genjax(*args, timeout=240):
  env = subprocesses.env(1)
  return subprocess.run([sys.executable, '-m', 'genjax.main', 'stylize', *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=timeout)


def _assert_one_line_error(done, *parts):
  assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('genjax: '), done.stderr
  for part in parts:
    assert part in lines[0], (part, lines[0])


@pytest.fixture
def files(tmp_path):
  from PIL import Image
  rng = np.random.default_rng(0)
  Image.fromarray((rng.uniform(size=(20, 40)) * 255).astype(np.uint8), 'L').save(tmp_path / 'g.png')
  Image.fromarray((rng.uniform(size=(24, 24, 4)) * 255).astype(np.uint8), 'RGBA').save(
      tmp_path / 'a.png')
  Image.fromarray((rng.uniform(size=(48, 24, 3)) * 255).astype(np.uint8)).save(tmp_path / 'c.jpg')
  (tmp_path / 'text.png').write_text('not an image')
  vgg.save_weights(str(tmp_path / 'vgg16.npz'), vgg.random_params(0, 'vgg16')['params'],
                   'vgg16', 'caffe')
  return tmp_path


def test_cli_refuses_a_missing_file(files):
  _assert_one_line_error(_genjax(f'--content={files}/nope.png', f'--style={files}/a.png',
                                 f'--out={files}/o.png'), 'FileNotFoundError', 'nope.png')


def test_cli_refuses_a_non_image(files):
  _assert_one_line_error(_genjax(f'--content={files}/g.png', f'--style={files}/text.png',
                                 f'--out={files}/o.png'), 'ImageError', 'text.png')


def test_cli_refuses_weights_of_another_architecture(files):
  _assert_one_line_error(_genjax(f'--content={files}/g.png', f'--style={files}/a.png',
                                 f'--out={files}/o.png', f'--weights={files}/vgg16.npz'),
                         'WeightsError', 'block3_conv4')
  _assert_one_line_error(_genjax(f'--content={files}/g.png', f'--style={files}/a.png',
                                 f'--out={files}/o.png', f'--weights={files}/text.png'),
                         'WeightsError', 'not a converted VGG')


def test_cli_stylizes_any_mode_and_keeps_the_aspect_ratio(files):
  """Grayscale content, RGBA style, resized to --max_side, written at the content's ratio."""
  from PIL import Image
  done = _genjax(f'--content={files}/c.jpg', f'--style={files}/a.png', f'--out={files}/o.png',
                 '--steps=2', '--max_side=32', timeout=300)
  assert done.returncode == 0, done.stderr
  assert 'random-weight VGG19' in done.stdout and 'working at 16x32' in done.stdout
  assert Image.open(files / 'o.png').size == (16, 32)
  done = _genjax(f'--content={files}/g.png', f'--style={files}/a.png', f'--out={files}/o2.png',
                 '--steps=1', timeout=300)
  assert done.returncode == 0, done.stderr
  assert Image.open(files / 'o2.png').size == (40, 20)
