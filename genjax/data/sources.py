"""Random-access data sources: bundled sets prepared offline, or any TFDS data set.

Every source is a `tfds.data_source` over array_record files, so reading needs
no TensorFlow. Bundled sets (`mnist5k`, `digits8x8`, `photos`, `photos_plus`) are prepared on
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

from genjax.core import file_manifest
from genjax.data import bundled


class DataError(ValueError):
  """A data set that cannot be found, prepared or read."""


MANIFEST = file_manifest.NAME  # {file name: [size, sha256]}, written when genjax prepares a set.
_HASH_LIMIT_BYTES = 1 << 30  # Larger prepared sets are checked by size only (hashing is slow).


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
  try:
    os.makedirs(data_dir, exist_ok=True)
    lock = open(os.path.join(data_dir, f'.{name}.lock'), 'w')  # pylint: disable=consider-using-with
  except OSError as e:
    raise DataError(f'The data dir {data_dir} is not writable ({e.strerror}), and {name!r} must '
                    'be prepared there first: point --config.data.data_dir (or $TFDS_DATA_DIR) '
                    'at a writable directory.') from e
  with lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def _write_manifest(directory: str) -> None:
  """Records the size and sha256 of every data file genjax just prepared in `directory`."""
  if not os.path.isdir(directory):  # Nothing written there (e.g. tfds.testing.mock_data).
    return
  file_manifest.write(directory, [n for n in os.listdir(directory) if '.array_record' in n])


def _damaged_file(directory: str, split: str) -> tuple[str, str] | None:
  """(file, what is wrong) for the first of `split`'s files that differs from the manifest.

  Sets prepared before manifests existed (or by TFDS elsewhere) have none: not checked here.
  """
  try:
    manifest = file_manifest.read(directory)
  except (OSError, ValueError) as e:
    return os.path.join(directory, MANIFEST), f'unreadable: {e}'
  if manifest is None:
    return None
  mine = {n: v for n, v in manifest.items() if f'-{split}.array_record' in n}
  check_hash = sum(size for size, _ in mine.values()) <= _HASH_LIMIT_BYTES
  difference = file_manifest.first_difference(directory, mine, check_hash)
  return (os.path.join(directory, difference[0]), difference[1]) if difference else None


def _check_online(host: str = 'storage.googleapis.com', timeout_s: float = 5.0) -> None:
  """Fails in seconds on an offline machine, where TFDS would retry for minutes."""
  try:
    socket.create_connection((host, 443), timeout=timeout_s).close()
  except OSError as e:
    raise ConnectionError(f'cannot reach {host}:443 ({e})') from e


def get_builder(name: str, data_dir: str | None = None, *, download: bool = False):
  """Returns a prepared TFDS builder for `name`, preparing bundled sets on first use.

  Args:
    name: a bundled name (`mnist5k`, `digits8x8`, `photos`, `photos_plus`) or a TFDS catalog name.
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
          _write_manifest(builder.data_dir)
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
        _write_manifest(builder.data_dir)
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
    raise DataError(f'{name!r} has no split {split!r} (config.data.train_split, '
                    f'data.eval_split or eval.split); accepted: {sorted(splits)}.')

  def corrupt(why: str, path: str | None = None) -> DataError:
    files = path or os.path.join(builder.data_dir, f'{builder.name}-{split}.array_record-*')
    if name in bundled.BUNDLED:
      rebuild = (f'python -c "from genjax import data; data.get_builder({name!r}, '
                 f'{os.path.dirname(os.path.dirname(builder.data_dir))!r})"')
    else:
      rebuild = 'rerun with --config.data.download=True on an online machine'
    return DataError(f'The prepared file {files} of {name!r} ({split}) is corrupt or incomplete '
                     f'({why}). Delete that folder and rebuild it: rm -rf {builder.data_dir} '
                     f'&& {rebuild} (or rerun your command, which does it).')

  damaged = _damaged_file(builder.data_dir, split.split('[')[0]) if plain else None
  if damaged:
    raise corrupt(damaged[1], damaged[0])
  try:
    source = builder.as_data_source(split=split)
    found = len(source)
    _ = source[0], source[found - 1]  # Touch both ends: truncation shows here.
  except Exception as e:  # array_record and TFDS raise a variety of types.
    raise corrupt(f'{type(e).__name__}: {e}') from e
  if plain and split in splits and found != splits[split].num_examples:
    raise corrupt(f'{found} records, {splits[split].num_examples} expected')
  return source
