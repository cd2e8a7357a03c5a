"""Random-access data sources: bundled sets prepared offline, or any TFDS data set.

Every source is a `tfds.data_source` over array_record files, so reading needs
no TensorFlow. Bundled sets (`mnist5k`, `digits8x8`, `photos`) are prepared on
first use from packages; other TFDS names must be prepared already, or
downloaded with `data.download=True` on a machine that is online.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from typing import Any

import tensorflow_datasets as tfds

from genjax.data import bundled


class DataError(ValueError):
  """A data set that cannot be found, prepared or read."""


def _alternatives() -> str:
  return f'bundled offline data sets: {", ".join(sorted(bundled.BUNDLED))}'


def resolve_data_dir(data_dir: str | None) -> str:
  """The TFDS data dir: the config's, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
  path = data_dir or os.environ.get('TFDS_DATA_DIR') or os.path.expanduser('~/tensorflow_datasets')
  if os.path.exists(path) and not os.path.isdir(path):
    raise DataError(f'data.data_dir {path!r} exists but is not a directory; give a directory '
                    '(it is created when missing).')
  return path


@contextlib.contextmanager
def _exclusive(data_dir: str, name: str):
  """Serialises preparation between processes sharing a data dir (pytest workers, hosts)."""
  os.makedirs(data_dir, exist_ok=True)
  with open(os.path.join(data_dir, f'.{name}.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def _check_online(host: str = 'storage.googleapis.com', timeout_s: float = 5.0) -> None:
  """Fails in seconds on an offline machine, where TFDS would retry for minutes."""
  try:
    socket.create_connection((host, 443), timeout=timeout_s).close()
  except OSError as e:
    raise ConnectionError(f'cannot reach {host}:443 ({e})') from e


def get_builder(name: str, data_dir: str | None = None, *, download: bool = False):
  """Returns a prepared TFDS builder for `name`, preparing bundled sets on first use.

  Args:
    name: a bundled name (`mnist5k`, `digits8x8`, `photos`) or a TFDS catalog name.
    data_dir: the TFDS data dir (see `resolve_data_dir`).
    download: allow TFDS to download and prepare a non-bundled data set.

  Raises:
    DataError: unknown name, not prepared (and download not allowed), download
      failure (such as an offline machine), or corrupt files.
  """
  data_dir = resolve_data_dir(data_dir)
  if name in bundled.BUNDLED:
    builder = bundled.BUNDLED[name](data_dir=data_dir, file_format='array_record')
    if not builder.is_prepared():
      with _exclusive(data_dir, name):
        if not builder.is_prepared():
          tfds.disable_progress_bar()
          builder.download_and_prepare()
    return builder

  if name.split(':')[0].split('/')[0] not in tfds.list_builders(with_community_datasets=False):
    raise DataError(f'Unknown data set {name!r}: it is neither bundled nor in the TFDS catalog. '
                    f'Accepted: the {_alternatives()}, or a TFDS catalog name such as mnist or cifar10.')
  try:
    builder = tfds.builder(name, data_dir=data_dir, file_format='array_record')
  except Exception as e:  # TFDS raises many types for bad names/versions.
    raise DataError(f'TFDS cannot build {name!r} in {data_dir}: {e}. The {_alternatives()} '
                    'work offline.') from e
  if not builder.is_prepared():
    if not download:
      raise DataError(
          f'{name!r} is not prepared in {data_dir}. On an online machine rerun with '
          f'--config.data.download=True (TFDS downloads and prepares it as array_record), or '
          f'point --config.data.data_dir at a prepared copy. Offline, use one of the {_alternatives()}.')
    try:
      _check_online()
      with _exclusive(data_dir, builder.name):
        builder.download_and_prepare(file_format='array_record')
    except Exception as e:  # Network, missing TF for image encoding, quota, ...
      raise DataError(
          f'Downloading {name!r} into {data_dir} failed ({type(e).__name__}: {e}). This machine may '
          f'be offline; the {_alternatives()} need no network.') from e
  return builder


def get_source(name: str, split: str, data_dir: str | None = None, *, download: bool = False) -> Any:
  """Random-access source of one split, checked for corruption.

  Args:
    name: data set name (see `get_builder`).
    split: a split name of that data set (`train`, `test`, ...).
    data_dir: TFDS data dir.
    download: see `get_builder`.

  Returns:
    A sequence: `len(source)` examples, `source[i]` a dict of numpy arrays
    (`image` uint8 [H, W, C], `label` int, ...).
  """
  builder = get_builder(name, data_dir, download=download)
  splits = builder.info.splits
  plain = '[' not in split and '+' not in split  # 'train[:80%]' etc. are TFDS slicing syntax.
  if splits and plain and split not in splits:
    raise DataError(f'{name!r} has no split {split!r}; accepted: {sorted(splits)}.')

  def corrupt(why: str) -> DataError:
    return DataError(f'The prepared files of {name!r} ({split}) in {builder.data_dir} are corrupt '
                     f'or incomplete ({why}). Delete that folder and rerun: bundled sets are '
                     'rebuilt from their packages, TFDS sets re-prepared.')

  try:
    source = builder.as_data_source(split=split)
    found = len(source)
    _ = source[0], source[found - 1]  # Touch both ends: truncation shows here.
  except Exception as e:  # array_record and TFDS raise a variety of types.
    raise corrupt(f'{type(e).__name__}: {e}') from e
  if plain and split in splits and found != splits[split].num_examples:
    raise corrupt(f'{found} records, {splits[split].num_examples} expected')
  return source
