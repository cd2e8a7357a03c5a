"""Converts pytorch-fid's InceptionV3 weights (.pth) to genjax's .npz, without torch.

    genjax convert-inception \
        --input pt_inception-2015-12-05-6726825d.pth --output inception_fid.npz

A .pth state_dict is a pickle whose tensors point at raw storages: either a
zip (torch >= 1.6: <name>/data.pkl plus <name>/data/<key>) or the legacy
stream (magic number, protocol, sys info, the pickle, the storage keys, then
each storage as an int64 element count and its bytes). Both are read here by
a restricted unpickler that knows only the few globals a state_dict uses
(OrderedDict, torch._utils._rebuild_tensor[_v2], _rebuild_parameter and the
storage classes) and refuses everything else, so no code from the file runs.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from genjax.metrics import inception_weights, weights_file

_STORAGE_DTYPES = {
    'DoubleStorage': np.float64, 'FloatStorage': np.float32, 'HalfStorage': np.float16,
    'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


class _StorageType:
  """Stands in for torch.FloatStorage & co.: only the dtype matters."""

  def __init__(self, name):
    self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage:
  """A storage named in the pickle; its bytes are attached once read."""

  def __init__(self, dtype, numel):
    self.dtype, self.numel, self.array = dtype, numel, None


class _Tensor:
  """A strided view of a storage, materialised after every storage is read."""

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

  def numpy(self) -> np.ndarray:
    flat = self.storage.array
    if not self.size:
      return flat[self.offset].copy()
    itemsize = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                           strides=tuple(s * itemsize for s in self.stride))
    return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  del unused  # requires_grad, backward_hooks, metadata
  return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
  del unused
  return data


_GLOBALS = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
  """Unpickles a state_dict, resolving storages through `storages` (key -> _Storage)."""

  def __init__(self, file, storages):
    super().__init__(file)
    self.storages = storages

  def find_class(self, module, name):
    if (module, name) in _GLOBALS:
      return _GLOBALS[(module, name)]
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _StorageType(name)
    raise pickle.UnpicklingError(
        f'{module}.{name} is not part of a plain state_dict; refusing to load it.')

  def persistent_load(self, pid):
    # zip: ('storage', type, key, location, numel); legacy adds view_metadata.
    if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
      raise pickle.UnpicklingError(f'Unsupported persistent id {pid!r}.')
    storage_type, key, _, numel = pid[1:5]
    if len(pid) > 5 and pid[5] is not None:
      raise pickle.UnpicklingError('Storage views (pre-2018 .pth files) are not supported.')
    if key not in self.storages:
      self.storages[key] = _Storage(storage_type.dtype, numel)
    return self.storages[key]


def _materialise(obj):
  if isinstance(obj, _Tensor):
    return obj.numpy()
  if isinstance(obj, dict):
    return {k: _materialise(v) for k, v in obj.items()}
  raise ValueError(f'Expected a state_dict of tensors, found {type(obj).__name__}.')


def _read_zip(path):
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    pkl = [n for n in names if n.endswith('/data.pkl') or n == 'data.pkl']
    if len(pkl) != 1:
      raise ValueError(f'{path}: a torch zip archive holds one data.pkl; found {pkl}.')
    prefix = pkl[0][:-len('data.pkl')]
    byteorder = z.read(prefix + 'byteorder').decode() if prefix + 'byteorder' in names else 'little'
    storages = {}
    obj = _Unpickler(io.BytesIO(z.read(pkl[0])), storages).load()
    for key, storage in storages.items():
      dtype = storage.dtype.newbyteorder('<' if byteorder == 'little' else '>')
      raw = np.frombuffer(z.read(f'{prefix}data/{key}'), dtype)
      storage.array = raw[:storage.numel].astype(storage.dtype)
  return obj


def _read_legacy(path):
  with open(path, 'rb') as f:
    try:
      magic = pickle.load(f)
    except Exception:  # pylint: disable=broad-except
      magic = None
    if magic != _LEGACY_MAGIC:
      raise ValueError(f'{path} is neither a torch zip archive nor a legacy torch file.')
    pickle.load(f)  # protocol version
    pickle.load(f)  # sys info
    storages = {}
    obj = _Unpickler(f, storages).load()
    for key in pickle.load(f):
      (numel,) = struct.unpack('<q', f.read(8))
      storage = storages[key]
      storage.array = np.frombuffer(f.read(numel * storage.dtype.itemsize), storage.dtype)
  return obj


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a PyTorch state_dict file (zip or legacy format) into name -> numpy array, without torch."""
  obj = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
  return _materialise(obj)


def convert(input_path: str, output_path: str, check_hash: bool = True) -> str:
  """pytorch-fid's .pth -> checked .npz (+ .json); returns the .npz's sha256.

  Args:
    input_path: pt_inception-2015-12-05-6726825d.pth.
    output_path: the .npz to write; `<output_path>.json` records the source and hashes.
    check_hash: refuse an input whose sha256 does not start with
      `inception_weights.SHA256_PREFIX` (pytorch-fid's file).

  Raises:
    ValueError: the input's hash is not pytorch-fid's, the file is not a torch
      file, or its arrays are not the FID InceptionV3's.
    pickle.UnpicklingError: the pickle holds more than tensors.
  """
  source_sha256 = weights_file.sha256(input_path)
  if check_hash and not source_sha256.startswith(inception_weights.SHA256_PREFIX):
    raise ValueError(f'{input_path} has sha256 {source_sha256}, which does not start with '
                     f'{inception_weights.SHA256_PREFIX} (the hash in the file name of '
                     f'{inception_weights.WEIGHTS_URL}). Download it again, or pass --no_check_hash.')
  variables = inception_weights.variables_from_state_dict(read_state_dict(input_path))
  info = {'source': os.path.basename(input_path), 'source_sha256': source_sha256,
          'source_url': inception_weights.WEIGHTS_URL,
          'converted_by': 'genjax convert-inception'}
  return inception_weights.save_variables(variables, output_path, info)

