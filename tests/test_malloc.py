"""genjax.train.malloc: with freed memory kept, large buffers allocated again, from the main
thread or from worker threads (as XLA:CPU's), do not page-fault."""
import ctypes
import ctypes.util
import platform
import resource
import subprocess
import sys
import threading

import pytest

from genjax.train import malloc

glibc_only = pytest.mark.skipif(
    platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc', reason='glibc only')


def faults_per_cycle(size: int, threads: int = 0, cycles: int = 4, blocks: int = 1) -> float:
  """Minor page faults per cycle after a warm-up cycle. A cycle mallocs `blocks` blocks of
  `size` bytes, touches them and frees them; with threads > 0, it runs in `threads` new
  threads one after another."""
  libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
  libc.malloc.restype = ctypes.c_void_p
  libc.free.argtypes = [ctypes.c_void_p]

  def cycle():
    pointers = [libc.malloc(size) for _ in range(blocks)]
    for p in pointers:
      ctypes.memset(p, 1, size)
    for p in pointers:
      libc.free(p)

  def run():
    if not threads:
      cycle()
    for _ in range(threads):
      t = threading.Thread(target=cycle)
      t.start()
      t.join()

  run()
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(cycles):
    run()
  return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / cycles


_PAGES = 64 * 2 ** 20 // resource.getpagesize()


@glibc_only
def test_kept_memory_is_reused_without_page_faults():
  size = 64 * 2 ** 20  # Above glibc's largest dynamic mmap threshold (32 MiB).
  try:
    assert malloc.keep_freed_memory(False)
    # glibc's defaults: every cycle maps fresh pages (huge pages, where the kernel uses them,
    # fault fewer times, hence the margin).
    assert faults_per_cycle(size) > _PAGES / 1024
    assert malloc.keep_freed_memory(True)
    assert faults_per_cycle(size) < 64  # Reused: (almost) no faults at all.
  finally:
    malloc.keep_freed_memory(True)


_THREADED = """
import sys
sys.path.insert(0, {tests!r})
from test_malloc import faults_per_cycle
from genjax.train import malloc
if {keep}:
  assert malloc.keep_freed_memory()
# Four 24 MiB blocks at once: more than one 64 MiB heap of a thread's arena.
print(faults_per_cycle(24 * 2 ** 20, threads=2, blocks=4))
"""


@glibc_only
@pytest.mark.parametrize('keep', [False, True])
def test_worker_threads_reuse_kept_memory(keep):
  """Fresh processes (a thread keeps the arena it first allocated from). Worker threads' large
  blocks come from per-thread arenas, whose extra 64 MiB heaps glibc unmaps once empty, so
  they fault again every time, unless freed memory is kept (then: the main heap, kept)."""
  import os
  script = _THREADED.format(tests=os.path.dirname(os.path.abspath(__file__)), keep=keep)
  out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, check=True)
  faults = float(out.stdout.split()[-1])
  pages = 24 * 2 ** 20 // resource.getpagesize()
  if keep:
    assert faults < 64, faults
  else:
    assert faults > pages, faults  # At least a block's worth of fresh pages per cycle.


def test_other_c_libraries_are_left_alone(monkeypatch):
  monkeypatch.setattr(malloc.platform, 'libc_ver', lambda: ('', ''))
  assert malloc.keep_freed_memory() is False
