"""The input pipeline: deterministic, process-sharded batches of float NHWC images.

The batch of step k is a pure function of (seed, k): examples come from an
infinite stream (grain: shuffle, reshuffled every epoch, repeat), global batch
k is stream positions [k*B, (k+1)*B), and process p reads only its slice of it.
So a restarted run sees exactly the batches it would have seen, and the global
batch does not depend on the number of processes or devices.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterator

import grain
import jax
import ml_collections
import numpy as np
from PIL import Image

from genjax.data import sources


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """uint8 example(s) -> {'image': float32 in [-1, 1], 'label': int32} (if labelled).

  `__call__` takes one example ([H, W, C] image), `batch` a stacked split
  ([N, H, W, C] images, vectorized: whole data sets load in a blink).

  Attributes:
    crop_to: centre crop to this square side (no resampling: the pixels keep their scale,
      which super-resolution needs), or None; applied before `resize_to`.
    resize_to: bilinear resize to this square side, or None.
    pad_to: pad with the background value (-1) to this square side, or None.
  """
  crop_to: int | None = None
  resize_to: int | None = None
  pad_to: int | None = None

  def __call__(self, example: dict) -> dict:
    one = {'image': np.asarray(example['image'])[None]}
    if 'label' in example:
      one['label'] = np.asarray(example['label'])[None]
    return {k: v[0] for k, v in self.batch(one).items()}

  def batch(self, examples: dict) -> dict:
    images = np.asarray(examples['image'])
    if images.ndim == 3:
      images = images[..., None]
    if self.crop_to is not None:
      images = _centre_crop(images, self.crop_to)
    size = self.resize_to
    if size is not None and images.shape[1:3] != (size, size):
      images = np.stack([_resize(im, size) for im in images])
    out = images.astype(np.float32) / 127.5 - 1.0
    if self.pad_to is not None:
      h, w = out.shape[1:3]
      if h > self.pad_to or w > self.pad_to:
        raise ValueError(f'data.pad_to={self.pad_to} is smaller than the images ({h}x{w}); '
                         'use data.resize_to to shrink them.')
      top, left = (self.pad_to - h) // 2, (self.pad_to - w) // 2
      out = np.pad(out, ((0, 0), (top, self.pad_to - h - top), (left, self.pad_to - w - left),
                         (0, 0)), constant_values=-1.0)
    result = {'image': out}
    if 'label' in examples:
      result['label'] = np.asarray(examples['label'], np.int32)
    return result


def _centre_crop(images: np.ndarray, size: int) -> np.ndarray:
  """The centre size x size window of images [N, H, W, C] -> [N, size, size, C].

  Raises:
    ValueError: an image smaller than `size` on either side.
  """
  h, w = images.shape[1:3]
  if h < size or w < size:
    raise ValueError(f'data.crop_to={size} is larger than an image ({h}x{w}); use at most '
                     f'{min(h, w)}, or data.resize_to.')
  top, left = (h - size) // 2, (w - size) // 2
  return images[:, top:top + size, left:left + size]


def _resize(image: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize of one uint8 image [H, W, C] to [size, size, C] (PIL)."""
  gray = image.shape[-1] != 3
  pil = Image.fromarray(image[..., 0] if gray else image, mode='L' if gray else None)
  return np.asarray(pil.resize((size, size), Image.BILINEAR)).reshape(size, size, -1)


def read_split(source, preprocess: Preprocess, n: int | None = None) -> dict[str, np.ndarray]:
  """The first n (default all) examples of a source, preprocessed and stacked: {'image': [N, ...]}."""
  n = len(source) if n is None else min(n, len(source))
  raw = [source[i] for i in range(n)]
  shapes = {np.shape(r['image']) for r in raw}
  if len(shapes) > 1 and preprocess.resize_to is None and preprocess.crop_to is None:
    raise ValueError(f'Cannot batch images of different shapes {sorted(shapes)[:4]}; set '
                     'data.crop_to or data.resize_to.')
  if len(shapes) > 1:
    return _stack([preprocess(r) for r in raw])
  keys = [k for k in ('image', 'label') if k in raw[0]]
  return preprocess.batch({k: np.stack([np.asarray(r[k]) for r in raw]) for k in keys})


def make_preprocess(config: ml_collections.ConfigDict) -> Preprocess:
  return Preprocess(crop_to=config.data.get('crop_to'), resize_to=config.data.resize_to,
                    pad_to=config.data.pad_to)


def _stack(examples: list[dict]) -> dict:
  try:
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}
  except ValueError as e:
    shapes = sorted({str(e['image'].shape) for e in examples})
    raise ValueError(f'Cannot batch images of different shapes {shapes}; set data.resize_to.') from e


class Tiles:
  """Random access to the size x size tiles of a source's images: more examples, same scale.

  Each image is cut into a grid of non-overlapping tiles from its top-left corner (a right or
  bottom strip narrower than `size` is dropped); a tile keeps its image's other fields. For
  super-resolution on a few large photos: every pixel is training data and none is resampled,
  where a centre crop (`Preprocess.crop_to`) would discard most of them. Reads each image once
  to count its tiles.

  Args:
    source: random-access examples with 'image' [H, W, C] or [H, W].
    size: the tile side, in pixels.

  Raises:
    ValueError: an image smaller than `size` on either side.
  """

  def __init__(self, source, size: int):
    self._source, self._size = source, size
    self._last = (None, None)  # (i, example): a tile's neighbours come from the same image.
    self._index = []  # (example, top, left) of every tile.
    for i in range(len(source)):
      h, w = np.shape(self._example(i)['image'])[:2]
      if h < size or w < size:
        raise ValueError(f'data.tile_to={size} is larger than image {i} ({h}x{w}); use at most '
                         f'{min(h, w)}.')
      self._index += [(i, r * size, c * size) for r in range(h // size) for c in range(w // size)]

  def __len__(self) -> int:
    return len(self._index)

  def _example(self, i: int) -> dict:
    """Example i of the source, decoded once for all its tiles read in a row."""
    if self._last[0] != i:
      self._last = (i, self._source[i])
    return self._last[1]

  def __getitem__(self, j: int) -> dict:
    i, top, left = self._index[j]
    example = dict(self._example(i))
    example['image'] = np.asarray(example['image'])[top:top + self._size, left:left + self._size]
    return example


def config_source(config: ml_collections.ConfigDict, split: str):
  """The random-access source of `split` that `config.data` describes (tiled by data.tile_to)."""
  c = config.data
  source = sources.get_source(c.name, split, c.data_dir, download=c.download)
  return source if c.get('tile_to') is None else Tiles(source, c.tile_to)


class _Rows:
  """Random access to the rows of a dict of equally long arrays."""

  def __init__(self, arrays: dict[str, np.ndarray]):
    self._arrays = arrays

  def __len__(self) -> int:
    return len(next(iter(self._arrays.values())))

  def __getitem__(self, i: int) -> dict:
    return {k: v[i] for k, v in self._arrays.items()}


class InputPipeline:
  """Batches for training: `pipeline[k]` is this process's part of global batch k.

  Args:
    source: random-access examples (`len`, `__getitem__`), e.g. `sources.get_source`.
    global_batch_size: B, over all processes; must divide by `process_count`.
    seed: data order seed.
    preprocess_fn: example -> example of numpy arrays (a `Preprocess` when `cache`).
    process_index, process_count: this host's place among the hosts.
    num_threads, prefetch_batches: host-side parallelism of `iterate`.
    cache: hold the preprocessed split in host memory (for small data sets).
  """

  def __init__(self, source, *, global_batch_size: int, seed: int,
               preprocess_fn: Callable[[dict], dict], process_index: int = 0,
               process_count: int = 1, num_threads: int = 2, prefetch_batches: int = 4,
               cache: bool = False):
    if global_batch_size % process_count:
      raise ValueError(f'data.batch_size={global_batch_size} does not divide by the '
                       f'{process_count} processes; use a multiple of {process_count}.')
    if len(source) == 0:
      raise ValueError('The data source is empty.')
    self.global_batch_size = global_batch_size
    self.local_batch_size = global_batch_size // process_count
    self._offset = process_index * self.local_batch_size
    if cache:  # Small sets: preprocess once, then every batch is a cheap gather.
      examples = grain.MapDataset.source(_Rows(read_split(source, preprocess_fn)))
    else:
      examples = grain.MapDataset.source(source).map(preprocess_fn)
    self._examples = examples.seed(seed).shuffle().repeat(None)
    self._threads = num_threads
    self._prefetch = prefetch_batches

  def __getitem__(self, step: int) -> dict:
    """This process's slice of global batch `step`: dict of numpy [B_local, ...]."""
    start = step * self.global_batch_size + self._offset
    return _stack([self._examples[start + j] for j in range(self.local_batch_size)])

  def iterate(self, start_step: int = 0) -> Iterator[dict]:
    """Batches start_step, start_step+1, ... assembled ahead of use by host threads."""
    steps = grain.MapDataset.range(start_step, np.iinfo(np.int64).max).map(self.__getitem__)
    return iter(steps.to_iter_dataset(grain.ReadOptions(num_threads=self._threads,
                                                          prefetch_buffer_size=self._prefetch)))


def load_split(config: ml_collections.ConfigDict, split: str,
               max_examples: int | None = None) -> dict[str, np.ndarray]:
  """A whole split, preprocessed, in source order: for evaluation and metrics.

  Returns:
    {'image': float32 [N, H, W, C] in [-1, 1], 'label': int32 [N] (if labelled)}.
  """
  if config.data.name in VIEWS:
    arrays = _read_view(config, split)
    return {k: v[:max_examples] for k, v in arrays.items()}
  return read_split(config_source(config, split), make_preprocess(config), max_examples)


# Views: a data set with fields added to its preprocessed arrays by a stage, on the same
# splits. name -> the data set it views. `mnist5k_captions`: genjax.data.captions.add_captions.
VIEWS = {'mnist5k_captions': 'mnist5k'}


def _read_view(config: ml_collections.ConfigDict, split: str) -> dict[str, np.ndarray]:
  """A view's whole split: the viewed set's arrays, then the stage (it may read the train split)."""
  c = config.data
  return _view_split(c.name, split, c.train_split, c.data_dir, c.download,
                     make_preprocess(config))


@functools.lru_cache(maxsize=8)  # Evaluation reads the same splits again: stage them once.
def _view_split(name: str, split: str, train_split: str, data_dir, download: bool,
                preprocess: Preprocess) -> dict[str, np.ndarray]:
  from genjax.data import captions  # pylint: disable=g-import-not-at-top  # Only views need it.

  def read(s):
    return read_split(sources.get_source(VIEWS[name], s, data_dir, download=download), preprocess)
  train = read(train_split)
  return captions.add_captions(train if split == train_split else read(split), train)


def make_train_pipeline(config: ml_collections.ConfigDict, process_index: int = 0,
                        process_count: int = 1) -> InputPipeline:
  """The training pipeline described by `config.data` (see `InputPipeline`)."""
  if config.data.name in VIEWS:  # Already preprocessed, in memory.
    source, preprocess, cache = _Rows(_read_view(config, config.data.train_split)), _identity, False
  else:
    source = config_source(config, config.data.train_split)
    preprocess, cache = make_preprocess(config), config.data.cache
  return InputPipeline(source, global_batch_size=config.data.batch_size, seed=config.seed,
                       preprocess_fn=preprocess, process_index=process_index,
                       process_count=process_count, num_threads=config.data.num_threads,
                       prefetch_batches=config.data.prefetch_batches, cache=cache)


def _identity(example: dict) -> dict:
  return example


def batch_spec(pipeline: InputPipeline) -> dict[str, Any]:
  """Global shapes and dtypes of one batch: {'image': ShapeDtypeStruct [B, H, W, C], ...}."""
  one = _stack([pipeline._examples[0]])  # One example: a huge batch size must not be read here.
  return {k: jax.ShapeDtypeStruct((pipeline.global_batch_size,) + v.shape[1:], v.dtype)
          for k, v in one.items()}
