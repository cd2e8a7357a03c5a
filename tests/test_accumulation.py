"""Gradient accumulation (train.grad_accum_steps) and the step's throughput/MFU log."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.core import flops, optim
from genjax.methods import make_method

SHAPE = (8, 8, 1)


def _classifier(load, **overrides):
  config = load('classifier_mnist.py:smoke', classifier__channels=(4, 8),
                classifier__feature_dim=16, classifier__dropout=0.0,
                classifier__augment_shift=0, **overrides)
  return make_method(config, SHAPE)


def test_k_micro_batches_make_the_update_of_one_k_times_batch(load):
  method = _classifier(load, optim__name='adam', optim__lr=1e-2, optim__schedule='constant',
                       train__ema_decay=0.9)
  rng = np.random.default_rng(0)
  batch = {'image': jnp.asarray(rng.uniform(-1, 1, (16,) + SHAPE), jnp.float32),
           'label': jnp.asarray(rng.integers(0, 10, 16), jnp.int32)}
  state = jax.jit(method.init)(jax.random.key(0), jax.tree.map(lambda x: x[:1], batch))
  one = jax.jit(method.train_step)
  acc = jax.jit(optim.accumulate_gradients(method.train_step, 4))
  s1, s4 = state, state
  for i in range(2):  # Two Adam updates: the moments carry the accumulated gradients too.
    s1, m1 = one(s1, batch, jax.random.key(i))
    s4, m4 = acc(s4, batch, jax.random.key(i))
    np.testing.assert_allclose(m4['loss'], m1['loss'], rtol=1e-5)
    np.testing.assert_allclose(m4['grad_norm'], m1['grad_norm'], rtol=1e-4)
  assert int(s4.step) == int(s1.step) == 2
  for a, b in zip(jax.tree.leaves((s1.params, s1.ema_params, s1.opt_state)),
                  jax.tree.leaves((s4.params, s4.ema_params, s4.opt_state))):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
  moved = max(float(np.abs(a - b).max()) for a, b in
              zip(jax.tree.leaves(state.params), jax.tree.leaves(s4.params)))
  assert moved > 1e-3  # The update is real, so the comparison above can fail.


def test_accumulation_is_refused_where_micro_steps_are_not_one_step(load):
  config = load('dcgan_mnist.py:smoke', gan__gen_channels=(8, 4), gan__disc_channels=(4, 8))
  method = make_method(config, (16, 16, 1))
  abstract = jax.eval_shape(method.init, jax.random.key(0),
                            {'image': jnp.zeros((1, 16, 16, 1)), 'label': jnp.zeros((1,), jnp.int32)})
  optim.check_accumulable(abstract, 1)  # k = 1 is always fine.
  with pytest.raises(ValueError, match='refused for this method.*BatchNorm'):
    optim.check_accumulable(abstract, 2)
  with pytest.raises(ValueError, match='must be >= 1'):
    optim.check_accumulable(abstract, 0)


def test_xla_flops_of_a_matmul_and_the_peak_table():
  a, b = jnp.ones((64, 32)), jnp.ones((32, 16))
  stats = flops.step_stats(jax.jit(jnp.matmul).lower(a, b).compile(), num_devices=1)
  assert stats.flops == 2 * 64 * 32 * 16  # One multiply-add is 2 FLOPs.
  assert stats.argument_bytes == 4 * (64 * 32 + 32 * 16)
  assert flops.peak_flops('NVIDIA H100 80GB HBM3', 'bfloat16') == 989e12
  assert flops.peak_flops('NVIDIA A100-SXM4-40GB', 'float32') == 156e12
  assert flops.peak_flops('TPU v5 lite', 'bfloat16') == 197e12
  assert flops.peak_flops('cpu') is None
  assert flops.StepStats(1e9, None, None, None, None, 2, 'cpu', None).metrics(3.0) == {
      'achieved_flops_per_s': 3e9}
  assert flops.StepStats(1e9, None, None, None, None, 2, 'x', 6e9).metrics(3.0)['mfu'] == 0.5


def test_loop_logs_throughput_and_flops_with_accumulation(load, tmp_path, capsys):
  from genjax.train import loop
  config = load('classifier_mnist.py:smoke', classifier__channels=(4, 8),
                classifier__feature_dim=16, train__grad_accum_steps=2, train__num_steps=3,
                train__eval_every_steps=100, train__images_every_steps=100,
                train__checkpoint_every_steps=100)
  loop.train(config, str(tmp_path), stop_at_step=2)  # Stops before evaluation: fast.
  out = capsys.readouterr().out
  assert 'GFLOP per step' in out and "no peak known for 'cpu'" in out
  rows = [json.loads(l) for l in open(os.path.join(tmp_path, 'metrics.jsonl'))]
  logged = [r for r in rows if 'loss' in r and r['step'] > 1]
  assert logged and all(r['examples_per_s'] > 0 and r['achieved_flops_per_s'] > 0
                        for r in logged)
  assert not any('mfu' in r for r in rows)  # No peak known on CPU.
