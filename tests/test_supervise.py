"""The supervisor of a multi-process run: when it steps in, what it names, what it passes on."""
import os
import signal
import subprocess
import sys
import time

import pytest

from genjax.tools import supervise

# What jaxlib 0.10.2 printed before it aborted the survivor of a kill -9 of process 1 (the
# test_faults run of 2026-12-06, abridged).
ABORT = ('F1206 19:46:27.424394 6427 client.h:80] Terminating process because the JAX '
         'distributed service detected fatal errors. This most likely indicates that another '
         'task died; see the other task logs for more details. Disable Python buffering, i.e. '
         '`python -u`, to be sure to see all the previous output. absl::Status: UNAVAILABLE: '
         'The following tasks are unhealthy (stopped sending heartbeats):\n1\nThe tasks have '
         'crashed. Check the task logs for an earlier error, or scheduler events (e.g. '
         'preemption, eviction) to debug further.\n\nRPC: /xla.coordination.CoordinationService'
         '/PollForError\n*** Check failure stack trace: ***\n')


@pytest.mark.parametrize('argv, expected', [
    (['genjax', 'train', '--num_processes=2', '--process_id=0'], True),
    (['genjax', 'train', '--num_processes', '2'], True),
    (['genjax', 'train', '--coordinator_address=localhost:1234'], True),
    (['genjax', 'train', '--distributed'], True),
    (['genjax', 'train', '--num_processes=1'], False),
    (['genjax', 'train', '--config=c.py'], False),
    (['genjax', 'train', '--num_processes=two'], False),  # absl refuses it itself.
])
def test_wanted_for_one_process_of_several_only(argv, expected):
  assert supervise.wanted(argv, environ={}) is expected
  assert not supervise.wanted(argv, environ={supervise.ENV: '1'})  # Never twice.


def test_lost_processes_read_from_the_runtimes_abort_message():
  assert supervise.lost_processes(ABORT, me=0)[0] == [1]
  older = ABORT.replace('heartbeats):\n1\n', 'heartbeats):\n/job:jax_worker/replica:0/task:1\n'
                                              '/job:jax_worker/replica:0/task:2\n')
  assert supervise.lost_processes(older, me=0)[0] == [1, 2]
  assert supervise.lost_processes('Traceback ...\nheartbeats):\n1\nThe tasks have crashed',
                                  me=0) == ([], '')  # Not the runtime's abort.
  # The coordinator gone: nobody is left to name it, so a survivor names process 0.
  gone = ABORT.split('absl::Status')[0] + 'absl::Status: UNAVAILABLE: failed to connect'
  assert supervise.lost_processes(gone, me=1) == ([0], 'the coordination service it runs is '
                                                      'unreachable')
  assert supervise.lost_processes(gone, me=0) == ([], '')


def _python(code: str) -> list[str]:
  return [sys.executable, '-c', code]


def test_an_aborted_child_is_named_and_other_ends_are_passed_on(capfd):
  argv = ['genjax', 'train', '--num_processes=2', '--process_id=0']
  aborted = _python(f'import os, sys; sys.stderr.write({ABORT!r}); sys.stderr.flush(); '
                    'os.abort()')
  assert supervise.run(argv, aborted) == supervise.LOST_EXIT
  err = capfd.readouterr().err
  assert 'Terminating process' in err  # The child's own words pass through.
  assert err.rstrip().splitlines()[-1].startswith(
      'genjax: LostProcess: process 1 of 2 stopped responding')
  assert supervise.run(['genjax', 'train', '--distributed'], aborted) == supervise.LOST_EXIT
  assert 'process 1 stopped responding' in capfd.readouterr().err  # Auto-detected: no count.
  assert supervise.run(argv, _python('import sys; sys.exit(2)')) == 2
  assert supervise.run(argv, _python('import os; os.kill(os.getpid(), 15)')) == 128 + 15
  # An abort that is not the runtime's is passed on as it is.
  assert supervise.run(argv, _python('import os; os.abort()')) == 128 + signal.SIGABRT


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='PR_SET_PDEATHSIG is Linux')
def test_the_child_dies_with_a_killed_supervisor(tmp_path):
  pid_file = tmp_path / 'pid'
  child = f'import os, time; open({str(pid_file)!r}, "w").write(str(os.getpid())); time.sleep(120)'
  supervisor = subprocess.Popen(_python(
      f'from genjax.tools import supervise; supervise.run(["genjax"], {_python(child)!r})'))
  deadline = time.monotonic() + 60
  while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
    time.sleep(0.1)
  pid = int(pid_file.read_text())
  supervisor.kill()
  supervisor.wait()
  deadline, alive = time.monotonic() + 10, True
  while alive and time.monotonic() < deadline:
    try:
      os.kill(pid, 0)
      time.sleep(0.1)
    except ProcessLookupError:
      alive = False
  if alive:
    os.kill(pid, signal.SIGKILL)
  assert not alive, 'the child outlived its killed supervisor'
