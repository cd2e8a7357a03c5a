"""genjax.core.malloc: with freed memory kept, large buffers allocated again, from the main
thread or from worker threads (as XLA:CPU's), do not page-fault."""
import ctypes
import ctypes.util
import os
import platform
import resource
import subprocess
import sys
import threading

import pytest

from genjax.core import malloc

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


_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_malloc import faults_per_cycle
from genjax.core import malloc
if {keep}:
  assert malloc.keep_freed_memory()
print(faults_per_cycle({size}, threads={threads}, blocks={blocks}))
"""


def _faults_in_fresh_process(keep: bool, size: int, threads: int, blocks: int) -> float:
  """faults_per_cycle in a new Python process: a long-lived process may hold free heap space
  from earlier work (which hides glibc's defaults), and a thread keeps the arena it first
  allocated from (which hides a later keep_freed_memory)."""
  script = _SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)), keep=keep, size=size,
                          threads=threads, blocks=blocks)
  out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, check=True)
  return float(out.stdout.split()[-1])


@glibc_only
@pytest.mark.parametrize('keep', [False, True])
@pytest.mark.parametrize('threads,blocks', [(0, 1), (2, 4)])
def test_kept_memory_is_reused_without_page_faults(keep, threads, blocks):
  """Main thread, one 64 MiB block (above glibc's largest dynamic mmap threshold, 32 MiB): by
  default a fresh mmap each time. Worker threads, four 24 MiB blocks at once (more than one
  64 MiB heap of a thread's arena, whose extra heaps glibc unmaps once empty): by default
  fresh pages each time, whatever the mmap and trim thresholds. Kept: (almost) no faults."""
  size = (64 if threads == 0 else 24) * 2 ** 20
  faults = _faults_in_fresh_process(keep, size, threads, blocks)
  if keep:
    assert faults < 64, faults
  else:
    assert faults > size // resource.getpagesize() / 2, faults  # About a block's pages or more.


def test_other_c_libraries_are_left_alone(monkeypatch):
  monkeypatch.setattr(malloc.platform, 'libc_ver', lambda: ('', ''))
  assert malloc.keep_freed_memory() is False


@glibc_only
def test_settings_are_accepted_both_ways():
  try:
    assert malloc.keep_freed_memory(True)
  finally:
    assert malloc.keep_freed_memory(False)  # glibc's defaults back, for the other tests.
