"""Parts of the loop against closed forms: EMA, schedules, mesh and batch checks, writers."""
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from genjax.core import optim, sharding, writers
from genjax.core.state import TrainState


def test_ema_matches_closed_form():
  tx = optax.sgd(1.0)
  state = TrainState.create(params={'w': jnp.zeros(())}, tx=tx, ema_decay=0.9, ema_warmup=False)
  for _ in range(3):
    state = state.apply_gradients({'w': -jnp.ones(())})  # w goes 1, 2, 3.
  # ema_n = 0.9 ema_{n-1} + 0.1 w_n
  want = 0.0
  for w in (1.0, 2.0, 3.0):
    want = 0.9 * want + 0.1 * w
  np.testing.assert_allclose(state.ema_params['w'], want, rtol=1e-6)
  assert int(state.step) == 3
  assert state.eval_params is state.ema_params


def test_ema_warmup_and_off():
  state = TrainState.create(params={'w': jnp.zeros(())}, tx=optax.sgd(1.0), ema_decay=0.999)
  state = state.apply_gradients({'w': -jnp.ones(())})
  # Step 0: decay min(0.999, 1/10) = 0.1, so ema = 0.9 * w.
  np.testing.assert_allclose(state.ema_params['w'], 0.9, rtol=1e-6)
  plain = TrainState.create(params={'w': jnp.zeros(())}, tx=optax.sgd(1.0))
  assert plain.ema_params is None and plain.eval_params is plain.params
  with pytest.raises(ValueError, match='ema_decay'):
    TrainState.create(params={}, tx=optax.sgd(1.0), ema_decay=1.0)


def _optim(**kw):
  from configs import base
  c = base.get_config().optim
  for k, v in kw.items():
    c[k] = v
  return c


def test_schedules():
  s = optim.make_schedule(_optim(schedule='warmup_cosine', lr=1.0, warmup_steps=10), 110)
  np.testing.assert_allclose([s(0), s(5), s(10), s(60), s(110)], [0, 0.5, 1.0, 0.5, 0.0], atol=1e-6)
  s = optim.make_schedule(_optim(schedule='linear', lr=2.0, warmup_steps=0, end_lr_factor=0.5), 100)
  np.testing.assert_allclose([s(0), s(50), s(100)], [2.0, 1.5, 1.0], atol=1e-6)
  s = optim.make_schedule(_optim(schedule='warmup_cosine', lr=1.0, warmup_steps=100), 2)
  assert np.isfinite([s(0), s(1), s(2)]).all()  # Smoke runs shorter than the warm-up.
  with pytest.raises(ValueError, match='accepted'):
    optim.make_schedule(_optim(schedule='nope'), 10)


def test_optimizer_clipping():
  tx = optim.make_optimizer(_optim(name='sgd', lr=1.0, momentum=0.0, grad_clip_norm=1.0), 10)
  params = {'w': jnp.zeros(2)}
  updates, _ = tx.update({'w': jnp.array([30.0, 40.0])}, tx.init(params), params)
  np.testing.assert_allclose(updates['w'], [-0.6, -0.8], rtol=1e-6)


def _mesh_config(**kw):
  return ml_collections.ConfigDict({'data': -1, 'fsdp': 1, 'num_devices': None, **kw})


def test_mesh_shapes_and_errors():
  assert dict(sharding.make_mesh(_mesh_config()).shape) == {'data': 8, 'fsdp': 1}
  assert dict(sharding.make_mesh(_mesh_config(fsdp=4)).shape) == {'data': 2, 'fsdp': 4}
  assert sharding.make_mesh(_mesh_config(num_devices=1)).size == 1
  with pytest.raises(ValueError, match='mesh.fsdp=3 must be >= 1 and divide the 8 devices'):
    sharding.make_mesh(_mesh_config(fsdp=3))
  with pytest.raises(ValueError, match='mesh.data=3 x mesh.fsdp=1 = 3 devices, but the run has 8'):
    sharding.make_mesh(_mesh_config(data=3))
  with pytest.raises(ValueError, match='batch_size=12 does not divide by the 8 devices'):
    sharding.check_batch_size(12, sharding.make_mesh(_mesh_config()))


def test_fsdp_leaf_specs():
  mesh = sharding.make_mesh(_mesh_config(fsdp=4))
  tree = {'big': jax.ShapeDtypeStruct((3, 3, 64, 128), jnp.float32),
          'odd': jax.ShapeDtypeStruct((1023, 3), jnp.float32),
          'small': jax.ShapeDtypeStruct((8,), jnp.float32)}
  specs = jax.tree.map(lambda s: s.spec, sharding.state_shardings(tree, mesh))
  assert specs['big'] == jax.sharding.PartitionSpec(None, None, None, 'fsdp')
  assert specs['odd'] == jax.sharding.PartitionSpec()  # No axis divides by 4.
  assert specs['small'] == jax.sharding.PartitionSpec()


def test_metric_writer_drops_rows_past_the_resumed_step(tmp_path):
  w = writers.MetricWriter(str(tmp_path))
  for step in (10, 20, 30):
    w.write(step, {'loss': np.float32(step), 'count': np.int32(1)})
  w.close()
  writers.MetricWriter(str(tmp_path), resume_step=20).close()
  rows = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
  assert rows == [{'step': 10, 'loss': 10.0, 'count': 1}, {'step': 20, 'loss': 20.0, 'count': 1}]
