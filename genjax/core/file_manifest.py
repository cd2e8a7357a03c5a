"""Size-and-sha256 manifests of files genjax wrote, so truncation and corruption are named.

Checkpoints (one manifest per step) and prepared data sets (one per set) write
`{relative path: [size in bytes, sha256]}` as JSON, atomically, after their files;
reading compares the files with it before trusting them.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Iterable

NAME = 'genjax_files.json'


def sha256(path: str) -> str:
  """Hex sha256 of a file, read in 1 MiB blocks."""
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


def write(directory: str, relative_paths: Iterable[str]) -> None:
  """Writes `directory`/NAME for the files at `relative_paths` (atomically: tmp, then rename)."""
  manifest = {rel: [os.path.getsize(os.path.join(directory, rel)), sha256(os.path.join(directory, rel))]
              for rel in sorted(relative_paths)}
  tmp = os.path.join(directory, NAME + '.tmp')
  with open(tmp, 'w') as f:
    json.dump(manifest, f)
  os.replace(tmp, os.path.join(directory, NAME))


def read(directory: str) -> dict[str, list] | None:
  """`directory`'s manifest, None if it has none; OSError / ValueError if it is unreadable."""
  try:
    with open(os.path.join(directory, NAME)) as f:
      return json.load(f)
  except FileNotFoundError:
    return None


def first_difference(directory: str, entries: dict[str, list],
                     check_hash: bool = True) -> tuple[str, str] | None:
  """(relative path, what differs) for the first file unlike its manifest entry, else None.

  Args:
    directory: where the relative paths are.
    entries: {relative path: [size, sha256]}, all or part of a manifest.
    check_hash: also compare sha256 (sizes alone catch truncation, cheaply).

  Returns:
    None, or a path and what differs: 'missing', 'N bytes, M when written (truncated?)' or
    'sha256 differs from when it was written'; callers put them in their messages as they are.
  """
  for rel, (size, digest) in sorted(entries.items()):
    full = os.path.join(directory, rel)
    if not os.path.exists(full):
      return rel, 'missing'
    if os.path.getsize(full) != size:
      return rel, f'{os.path.getsize(full)} bytes, {size} when written (truncated?)'
    if check_hash and sha256(full) != digest:
      return rel, 'sha256 differs from when it was written'
  return None
