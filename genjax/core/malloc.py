"""Keep freed memory in the process: glibc malloc settings that spare XLA:CPU page faults.

Why: XLA:CPU allocates an executable's temporaries on every call, from its worker threads.
glibc gives each such thread its own arena, a 64 MiB mmap-ed heap that it trims and unmaps
as blocks are freed, and serves large blocks with fresh `mmap`s it unmaps on free. So every
train step touches fresh pages, and faulting them in costs as much as the arithmetic: the
U-Net train step at batch 128 takes about 150,000 page faults with glibc's defaults and none
with freed memory kept. Train steps run 1.05-1.5x faster, e.g. the classifier 1.50x, the U-Net
1.11x (experiments/malloc/malloc_ab.py; figures in experiments/malloc/README.md).
`keep_freed_memory()` makes every thread allocate from the one main heap, raises the mmap and
trim thresholds, and so keeps freed blocks for reuse. The price is that the process keeps its
peak memory instead of returning it to the OS, which is what a training job does anyway, and
that threads share one arena's lock: XLA's multi-threaded compilation, which allocates many
small objects, takes 10-35% longer (U-Net train step 13.6-14.2 s -> 17.0-19.1 s), which a
training run of more than a few hundred steps earns back. Tests, compile-bound, do not use
it. It must run before XLA starts its threads: a thread stays with the arena it first
allocated from. `genjax` commands call it first thing (`--keep_freed_memory=false` opts out).
On other C libraries (macOS, musl) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt parameters (glibc <malloc.h>).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
M_ARENA_MAX = -8
# glibc's defaults (on 64-bit, up to 8 arenas per core), restored by keep_freed_memory(False).
_DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_MMAP_THRESHOLD: 128 * 1024, M_MMAP_MAX: 65536,
             M_ARENA_MAX: 8 * (os.cpu_count() or 1)}
_KEEP = {M_TRIM_THRESHOLD: 2 ** 31 - 1, M_MMAP_THRESHOLD: 2 ** 31 - 1, M_MMAP_MAX: 0,
         M_ARENA_MAX: 1}


def _libc():
  """glibc, or None on other C libraries."""
  if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
    return None
  return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')


def keep_freed_memory(enable: bool = True) -> bool:
  """Make glibc keep freed memory for reuse (enable) or restore its defaults (not enable).

  Keeping: threads created from now on share the main arena (M_ARENA_MAX = 1), allocations
  up to 2 GiB come from its heap, never from a fresh mmap (M_MMAP_THRESHOLD, M_MMAP_MAX),
  and the heap is not trimmed (M_TRIM_THRESHOLD). Restoring cannot take back arenas that
  threads already use.

  Returns:
    True if glibc accepted every setting; False on other C libraries, where nothing changes.
  """
  libc = _libc()
  if libc is None:
    return False
  settings = _KEEP if enable else _DEFAULTS
  return all(libc.mallopt(param, value) == 1 for param, value in settings.items())
