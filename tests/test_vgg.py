"""genjax's VGG19 against Keras' and a torchvision-layout PyTorch VGG19 with the same weights,
at every named layer; the weights converters' round trips and refusals.

Needs the test extras keras, h5py and torch (pyproject.toml `test`): a missing one fails here,
loudly, rather than skipping.
"""
import os

os.environ['KERAS_BACKEND'] = 'jax'  # Before keras is imported: no TensorFlow.

import h5py  # noqa: E402  # Test extra: pip install -e .[test]
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402  # Test extra.
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402  # Test extra.

from genjax.models import vgg  # noqa: E402
from genjax.tools import convert_vgg  # noqa: E402

SIDE = 32
LAYERS = vgg.layer_names('vgg19')


def _images(seed=0, n=2):
  return np.random.default_rng(seed).uniform(0, 1, (n, SIDE, SIDE, 3)).astype(np.float32)


def _random_params(seed=1):
  """Random weights with random biases too (He init has zero biases, which test less)."""
  params = vgg.random_params(seed)['params']
  rng = np.random.default_rng(seed + 100)
  return {name: {'kernel': p['kernel'], 'bias': rng.normal(0, 0.1, p['bias'].shape).astype(
      np.float32)} for name, p in params.items()}


def _genjax(params, x, pre_relu=False, layers=LAYERS):
  out = vgg.VGG('vgg19').apply({'params': params}, jnp.asarray(x), layers, pre_relu=pre_relu)
  return {k: np.asarray(v) for k, v in out.items()}


@pytest.fixture(scope='module')
def params():
  return _random_params()


def _assert_close(ours, theirs, name):
  scale = np.abs(theirs).max() + 1e-6
  np.testing.assert_allclose(ours / scale, theirs / scale, atol=2e-5, err_msg=name)


def test_keras_vgg19_every_layer(params):
  model = keras.applications.VGG19(weights=None, include_top=False, input_shape=(SIDE, SIDE, 3))
  for layer in model.layers:
    if layer.name in params:
      layer.set_weights([params[layer.name]['kernel'], params[layer.name]['bias']])
  probe = keras.Model(model.input, [model.get_layer(n).output for n in LAYERS])
  images = _images()
  x = np.asarray(vgg.preprocess(images, 'caffe'))
  # Keras' own "caffe" preprocessing of the same pixels.
  np.testing.assert_allclose(
      x, keras.applications.vgg19.preprocess_input(images * 255.0), rtol=1e-5, atol=1e-4)
  theirs = [np.asarray(t) for t in probe(x)]
  ours = _genjax(params, x)
  assert set(ours) == set(LAYERS)
  for name, t in zip(LAYERS, theirs):
    assert ours[name].shape == t.shape, name
    _assert_close(ours[name], t, name)


def _torch_vgg19(params):
  """torchvision's VGG19 `features` layout: conv, ReLU, ..., MaxPool2d; keys features.N.*."""
  layers, c_in = [], 3
  for b, n in enumerate(vgg.ARCHS['vgg19']):
    for _ in range(n):
      layers += [torch.nn.Conv2d(c_in, vgg.WIDTHS[b], 3, padding=1), torch.nn.ReLU()]
      c_in = vgg.WIDTHS[b]
    layers.append(torch.nn.MaxPool2d(2, 2))
  features = torch.nn.Sequential(*layers)
  state = {}
  for name, index in convert_vgg.torch_conv_indices('vgg19').items():
    state[f'{index}.weight'] = torch.from_numpy(params[name]['kernel'].transpose(3, 2, 0, 1).copy())
    state[f'{index}.bias'] = torch.from_numpy(params[name]['bias'])
  features.load_state_dict(state)
  return features


def _torch_activations(features, x, pre_relu):
  """name -> NHWC activations; pre_relu takes the conv outputs."""
  names = {}
  for name, index in convert_vgg.torch_conv_indices('vgg19').items():
    names[index if pre_relu else index + 1] = name
  index = 0
  for b, n in enumerate(vgg.ARCHS['vgg19']):
    index += 2 * n
    names[index] = f'block{b + 1}_pool'
    index += 1
  out, h = {}, torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
  with torch.no_grad():
    for i, layer in enumerate(features):
      h = layer(h)
      if i in names:
        out[names[i]] = h.numpy().transpose(0, 2, 3, 1)
  return out


@pytest.mark.parametrize('pre_relu', [False, True])
def test_torch_vgg19_every_layer(params, pre_relu):
  features = _torch_vgg19(params)
  x = np.asarray(vgg.preprocess(_images(1), 'torch'))
  theirs = _torch_activations(features, x, pre_relu)
  ours = _genjax(params, x, pre_relu=pre_relu)
  assert set(theirs) == set(LAYERS)
  for name in LAYERS:
    _assert_close(ours[name], theirs[name], name)
  if pre_relu:
    assert (ours['block1_conv1'] < 0).any()


def test_only_requested_layers_and_unknown_refused(params):
  x = vgg.preprocess(_images(2, 1), 'caffe')
  out = _genjax(params, x, layers=('block2_conv1', 'block1_pool'))
  assert sorted(out) == ['block1_pool', 'block2_conv1']
  assert out['block2_conv1'].shape == (1, SIDE // 2, SIDE // 2, 128)
  with pytest.raises(ValueError, match='block3_conv9'):
    _genjax(params, x, layers=('block3_conv9',))


def _write_keras_h5(path, params, skip=None):
  """The legacy layout of vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5."""
  with h5py.File(path, 'w') as f:
    names = [n for n in params if n != skip]
    f.attrs['layer_names'] = [n.encode() for n in ['input_1'] + names]
    f.create_group('input_1').attrs['weight_names'] = []
    for name in names:
      g = f.create_group(name)
      g.attrs['weight_names'] = [f'{name}/kernel:0'.encode(), f'{name}/bias:0'.encode()]
      g.create_dataset(f'{name}/kernel:0', data=params[name]['kernel'])
      g.create_dataset(f'{name}/bias:0', data=params[name]['bias'])


def test_keras_h5_round_trip(params, tmp_path):
  _write_keras_h5(tmp_path / 'w.h5', params)
  assert convert_vgg.convert(str(tmp_path / 'w.h5'), str(tmp_path / 'w.npz')) == 'caffe'
  loaded, arch, mode = vgg.load_weights(str(tmp_path / 'w.npz'))
  assert (arch, mode) == ('vgg19', 'caffe')
  x = vgg.preprocess(_images(3, 1), mode)
  ours, again = _genjax(params, x), _genjax(loaded['params'], x)
  for name in LAYERS:
    np.testing.assert_array_equal(ours[name], again[name])


def test_torch_pth_round_trip(params, tmp_path):
  features = _torch_vgg19(params)
  state = {f'features.{k}': v for k, v in features.state_dict().items()}
  torch.save(state, tmp_path / 'w.pth')
  assert convert_vgg.convert(str(tmp_path / 'w.pth'), str(tmp_path / 'w.npz')) == 'torch'
  loaded, _, mode = vgg.load_weights(str(tmp_path / 'w.npz'))
  assert mode == 'torch'
  for name in params:
    np.testing.assert_array_equal(loaded['params'][name]['kernel'], params[name]['kernel'])


def test_wrong_architecture_refused_naming_the_layer(params, tmp_path):
  vgg16 = vgg.random_params(0, 'vgg16')['params']
  _write_keras_h5(tmp_path / 'v16.h5', vgg16)
  with pytest.raises(vgg.WeightsError, match='block3_conv4'):
    convert_vgg.convert(str(tmp_path / 'v16.h5'), str(tmp_path / 'o.npz'))
  bad = {**params, 'block2_conv1': {'kernel': np.zeros((3, 3, 64, 96), np.float32),
                                    'bias': np.zeros(96, np.float32)}}
  _write_keras_h5(tmp_path / 'bad.h5', bad)
  with pytest.raises(vgg.WeightsError, match=r'block2_conv1/kernel.*\(3, 3, 64, 96\).*'
                     r'\(3, 3, 64, 128\)'):
    convert_vgg.convert(str(tmp_path / 'bad.h5'), str(tmp_path / 'o.npz'))
  # A VGG16 .npz given where VGG19 is wanted.
  vgg.save_weights(str(tmp_path / 'v16.npz'), vgg16, 'vgg16', 'caffe')
  with pytest.raises(vgg.WeightsError, match='block3_conv4'):
    vgg.load_weights(str(tmp_path / 'v16.npz'), 'vgg19')
  (tmp_path / 'junk.npz').write_bytes(b'not a zip')
  with pytest.raises(vgg.WeightsError, match='not a converted VGG'):
    vgg.load_weights(str(tmp_path / 'junk.npz'))


def test_pickled_code_is_never_run(tmp_path):
  """A .pth holding a pickled object (not tensors) is refused by weights_only loading."""
  import pickle  # pylint: disable=g-import-not-at-top

  class Boom:
    def __reduce__(self):
      return (os.system, ('touch ' + str(tmp_path / 'ran'),))

  torch.save({'features.0.weight': Boom()}, tmp_path / 'evil.pth', pickle_module=pickle)
  with pytest.raises(vgg.WeightsError, match='not a torch state dict'):
    convert_vgg.convert(str(tmp_path / 'evil.pth'), str(tmp_path / 'o.npz'))
  assert not (tmp_path / 'ran').exists()
