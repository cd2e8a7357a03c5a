"""The bundled feature extractor: loads, matches its hash, and classifies the test split."""
import numpy as np
import pytest

from genjax import data
from genjax.metrics import extractors, weights_file


@pytest.fixture(scope='module')
def extractor():
  return extractors.get_extractor('mnist5k_classifier')


def test_loads_with_matching_hash_and_scores_at_least_98_percent(extractor, load):
  assert extractor.sha256 == weights_file.sha256(extractors.MNIST_CLASSIFIER)
  assert extractor.info['test_accuracy'] >= 0.98
  test = data.load_split(load('classifier_mnist.py'), 'test')
  feats, probs = extractor(test['image'])
  assert feats.shape == (1000, 128) and probs.shape == (1000, 10)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
  accuracy = np.mean(probs.argmax(-1) == test['label'])
  assert accuracy >= 0.98
  assert accuracy == pytest.approx(extractor.info['test_accuracy'])


def test_padded_32px_digits_give_the_same_features(extractor):
  rng = np.random.default_rng(0)
  digits = rng.uniform(-1, 1, (4, 28, 28, 1)).astype(np.float32)
  padded = np.pad(digits, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1.0)
  np.testing.assert_allclose(extractor(digits)[0], extractor(padded)[0], rtol=1e-5, atol=1e-6)
  assert extractor(np.zeros((3, 16, 16, 1), np.float32))[0].shape == (3, 128)  # Resized.


def test_rgb_and_unknown_names_are_refused(extractor):
  with pytest.raises(ValueError, match="1-channel.*inception_v3"):
    extractor(np.zeros((2, 32, 32, 3), np.float32))
  with pytest.raises(ValueError, match='accepted'):
    extractors.get_extractor('vgg')


def test_a_damaged_weights_file_is_detected(tmp_path):
  import shutil
  path = tmp_path / 'w.npz'
  shutil.copy(extractors.MNIST_CLASSIFIER, path)
  shutil.copy(extractors.MNIST_CLASSIFIER + '.json', str(path) + '.json')
  with open(path, 'r+b') as f:
    f.seek(-10, 2)
    f.write(b'0123456789')
  with pytest.raises(ValueError, match='changed or damaged'):
    extractors.mnist5k_classifier(str(path))
