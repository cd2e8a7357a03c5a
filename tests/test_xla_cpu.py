"""genjax.core.xla_cpu: the convolution library, per jit and per process."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from genjax import config as config_lib
from genjax.core import xla_cpu

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _conv_grad(x, k):
  conv = lambda k: lax.conv_general_dilated(x, k, (1, 1), 'SAME',
                                            dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return jax.grad(lambda k: jnp.sum(conv(k) ** 2))(k)


# Large enough for XLA:CPU to hand it to YNNPACK (a 4x8x8x3 -> 5 convolution never is).
_X_SHAPE, _K_SHAPE = (2, 32, 32, 64), (3, 3, 64, 64)


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason='YNNPACK is XLA:CPU\'s')
def test_compiler_options_route_convolutions_to_eigen_with_equal_results():
  x = jax.random.normal(jax.random.key(0), _X_SHAPE)
  k = jax.random.normal(jax.random.key(1), _K_SHAPE) * 0.05
  default = jax.jit(_conv_grad).lower(x, k).compile()
  eigen = jax.jit(_conv_grad).lower(x, k).compile(
      compiler_options=xla_cpu.compiler_options('eigen'))
  assert xla_cpu.compiler_options('ynnpack') == {}
  assert 'ynn' in default.as_text()  # Positive control: by default YNNPACK takes it...
  assert 'ynn' not in eigen.as_text()  # ...and with 'eigen' it is left nothing.
  np.testing.assert_allclose(eigen(x, k), default(x, k), rtol=1e-4, atol=1e-3)


def test_unknown_library_is_refused_with_the_choices():
  with pytest.raises(ValueError, match="'ynnpack', 'eigen'"):
    xla_cpu.compiler_options('mkl')
  config = config_lib.load_config(os.path.join(_REPO, 'configs', 'vae_mnist.py'))
  config.train.xla_cpu_convolutions = 'mkl'
  with pytest.raises(config_lib.ConfigError, match='train.xla_cpu_convolutions'):
    config_lib.validate(config)


def test_process_wide_choice_must_come_before_the_backend():
  jnp.ones(1).block_until_ready()  # The backend of this test process is running.
  flags = os.environ.get('XLA_FLAGS')
  try:
    os.environ.pop('XLA_FLAGS', None)
    with pytest.raises(RuntimeError, match='before the first computation'):
      xla_cpu.use_convolution_library('eigen')
    assert xla_cpu.use_convolution_library('ynnpack') is False  # The default: nothing to do.
  finally:
    if flags is not None:
      os.environ['XLA_FLAGS'] = flags


def test_process_wide_choice_reaches_xla_and_user_flags_win():
  code = (
      'import os, jax, jax.numpy as jnp\n'
      'from genjax.core import xla_cpu\n'
      'changed = xla_cpu.use_convolution_library("eigen")\n'
      f'x = jnp.ones({_X_SHAPE}); k = jnp.ones({_K_SHAPE})\n'
      'f = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", '
      'dimension_numbers=("NHWC", "HWIO", "NHWC"))\n'
      'print(changed, os.environ["XLA_FLAGS"], "ynn" in jax.jit(f).lower(x, k).compile().as_text())\n')
  env = dict(os.environ, PYTHONPATH=_REPO)
  env.pop('XLA_FLAGS', None)
  out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                       check=True, timeout=120).stdout.split()
  assert out[:2] == ['True', '--xla_cpu_experimental_ynn_fusion_type='] and out[2] == 'False'
  # The user's flag stays, and reaches XLA: it routes the convolution that 'eigen' would not.
  env['XLA_FLAGS'] = '--xla_cpu_experimental_ynn_fusion_type=individual_convolution'
  out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                       check=True, timeout=120).stdout.split()
  assert out == ['False', env['XLA_FLAGS'], 'True']


def test_configs_choose_eigen_for_the_unet_and_the_classifier():
  load = lambda name: config_lib.load_config(os.path.join(_REPO, 'configs', name))
  assert load('ddpm_mnist.py').train.xla_cpu_convolutions == 'eigen'
  assert load('ddpm_cifar10.py').train.xla_cpu_convolutions == 'eigen'
  assert load('vae_mnist.py').train.xla_cpu_convolutions == 'ynnpack'
  classifier = load('classifier_mnist.py')  # Eigen, with lax's formulation for every conv.
  assert (classifier.train.xla_cpu_convolutions, classifier.classifier.conv_method) == ('eigen', 'lax')
