"""FID InceptionV3: architecture, resize, forward shapes, and the torch-free weight conversion.

No pretrained weights exist offline, so the conversion is tested on state_dicts written by a
test-only imitation of torch.save (both its zip and legacy formats), with random values.
"""
import collections
import io
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.metrics import inception_weights as iw
from genjax.models import inception
from genjax.tools import convert_inception as convert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------- architecture


def _conv_table():
  """(in, out, kh, kw) of every conv of the FID InceptionV3, from Szegedy et al. / pytorch-fid."""
  convs = [(3, 32, 3, 3), (32, 32, 3, 3), (32, 64, 3, 3), (64, 80, 1, 1), (80, 192, 3, 3)]
  for cin, pool in ((192, 32), (256, 64), (288, 64)):  # A
    convs += [(cin, 64, 1, 1), (cin, 48, 1, 1), (48, 64, 5, 5), (cin, 64, 1, 1), (64, 96, 3, 3),
              (96, 96, 3, 3), (cin, pool, 1, 1)]
  convs += [(288, 384, 3, 3), (288, 64, 1, 1), (64, 96, 3, 3), (96, 96, 3, 3)]  # B
  for c in (128, 160, 160, 192):  # C
    convs += [(768, 192, 1, 1), (768, c, 1, 1), (c, c, 1, 7), (c, 192, 7, 1), (768, c, 1, 1),
              (c, c, 7, 1), (c, c, 1, 7), (c, c, 7, 1), (c, 192, 1, 7), (768, 192, 1, 1)]
  convs += [(768, 192, 1, 1), (192, 320, 3, 3), (768, 192, 1, 1), (192, 192, 1, 7),  # D
            (192, 192, 7, 1), (192, 192, 3, 3)]
  for cin in (1280, 2048):  # E
    convs += [(cin, 320, 1, 1), (cin, 384, 1, 1), (384, 384, 1, 3), (384, 384, 3, 1), (cin, 448, 1, 1),
              (448, 384, 3, 3), (384, 384, 1, 3), (384, 384, 3, 1), (cin, 192, 1, 1)]
  return convs


def test_parameter_count_matches_the_architecture():
  shapes = iw.expected_shapes()
  count = lambda prefix: sum(int(np.prod(s)) for k, s in shapes.items() if k.startswith(prefix))
  convs = _conv_table()
  assert len(convs) == 94
  # Each conv: its kernel and the BN scale and bias.
  pool3_params = sum(kh * kw * cin * cout + 2 * cout for cin, cout, kh, kw in convs)
  fc_params = 2048 * 1008 + 1008
  assert count('params/') - count('params/fc/') == pool3_params == 21_785_568
  assert count('params/') == pool3_params + fc_params == 23_850_960  # "about 23.8M"
  assert count('batch_stats/') == sum(2 * cout for _, cout, _, _ in convs)
  assert shapes['params/Mixed_6b/branch7x7_2/conv/kernel'] == (1, 7, 128, 128)  # HWIO
  assert shapes['params/fc/kernel'] == (2048, 1008)


def test_fid_block_variants():
  """pytorch-fid's FIDInceptionA/C/E_1/E_2 choices, read off the modules as they run."""
  seen = {}

  def record(next_fun, args, kwargs, context):
    m = context.module
    if isinstance(m, (inception.InceptionA, inception.InceptionC, inception.InceptionE)):
      seen[m.name] = getattr(m, 'pool_features', None) or getattr(m, 'channels_7x7', None) or m.max_pool
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(inception.InceptionV3().init, jax.random.key(0), jnp.zeros((1, 299, 299, 3)))
  assert seen == {'Mixed_5b': 32, 'Mixed_5c': 64, 'Mixed_5d': 64, 'Mixed_6b': 128, 'Mixed_6c': 160,
                  'Mixed_6d': 160, 'Mixed_6e': 192, 'Mixed_7b': False, 'Mixed_7c': True}


@pytest.mark.parametrize('max_pool', [False, True])
def test_e_block_pool_branch(max_pool):
  """Only branch_pool's conv is non-zero and copies 192 input channels: the block's last 192
  outputs are then relu(pool(x) / sqrt(1 + eps)), with TF's average pool (padding not counted)
  or Mixed_7c's max pool."""
  x = jax.random.uniform(jax.random.key(1), (1, 5, 5, 1280))
  block = inception.InceptionE(max_pool=max_pool)
  identity = {'scale': jnp.ones, 'var': jnp.ones}  # BN: (x - 0) / sqrt(1 + eps) * 1 + 0
  variables = jax.tree_util.tree_map_with_path(
      lambda path, s: identity.get(path[-1].key, jnp.zeros)(s.shape, s.dtype),
      jax.eval_shape(block.init, jax.random.key(0), x))
  variables['params']['branch_pool']['conv']['kernel'] = jnp.eye(1280, 192)[None, None]
  out = block.apply(variables, x)[..., -192:]
  padded = np.pad(np.asarray(x[0, ..., :192]), ((1, 1), (1, 1), (0, 0)), constant_values=np.nan)
  windows = np.stack([padded[i:i + 5, j:j + 5] for i in range(3) for j in range(3)])
  pooled = np.nanmax(windows, 0) if max_pool else np.nanmean(windows, 0)  # nan-padding: not counted
  np.testing.assert_allclose(out[0], pooled / np.sqrt(1 + 1e-3), rtol=1e-5)


# --------------------------------------------------------------------------- preprocessing


def test_bilinear_matrix_is_torch_align_corners_false():
  # F.interpolate([a, b], size=4, mode='linear', align_corners=False) = [a, .75a+.25b, .25a+.75b, b];
  # downsampling 4 -> 2 averages pairs (no antialiasing).
  np.testing.assert_allclose(inception.bilinear_matrix(2, 4), [[1, 0], [.75, .25], [.25, .75], [0, 1]])
  np.testing.assert_allclose(inception.bilinear_matrix(4, 2), [[.5, .5, 0, 0], [0, 0, .5, .5]])
  np.testing.assert_allclose(inception.bilinear_matrix(28, 299).sum(1), 1.0)


def test_resize_agrees_with_jax_image():
  rng = np.random.default_rng(0)
  small = jnp.asarray(rng.uniform(-1, 1, (1, 28, 28, 3)), jnp.float32)
  up = inception.resize_bilinear(small)
  np.testing.assert_allclose(up, jax.image.resize(small, (1, 299, 299, 3), 'bilinear'), atol=2e-5)
  big = jnp.asarray(rng.uniform(-1, 1, (1, 400, 320, 1)), jnp.float32)
  down = inception.resize_bilinear(big)
  no_antialias = jax.image.scale_and_translate(big, (1, 299, 299, 1), (1, 2),
                                               jnp.asarray([299 / 400, 299 / 320]), jnp.zeros(2),
                                               method='linear', antialias=False)
  np.testing.assert_allclose(down, no_antialias, atol=3e-4)  # jax builds its weights in float32


def test_preprocess_ranges_and_grayscale():
  x = jnp.linspace(0, 1, 2 * 9 * 9).reshape(2, 9, 9, 1)
  out = inception.preprocess(x, input_range=(0.0, 1.0), resize=False)
  assert out.shape == (2, 9, 9, 3)
  np.testing.assert_allclose(out, jnp.repeat(2 * x - 1, 3, axis=-1), atol=1e-6)  # pytorch-fid's 2x - 1
  np.testing.assert_allclose(inception.preprocess(2 * x - 1, resize=False), out, atol=1e-6)
  assert inception.preprocess(x).shape == (2, 299, 299, 3)
  with pytest.raises(ValueError, match='C in'):
    inception.preprocess(jnp.zeros((2, 9, 9, 2)))


# --------------------------------------------------------------------------- forward


def _random_variables(seed=0):
  """He-normal kernels and plausible BatchNorm statistics, so activations keep their scale."""
  rng = np.random.default_rng(seed)
  out = {}
  for key, shape in iw.expected_shapes().items():
    leaf = key.rsplit('/', 1)[-1]
    if leaf == 'kernel':
      out[key] = rng.normal(size=shape) * np.sqrt(2 / np.prod(shape[:-1]))
    elif leaf in ('scale', 'var'):
      out[key] = rng.uniform(0.5, 1.5, size=shape)
    else:
      out[key] = rng.normal(size=shape) * 0.1
  return flax.traverse_util.unflatten_dict({k: v.astype(np.float32) for k, v in out.items()}, sep='/')


@pytest.fixture(scope='module')
def variables():
  return _random_variables()


@pytest.fixture(scope='module')
def images():
  return jax.random.uniform(jax.random.key(2), (2, 32, 32, 3), minval=-1, maxval=1)


@pytest.fixture(scope='module')
def reference(variables, images):
  """The one full 299x299 forward of the file (compiles once): (apply, features, logits)."""
  apply = jax.jit(inception.InceptionV3().apply)
  return (apply, *apply(variables, images))


def test_output_shapes():
  model = inception.InceptionV3()
  for shape in ((2, 32, 32, 3), (2, 28, 28, 1), (2, 299, 299, 3)):
    out_shapes = jax.eval_shape(model.init_with_output, jax.random.key(0), jnp.zeros(shape))[0]
    assert [o.shape for o in out_shapes] == [(2, 2048), (2, 1008)]


def test_forward_is_deterministic_and_per_image(variables, images, reference):
  apply, features, logits = reference
  assert features.shape == (2, 2048) and logits.shape == (2, 1008)
  assert np.all(np.isfinite(features)) and np.all(np.asarray(features) >= 0)  # mean of ReLUs
  assert np.std(np.asarray(features)) > 1e-3
  again, _ = apply(variables, images)
  np.testing.assert_array_equal(features, again)
  swapped, _ = apply(variables, images[::-1])  # no batch statistics: each image alone
  np.testing.assert_allclose(swapped[::-1], features, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- conversion


def _to_state_dict(variables):
  """The inverse of the conversion, written independently: flax variables -> torch names/layouts."""
  torch_leaf = {('params', 'kernel'): 'weight', ('params', 'scale'): 'weight',
                ('params', 'bias'): 'bias',
                ('batch_stats', 'mean'): 'running_mean', ('batch_stats', 'var'): 'running_var'}
  state = collections.OrderedDict()
  for path, value in flax.traverse_util.flatten_dict(variables).items():
    collection, *modules, leaf = path
    name = '.'.join(modules + [torch_leaf[(collection, leaf)]])
    if modules == ['fc'] and leaf == 'kernel':
      value = value.T  # Linear stores [out, in]
    elif leaf == 'kernel':
      value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    state[name] = np.ascontiguousarray(value)
    if modules[-1] == 'bn' and leaf == 'var':
      state['.'.join(modules + ['num_batches_tracked'])] = np.array(0, np.int64)
  return state


@pytest.fixture
def fake_torch(monkeypatch):
  """Just enough of a `torch` module for pickle to name torch's globals in a test-written file."""
  torch = types.ModuleType('torch')
  utils = types.ModuleType('torch._utils')

  def _rebuild_tensor_v2(*args):
    raise AssertionError('only pickled, never called')

  _rebuild_tensor_v2.__module__ = 'torch._utils'
  _rebuild_tensor_v2.__qualname__ = '_rebuild_tensor_v2'
  utils._rebuild_tensor_v2 = _rebuild_tensor_v2
  torch._utils = utils
  for name in ('FloatStorage', 'LongStorage'):
    setattr(torch, name, type(name, (), {'__module__': 'torch'}))
  monkeypatch.setitem(sys.modules, 'torch', torch)
  monkeypatch.setitem(sys.modules, 'torch._utils', utils)
  return torch


class _Tensor:
  """A tensor as torch pickles it: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

  def __reduce__(self):
    rebuild = sys.modules['torch._utils']._rebuild_tensor_v2
    return rebuild, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())


class _StorageRef:

  def __init__(self, key, array):
    self.key, self.array = key, array


def _tensors_and_storages(state_dict):
  """Contiguous storages, except: fc.weight is stored transposed (a strided view), and each BN's
  running_mean/running_var share one storage (the second at an offset), as views do in torch."""
  tensors, storages = collections.OrderedDict(), []

  def new_storage(flat):
    storages.append(_StorageRef(str(len(storages)), np.ascontiguousarray(flat)))
    return storages[-1]

  for name, value in state_dict.items():
    if name.endswith('running_var'):
      continue
    if name == 'fc.weight':
      storage = new_storage(value.T.ravel())  # memory holds W^T: strides (1, out)
      tensors[name] = _Tensor(storage, 0, value.shape, (1, value.shape[0]))
    elif name.endswith('running_mean'):
      var = state_dict[name.replace('running_mean', 'running_var')]
      storage = new_storage(np.concatenate([value, var]))
      tensors[name] = _Tensor(storage, 0, value.shape, (1,))
      var_name = name.replace('running_mean', 'running_var')
      tensors[var_name] = _Tensor(storage, value.size, var.shape, (1,))
    else:
      strides = tuple(int(np.prod(value.shape[i + 1:])) for i in range(value.ndim))
      tensors[name] = _Tensor(new_storage(value.ravel()), 0, value.shape, strides)
  return tensors, storages


def _storage_type(torch, array):
  return torch.LongStorage if array.dtype == np.int64 else torch.FloatStorage


def _write_zip(path, state_dict, torch):
  tensors, storages = _tensors_and_storages(state_dict)

  class Pickler(pickle.Pickler):

    def persistent_id(self, obj):
      if isinstance(obj, _StorageRef):
        return ('storage', _storage_type(torch, obj.array), obj.key, 'cpu', obj.array.size)
      return None

  buffer = io.BytesIO()
  Pickler(buffer, protocol=2).dump(tensors)
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
    z.writestr('archive/data.pkl', buffer.getvalue())
    z.writestr('archive/byteorder', 'little')
    for storage in storages:
      little_endian = storage.array.astype(storage.array.dtype.newbyteorder('<'))
      z.writestr(f'archive/data/{storage.key}', little_endian.tobytes())
    z.writestr('archive/version', '3\n')


def _write_legacy(path, state_dict, torch):
  tensors, storages = _tensors_and_storages(state_dict)

  class Pickler(pickle.Pickler):

    def persistent_id(self, obj):
      if isinstance(obj, _StorageRef):
        return ('storage', _storage_type(torch, obj.array), obj.key, 'cpu', obj.array.size, None)
      return None

  with open(path, 'wb') as f:
    pickle.dump(0x1950a86a20f9469cfc6c, f, protocol=2)
    pickle.dump(1001, f, protocol=2)
    pickle.dump({'protocol_version': 1001, 'little_endian': True}, f, protocol=2)
    Pickler(f, protocol=2).dump(tensors)
    pickle.dump([s.key for s in storages], f, protocol=2)
    for storage in storages:
      f.write(struct.pack('<q', storage.array.size))
      f.write(storage.array.astype(storage.array.dtype.newbyteorder('<')).tobytes())


@pytest.mark.parametrize('writer', [_write_zip, _write_legacy])
def test_reader_handles_both_torch_formats(tmp_path, fake_torch, writer):
  rng = np.random.default_rng(3)
  state = collections.OrderedDict([
      ('Conv2d_1a_3x3.conv.weight', rng.normal(size=(32, 3, 3, 3)).astype(np.float32)),
      ('Conv2d_1a_3x3.bn.weight', rng.normal(size=32).astype(np.float32)),
      ('Conv2d_1a_3x3.bn.running_mean', rng.normal(size=32).astype(np.float32)),
      ('Conv2d_1a_3x3.bn.running_var', rng.uniform(size=32).astype(np.float32)),
      ('Conv2d_1a_3x3.bn.num_batches_tracked', np.array(7, np.int64)),
      ('fc.weight', rng.normal(size=(6, 4)).astype(np.float32)),
  ])
  path = str(tmp_path / 'weights.pth')
  writer(path, state, fake_torch)
  got = convert.read_state_dict(path)
  assert list(got) == list(state)
  for name, value in state.items():
    assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
    np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_mapped_layouts_compute_what_torch_computes():
  """OIHW conv weights and [out, in] Linear weights, mapped, give torch's outputs in flax."""
  rng = np.random.default_rng(4)
  w_conv = rng.normal(size=(5, 3, 1, 7)).astype(np.float32)  # a 1x7 conv, padding (0, 3)
  w_fc, b_fc = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=4).astype(np.float32)
  mapped = iw.variables_from_state_dict({'Mixed_6b.branch7x7_2.conv.weight': w_conv,
                                         'fc.weight': w_fc, 'fc.bias': b_fc})['params']
  x = rng.normal(size=(2, 4, 9, 3)).astype(np.float32)  # NHWC
  xp = np.pad(x, ((0, 0), (0, 0), (3, 3), (0, 0)))
  # torch (cross-correlation): out[n,o,y,x] = sum_{i,ky,kx} w[o,i,ky,kx] * in[n,i,y+ky,x+kx]
  expected = sum(np.einsum('nhwi,oi->nhwo', xp[:, :, kx:kx + 9], w_conv[:, :, 0, kx]) for kx in range(7))
  conv = nn.Conv(5, (1, 7), padding=((0, 0), (3, 3)), use_bias=False)
  got = conv.apply({'params': mapped['Mixed_6b']['branch7x7_2']['conv']}, x)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
  h = rng.normal(size=(3, 6)).astype(np.float32)
  got = nn.Dense(4).apply({'params': mapped['fc']}, h)
  np.testing.assert_allclose(got, h @ w_fc.T + b_fc, rtol=1e-5, atol=1e-5)  # torch: x W^T + b


def test_full_conversion_round_trip(tmp_path, fake_torch, variables, images, reference):
  pth = str(tmp_path / 'pt_inception-2015-12-05-6726825d.pth')
  _write_zip(pth, _to_state_dict(variables), fake_torch)
  npz = str(tmp_path / 'inception_fid.npz')
  with pytest.raises(ValueError, match='6726825d'):  # a random file has another hash
    convert.convert(pth, npz)
  # As a user runs it: the command line.
  done = subprocess.run([sys.executable, '-m', 'genjax.main', 'convert-inception', f'--input={pth}',
                         f'--output={npz}', '--no_check_hash'], cwd=REPO, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert f'Wrote {npz}' in done.stdout
  loaded = iw.load_inception_variables(npz)
  want, got = flax.traverse_util.flatten_dict(variables), flax.traverse_util.flatten_dict(loaded)
  assert set(got) == set(want)
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=str(key))
  # The loaded weights drive the network as the originals do.
  _, ref_features, ref_logits = reference
  features, probs = iw.make_inception_apply(loaded)(images)
  np.testing.assert_allclose(features, ref_features, rtol=1e-4, atol=1e-5)  # another compile: rounding
  unbiased = ref_logits - variables['params']['fc']['bias']  # Inception Score: logits without the bias
  np.testing.assert_allclose(probs, jax.nn.softmax(unbiased), rtol=1e-4, atol=1e-7)
  # A changed file no longer matches its recorded hash.
  with open(npz, 'ab') as f:
    f.write(b'\0')
  with pytest.raises(ValueError, match='sha256'):
    iw.load_inception_variables(npz)


def test_missing_weights_file_says_what_to_do():
  with pytest.raises(FileNotFoundError) as error:
    iw.load_inception_variables('/nonexistent/inception_fid.npz')
  message = str(error.value)
  for part in ('missing', iw.WEIGHTS_URL, 'genjax convert-inception',
               "feature_extractor='mnist5k_classifier'"):
    assert part in message


def test_bad_files_and_names_are_refused(tmp_path):
  with pytest.raises(ValueError, match='Unexpected state_dict entry'):
    iw.variables_from_state_dict({'Mixed_5b.branch1x1.attention.weight': np.zeros((2, 2))})
  with pytest.raises(ValueError, match='missing'):
    iw.check_variables(iw.variables_from_state_dict({'fc.bias': np.zeros(1008)}))
  # A pickle that would run code is refused before anything runs.
  path = str(tmp_path / 'evil.pth')
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('archive/data.pkl', pickle.dumps(os.getcwd, protocol=2))
  with pytest.raises(pickle.UnpicklingError, match='refusing'):
    convert.read_state_dict(path)
  with open(path, 'wb') as f:
    f.write(b'not a checkpoint')
  with pytest.raises(ValueError, match='neither a torch zip archive nor a legacy'):
    convert.read_state_dict(path)
