"""A process of a multi-process run, under a supervisor that can name a lost peer.

When jax.distributed's coordination service declares a peer dead (no heartbeat for its
timeout), jaxlib terminates every surviving process from C++ (SIGABRT) before any more of
its Python runs, so the process itself cannot say which peer was lost: it dies with the
runtime's message on stderr. `genjax` therefore runs each process of a multi-process run
(`--num_processes` > 1 or `--coordinator_address` or `--distributed`) as the child of a thin supervisor, as
torchrun's agent does: the child does all the work; the supervisor passes its output
through, forwards SIGTERM and SIGINT (a preempted job still checkpoints), takes the child
down with it if it is killed itself (Linux: PR_SET_PDEATHSIG), and, if the runtime aborted
the child, reads the lost task from the runtime's last words and prints one line naming
it (exit status 3). Any other end of the child is passed on as its exit status.
"""
from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading

# Set in the child's environment: a supervised process does not supervise again.
ENV = 'GENJAX_SUPERVISED'
LOST_EXIT = 3  # The exit status of a process that stopped because a peer was lost.
# jaxlib's message when it terminates a process for the coordination service's error.
_RUNTIME_ABORT = 'JAX distributed service detected fatal errors'
# Its status lists the unhealthy tasks one per line (jaxlib 0.10.2: bare ids, "1"; older:
# "/job:jax_worker/replica:0/task:1") until "The tasks have crashed".
_UNHEALTHY = re.compile(r'stopped sending heartbeats\):\s*\n(.*?)The tasks have crashed', re.S)


def _flag(argv: list[str], name: str) -> str | None:
  """The value of --name=V or --name V in argv (absl's two spellings), or None."""
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      return arg.split('=', 1)[1]
    if arg == f'--{name}' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _int_flag(argv: list[str], name: str) -> int | None:
  """The integer value of --name in argv, or None (absent, or not an integer: absl refuses it
  with its own message)."""
  value = _flag(argv, name)
  return int(value) if value is not None and value.isdigit() else None


def wanted(argv: list[str], environ=os.environ) -> bool:
  """Whether `genjax ARGV` is one process of several and not yet under a supervisor."""
  if environ.get(ENV):
    return False
  several = (_int_flag(argv, 'num_processes') or 1) > 1
  return several or _flag(argv, 'coordinator_address') is not None or '--distributed' in argv


def lost_processes(stderr: str, me: int | None) -> tuple[list[int], str]:
  """The peers named by the runtime's abort message in `stderr`, and why; ([], '') if the
  runtime did not abort the process.

  The message names the unhealthy tasks (task N is process N). When the coordinator itself
  (process 0) is gone, the service that would name it is gone too: a survivor other than
  process 0 then reports process 0.
  """
  if _RUNTIME_ABORT not in stderr:
    return [], ''
  named = set()
  for block in _UNHEALTHY.findall(stderr):
    for line in block.splitlines():
      task = re.fullmatch(r'\s*(?:/job:[\w-]+/replica:\d+/task:)?(\d+)\s*', line)
      if task:
        named.add(int(task.group(1)))
  named.discard(me)
  if named:
    return sorted(named), 'no heartbeat within the coordination service\'s timeout'
  if me not in (None, 0):
    return [0], 'the coordination service it runs is unreachable'
  return [], ''


def lost_message(lost: list[int], count: int | None, me: int | None, cause: str) -> str:
  """The one line that says which peer was lost and what to do."""
  of = f' of {count}' if count else ''
  this = 'this process' if me is None else f'process {me}'
  return (f'genjax: LostProcess: process {", ".join(map(str, lost))}{of} stopped responding '
          f'({cause}); {this} stops too. Restart every process with the same command to '
          'resume from the last checkpoint.')


def _die_with_parent() -> None:
  """In the child, before exec: SIGKILL when the supervisor dies (Linux; elsewhere nothing)."""
  try:
    import ctypes  # pylint: disable=g-import-not-at-top
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1.
  except (OSError, AttributeError):
    pass


def run(argv: list[str], command: list[str] | None = None) -> int:
  """Runs `genjax ARGV` (or `command`) as a supervised child; returns the exit status to end with.

  Returns:
    LOST_EXIT if the runtime aborted the child for a lost peer (after printing which),
    else the child's status (128 + N for a child ended by signal N).
  """
  env = dict(os.environ, **{ENV: '1'})
  command = command or [sys.executable, '-m', 'genjax.main', *argv[1:]]
  child = subprocess.Popen(command, env=env,
                           stderr=subprocess.PIPE, text=True, errors='replace',
                           preexec_fn=_die_with_parent)
  forward = lambda signum, frame: child.send_signal(signum)
  for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, forward)
  tail = collections.deque(maxlen=400)

  def pass_through():
    for line in child.stderr:
      sys.stderr.write(line)
      sys.stderr.flush()
      tail.append(line)
  reader = threading.Thread(target=pass_through, daemon=True)
  reader.start()
  code = child.wait()
  reader.join(timeout=10)  # A grandchild could hold stderr open; the abort message came first.
  me, count = _int_flag(argv, 'process_id'), _int_flag(argv, 'num_processes')
  lost, cause = lost_processes(''.join(tail), me) if code != 0 else ([], '')
  if lost:
    print(lost_message(lost, count, me, cause), file=sys.stderr, flush=True)
    return LOST_EXIT
  return 128 - code if code < 0 else code
