"""Super-resolution (issue 24): pixel shuffle, the RRDB's size, MATLAB bicubic against PIL,
relativistic average losses by hand, tiling, the configs, and runs end to end."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from genjax.config import ConfigError
from genjax.data import resize
from genjax.methods import sr
from genjax.methods.sr import losses
from genjax.models import rrdb

# One worker runs the module; its session-scoped fixture is then built once (a module-scoped
# one is torn down whenever xdist interleaves another module's tests on that worker).
pytestmark = pytest.mark.xdist_group('sr')

SR_CONFIGS = ('rrdb_psnr_mnist', 'esrgan_mnist', 'sr_diffusion_mnist', 'rrdb_psnr_photos',
              'esrgan_photos')


def test_pixel_shuffle_matches_a_loop_reference_and_inverts():
  r, c = 2, 3
  x = np.random.default_rng(0).normal(size=(2, 4, 5, r * r * c)).astype(np.float32)
  ref = np.zeros((2, 4 * r, 5 * r, c), np.float32)
  for h in range(4):
    for w in range(5):
      for i in range(r):
        for j in range(r):
          ref[:, h * r + i, w * r + j, :] = x[:, h, w, (i * r + j) * c:(i * r + j + 1) * c]
  out = np.asarray(rrdb.pixel_shuffle(jnp.asarray(x), r))
  np.testing.assert_array_equal(out, ref)
  np.testing.assert_array_equal(np.asarray(rrdb.pixel_unshuffle(jnp.asarray(out), r)), x)
  with pytest.raises(ValueError, match='divisible'):
    rrdb.pixel_shuffle(jnp.zeros((1, 2, 2, 6)), 2)


def test_rrdb_parameter_count_by_hand():
  # nf 16, gc 8, 2 RRDBs, grey in and out, x4. One dense block: five 3x3 convs seeing
  # 16, 24, 32, 40, 48 channels, each giving 8 (+ bias), and the 1x1 fusion 56 -> 16.
  dense = sum(9 * c_in * 8 + 8 for c_in in (16, 24, 32, 40, 48)) + (56 * 16 + 16)
  assert dense == 9 * 8 * 160 + 5 * 8 + 912 == 12_472
  stem, body = 9 * 1 * 16 + 16, 9 * 16 * 16 + 16
  ups = 2 * (9 * 16 * 64 + 64)  # Two pixel-shuffle stages: 16 -> 64 channels each.
  hr, last = 9 * 16 * 16 + 16, 9 * 16 * 1 + 1
  expected = stem + 2 * 3 * dense + body + ups + hr + last
  net = rrdb.RRDBNet(out_channels=1, features=16, growth=8, num_blocks=2, scale=4)
  params = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 5, 6, 1)))['params']
  assert sum(p.size for p in jax.tree.leaves(params)) == expected == 98_337
  assert rrdb.rrdbnet_num_params(1, 1, 16, 8, 2) == expected
  # Any input size: 5x6 -> 20x24.
  out = jax.eval_shape(lambda p, x: net.apply({'params': p}, x), params, jnp.zeros((2, 5, 6, 1)))
  assert out.shape == (2, 20, 24, 1)


@pytest.mark.parametrize('in_hw,out_hw', [((64, 48), (16, 12)), ((16, 12), (64, 48)),
                                          ((37, 29), (9, 7))])
def test_bicubic_matches_pil_away_from_the_border(in_hw, out_hw):
  """PIL's float-mode bicubic: same kernel (a=-0.5), widening and centres; it renormalises at
  the border where MATLAB mirrors, so only pixels whose support stays inside are compared."""
  x = np.random.default_rng(1).random(in_hw).astype(np.float32)
  ref = np.asarray(Image.fromarray(x, mode='F').resize(out_hw[::-1], Image.BICUBIC))
  ours = resize.imresize(x[..., None], out_hw)[..., 0]
  margin = [int(np.ceil(2 * max(1.0, i / o) * o / i)) + 1 for i, o in zip(in_hw, out_hw)]
  inner = (slice(margin[0], -margin[0]), slice(margin[1], -margin[1]))
  np.testing.assert_allclose(ours[inner], ref[inner], atol=2e-6)
  # Rows of weights sum to 1 (a constant image stays constant, border included).
  np.testing.assert_allclose(resize.imresize(np.full(in_hw + (1,), 0.3, np.float32), out_hw),
                             0.3, atol=1e-6)


def test_bicubic_border_mirrors_as_matlab():
  # 1/2 of 8 pixels: MATLAB's first output weighs input pixels 0..3 with the 1/2-stretched
  # kernel at distances 0.5, 1.5, 2.5, 3.5 (scaled 0.25, 0.75, 1.25, 1.75); taps left of the
  # border fold back onto pixels 0, 1, 2 (mirror [1:n, n:-1:1]).
  m = resize.resize_matrix(8, 4)
  u, taps = 1.5, np.arange(-3, 7)  # 1-based centre of output 1; taps floor(u - 4) + 0..9.
  w = 0.5 * resize.cubic((u - taps) * 0.5)
  w /= w.sum()
  expected = np.zeros(8)
  for t, wt in zip(taps, w):
    expected[(t - 1) if t >= 1 else -t] += wt  # t = 0 -> pixel 0, t = -1 -> 1, ...
  np.testing.assert_allclose(m[0], expected, atol=1e-6)


def test_relativistic_average_losses_by_hand():
  real, fake = np.array([2.0, 0.5, -1.0]), np.array([0.0, -2.0, 1.0])
  sig = lambda z: 1 / (1 + np.exp(-z))
  d_rr, d_fr = sig(real - fake.mean()), sig(fake - real.mean())
  d_loss = 0.5 * (-np.mean(np.log(d_rr)) - np.mean(np.log(1 - d_fr)))
  g_loss = 0.5 * (-np.mean(np.log(1 - d_rr)) - np.mean(np.log(d_fr)))
  np.testing.assert_allclose(losses.relativistic_d_loss(jnp.asarray(real), jnp.asarray(fake)),
                             d_loss, rtol=1e-5)
  np.testing.assert_allclose(losses.relativistic_g_loss(jnp.asarray(real), jnp.asarray(fake)),
                             g_loss, rtol=1e-5)


def test_pixel_losses_by_hand_and_the_psnr_step_uses_the_chosen_one(load):
  a, b = jnp.asarray([[0.5, -1.0], [2.0, 0.0]]), jnp.asarray([[0.0, 1.0], [1.0, 0.0]])
  np.testing.assert_allclose(losses.l1(a, b), (0.5 + 2 + 1 + 0) / 4, rtol=1e-6)
  np.testing.assert_allclose(losses.l2(a, b), (0.25 + 4 + 1 + 0) / 4, rtol=1e-6)
  from genjax.methods.api import StateSpec
  images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 28, 28, 1)), jnp.float32)
  rng = jax.random.key(3)
  for name, loss_fn in (('l1', losses.l1), ('l2', losses.l2)):
    config = load('rrdb_psnr_mnist.py:smoke', sr__pixel_loss=name)
    spec = sr.decode(config, (28, 28, 1))
    state = sr.steps.init(spec, StateSpec.from_config(config), None, jax.random.key(0),
                          {'image': images})
    state.params['generator']['conv_last']['kernel'] += 0.1  # Not the bicubic start alone.
    lr, hr = sr.steps.make_pairs(spec, images, rng)
    expected = loss_fn(sr.steps.generator_apply(spec, state.params['generator'], lr), hr)
    _, metrics = sr.steps.psnr_step(spec, state, {'image': images}, rng)
    np.testing.assert_allclose(metrics['loss'], expected, rtol=1e-5)
    # A fine-tune (rrdb_psnr with init_from) starts from the generator it is given.
    tuned = sr.steps.init(spec, StateSpec.from_config(config), state.params['generator'],
                          jax.random.key(1), {'image': images})
    for x, y in zip(jax.tree.leaves(tuned.params), jax.tree.leaves(state.params)):
      np.testing.assert_array_equal(x, y)
  with pytest.raises(ConfigError, match="sr.pixel_loss='huber'"):
    sr.decode(load('rrdb_psnr_mnist.py', sr__pixel_loss='huber'), (28, 28, 1))


def test_tiles_equal_the_whole_image_away_from_seams():
  # No RRDB: a receptive radius of 1 (stem) + 1 (trunk) + 1 + 1/2 + 1/4 + 1/4 = 4 LR pixels,
  # and bicubic's 2, so that tiles 8 wide with 6 pixels of context reproduce the whole image.
  net = rrdb.RRDBNet(out_channels=3, features=8, growth=4, num_blocks=0, bicubic_skip=True)
  lr = np.random.default_rng(2).uniform(-1, 1, (21, 30, 3)).astype(np.float32)
  params = jax.jit(net.init)(jax.random.key(0), lr[None])['params']
  params['conv_last']['kernel'] = 0.1 * jax.random.normal(jax.random.key(1),  # Zero at init.
                                                          params['conv_last']['kernel'].shape)
  fn = jax.jit(lambda x: net.apply({'params': params}, x))
  whole = np.asarray(fn(lr[None]))[0]
  exact = sr.upscale_tiled(fn, lr, 4, tile=8, overlap=6)
  np.testing.assert_allclose(exact, whole, atol=1e-5)
  short = sr.upscale_tiled(fn, lr, 4, tile=8, overlap=1)
  seams = np.zeros((21 * 4, 30 * 4), bool)
  for s in sr.upscale.tile_starts(21, 8)[1:]:
    seams[max(0, (s - 6) * 4):(s + 6) * 4] = True
  for s in sr.upscale.tile_starts(30, 8)[1:]:
    seams[:, max(0, (s - 6) * 4):(s + 6) * 4] = True
  assert np.abs(short - whole).max() > 1e-4  # Too little context does show at the seams...
  np.testing.assert_allclose(short[~seams], whole[~seams], atol=1e-5)  # ...and only there.


def test_configs_decode_and_refuse_bad_values(load):
  for name in SR_CONFIGS:
    for variant in ('', ':smoke'):
      config = load(f'{name}.py{variant}')
      shape = (288, 288, 3) if 'photos' in name else (28, 28, 1)
      assert sr.decode(config, shape).arch in sr.ARCHS
  with pytest.raises(ConfigError, match='init_from'):
    sr.decode(load('esrgan_mnist.py', sr__init_from=None), (28, 28, 1))
  with pytest.raises(ConfigError, match="sr.arch='diffusion' has none"):
    sr.decode(load('sr_diffusion_mnist.py', sr__init_from='runs/x'), (28, 28, 1))
  with pytest.raises(ConfigError, match='sr.arch'):
    sr.decode(load('rrdb_psnr_mnist.py', sr__arch='srgan'), (28, 28, 1))
  with pytest.raises(ConfigError, match='divide'):
    sr.decode(load('rrdb_psnr_photos.py', sr__crop_size=30), (288, 288, 3))
  with pytest.raises(ConfigError, match='square'):
    sr.decode(load('rrdb_psnr_photos.py', sr__crop_size=None, sr__random_rotate=True),
              (288, 320, 3))


@pytest.mark.parametrize('flip,rotate,expected', [(False, False, 1), (True, False, 2),
                                                  (True, True, 8)])
def test_training_pairs_augment_with_the_symmetries_of_the_square(load, flip, rotate, expected):
  # An 8x8 image with no symmetry: its 8 rotations and reflections all differ.
  image = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1) / 32 - 1
  spec = sr.decode(load('rrdb_psnr_mnist.py', sr__random_flip=flip, sr__random_rotate=rotate),
                   (8, 8, 1))
  symmetries = [np.rot90(im, k) for im in (image[0], image[0, :, ::-1]) for k in range(4)]
  seen = set()
  for i in range(64):
    _, hr = sr.steps.make_pairs(spec, jnp.asarray(image), jax.random.key(i))
    match = [j for j, sym in enumerate(symmetries) if np.array_equal(np.asarray(hr[0]), sym)]
    assert len(match) == 1  # Always exactly one symmetry of the input, never another image.
    seen.add(match[0])
  assert len(seen) == expected


def test_random_crops_are_windows_at_uniform_positions():
  images = np.arange(2 * 6 * 7, dtype=np.float32).reshape(2, 6, 7, 1)
  corners = []
  for i in range(200):
    crops = np.asarray(resize.random_crops(jnp.asarray(images), 4, jax.random.key(i)))
    assert crops.shape == (2, 4, 4, 1)
    for crop, image in zip(crops, images):
      t, l = divmod(int(crop[0, 0, 0]) % 42, 7)  # The crop's top-left pixel names its corner.
      np.testing.assert_array_equal(crop, image[t:t + 4, l:l + 4])
      corners.append((t, l))
  assert set(corners) == {(t, l) for t in range(3) for l in range(4)}  # Every position drawn.


def test_self_ensemble_averages_the_eight_symmetries():
  # A model equivariant to rotations and reflections (nearest upsampling) is its own
  # self-ensemble; a row ramp added to its output averages to the ramp's mean, (S - 1) / 2.
  lr = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (2, 5, 5, 3)), jnp.float32)
  nearest = lambda x, keys: jnp.repeat(jnp.repeat(x, 4, axis=1), 4, axis=2)
  ramp = jnp.arange(20, dtype=jnp.float32)[None, :, None, None]
  keys = jax.random.split(jax.random.key(0), 2)
  np.testing.assert_allclose(sr.upscale.self_ensemble(nearest)(lr, keys), nearest(lr, keys),
                             atol=1e-6)
  ensembled = sr.upscale.self_ensemble(lambda x, k: nearest(x, k) + ramp)(lr, keys)
  np.testing.assert_allclose(ensembled, nearest(lr, keys) + 9.5, atol=1e-5)


@pytest.fixture(scope='session')  # Its group's one worker builds it once.
def trained_runs(tmp_path_factory):
  """rrdb_psnr_mnist:smoke, then esrgan_mnist:smoke started from it (1 step each)."""
  from genjax.config import load_config
  from genjax.train import loop

  root = tmp_path_factory.mktemp('sr')
  runs = {}
  for name, extra in (('rrdb_psnr_mnist', {}),
                      ('esrgan_mnist', {'init_from': str(root / 'rrdb_psnr_mnist')})):
    config = load_config(os.path.join(REPO, 'configs', f'{name}.py:smoke'))
    config.train.num_steps = 1
    config.eval.num_examples = 20
    config.eval.sample_batch_size = 20
    for key, value in extra.items():
      config.sr[key] = value
    loop.train(config, str(root / name))
    runs[name] = str(root / name)
  return runs


def test_smoke_runs_train_evaluate_and_upscale(trained_runs, tmp_path):
  import json

  from genjax.tools import upscale as tool

  for workdir in trained_runs.values():
    result = json.load(open(os.path.join(workdir, 'eval.json')))
    for key in ('psnr', 'psnr_bicubic', 'psnr_nearest', 'ssim', 'fid', 'fid_floor',
                'label_accuracy', 'label_accuracy_bicubic'):
      assert np.isfinite(result[key]), key
    assert os.listdir(os.path.join(workdir, 'images'))
  # The interpolated network at alpha = 1 is the PSNR run's generator.
  spec, fn = tool.load_upscaler(trained_runs['esrgan_mnist'], 1.0)
  _, psnr_fn = tool.load_upscaler(trained_runs['rrdb_psnr_mnist'], None)
  lr = np.random.default_rng(3).uniform(-1, 1, (1, 7, 9, 1)).astype(np.float32)
  key = jax.random.key(0)[None]
  np.testing.assert_allclose(fn(lr, key), psnr_fn(lr, key), atol=1e-5)
  # Self-ensemble: the mean of the model over the 8 symmetries of a non-square input.
  se_spec, se_fn = tool.load_upscaler(trained_runs['rrdb_psnr_mnist'], None, self_ensemble=True)
  assert se_spec.self_ensemble
  views = [np.swapaxes(lr, 1, 2) if t else lr for t in (False, True)]
  expected = np.mean([np.swapaxes(y, 1, 2) if t else y for t, v in enumerate(views)
                      for y in [np.asarray(psnr_fn(v[:, ::a, ::b], key))[:, ::a, ::b]
                                for a in (1, -1) for b in (1, -1)]], axis=0)
  np.testing.assert_allclose(se_fn(lr, key), expected, atol=1e-5)
  # Any channel count: RGBA in, RGBA out at 4x.
  rgba = np.random.default_rng(4).uniform(-1, 1, (6, 5, 4)).astype(np.float32)
  assert tool.upscale_image(spec, fn, rgba, None).shape == (24, 20, 4)
  # Over AUTO_TILE_PIXELS: tiles, and says so.
  said = []
  big = np.zeros((257, 256, 1), np.float32)
  assert tool.upscale_image(spec, fn, big, None, log=said.append).shape == (1028, 1024, 1)
  assert 'tiles' in said[0]
  # A batch in the sample contract.
  np.savez(tmp_path / 'in.npz', images=np.zeros((3, 7, 7, 1), np.uint8), seed=np.int64(1))
  out = tool.upscale_npz(spec, fn, str(tmp_path / 'in.npz'), str(tmp_path / 'out.npz'), None)
  assert out.shape == (3, 28, 28, 1) and int(np.load(tmp_path / 'out.npz')['seed']) == 1


def test_upscale_command_refuses_bad_images(tmp_path):
  from genjax.tools import upscale as tool

  (tmp_path / 'text.png').write_text('not an image')
  with pytest.raises(tool.UpscaleError, match='not an image file'):
    tool.read_image(str(tmp_path / 'text.png'))
  with pytest.raises(FileNotFoundError):
    tool.read_image(str(tmp_path / 'missing.png'))
  # The command line: one line, exit status 2, before any model is loaded.
  Image.fromarray(np.zeros((1, 1), np.uint8)).save(tmp_path / 'one.png')
  proc = subprocess.run([sys.executable, '-m', 'genjax.main', 'upscale', f'--workdir={tmp_path}',
                         f'--image={tmp_path / "one.png"}', f'--out={tmp_path / "o.png"}'],
                        capture_output=True, text=True, cwd=REPO,
                        env={**os.environ, 'JAX_PLATFORMS': 'cpu'}, timeout=120)
  assert proc.returncode == 2 and '1x1 pixels' in proc.stderr, proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1
