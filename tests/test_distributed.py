"""Multi-process training through jax.distributed on localhost (CPU collectives via gloo).

A 2-process x 2-device run must train exactly what a 1-process x 4-device run
trains: the pipeline gives each process its slice of the same global batch.
"""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

from conftest import REPO
import subprocesses

STEPS = 3


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _command(workdir, *extra):
  return [sys.executable, '-m', 'genjax.main', 'train',
          '--config=configs/classifier_mnist.py:smoke', f'--workdir={workdir}',
          f'--config.train.num_steps={STEPS}', '--config.train.eval_every_steps=100',
          '--config.train.images_every_steps=100', *extra]


def _env(devices: int) -> dict:
  return subprocesses.env(devices)


def _params(workdir):
  """The checkpoint's params on this process's one device, whatever topology saved them."""
  path = os.path.join(workdir, 'checkpoints', str(STEPS), 'default')
  checkpointer = ocp.StandardCheckpointer()
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        checkpointer.metadata(path).item_metadata.tree)
  return jax.tree.map(np.asarray, checkpointer.restore(path, target)['params'])


def test_two_processes_equal_one_process_with_as_many_devices(tmp_path):
  single = subprocess.run(_command(tmp_path / 'single'), cwd=REPO, env=_env(4),
                          capture_output=True, text=True, timeout=300)
  assert single.returncode == 0, single.stderr[-3000:]

  port = _free_port()
  procs = [subprocess.Popen(
      _command(tmp_path / 'multi', f'--coordinator_address=localhost:{port}',
               '--num_processes=2', f'--process_id={i}'),
      cwd=REPO, env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert 'step 3/3' in outs[0][0]  # Process 0 reports; process 1 stays quiet.
  assert 'step 3/3' not in outs[1][0]

  for a, b in zip(jax.tree.leaves(_params(tmp_path / 'single')),
                  jax.tree.leaves(_params(tmp_path / 'multi'))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
