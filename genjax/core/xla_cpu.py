"""Which library XLA:CPU runs convolutions with: YNNPACK (its default) or Eigen.

Why: jax 0.10's XLA:CPU hands convolutions and matrix products to YNNPACK. Its 3x3 stride-1
convolutions at our shapes run on one core: at batch 128, 28x28 32->32, the forward pass takes
the same 15 ms pinned to one core as on both, and the kernel gradient 67-78 ms. Eigen, XLA's
other convolution library, runs the same forward pass in 10 ms on two cores (20 ms on one) and
the kernel gradient in 26-32 ms (experiments/xla_cpu_convolutions/README.md, 2026-11-29 late
evening).
Which is faster for a whole train step depends on the model, so a config chooses
(`config.train.xla_cpu_convolutions`, measured by experiments/xla_cpu_convolutions/ynn_ab.py):
- 'eigen' for the DDPM U-Net (3x3 stride-1 convolutions throughout): at batch 128 the train
  step 1.24-1.42x, sampling 1.49x (at batch 32 the train step is equal);
- 'eigen' for the classifier too, with lax's formulation for every conv
  (`classifier.conv_method='lax'`): 1.08x against YNNPACK with the per-layer rule;
- 'ynnpack' for the VAE and DCGAN, whose transposed and strided convolutions are matrix
  products (genjax.nn.conv) that YNNPACK runs well: with Eigen their steps are 0.82-0.86x.
With 'eigen', XLA's own reductions run single-threaded (a bias gradient 7.6 ms against
YNNPACK's 0.4); keeping YNNPACK's reductions did not pay in whole steps (RESULTS.md).
The choice is process-wide (an XLA flag read when JAX starts its CPU backend), so `genjax`
commands apply it before their first computation (`use_convolution_library`); a single jit
can take it as compiler options instead (`compiler_options`), as the benchmarks do. Other
backends (GPU, TPU) ignore it.
"""
from __future__ import annotations

import os

LIBRARIES = ('ynnpack', 'eigen')
_FLAG = 'xla_cpu_experimental_ynn_fusion_type'
# What XLA lets YNNPACK take, per library choice. 'eigen' leaves YNNPACK nothing, so
# convolutions, matrix products and their fusions go back to XLA's own (Eigen) kernels.
_XLA_FLAGS = {'ynnpack': None, 'eigen': ''}


def _check(library: str) -> None:
  if library not in LIBRARIES:
    raise ValueError(f'XLA:CPU convolution library {library!r} is not one of {LIBRARIES} '
                     '(config.train.xla_cpu_convolutions).')


def compiler_options(library: str) -> dict[str, str]:
  """Compiler options for `jax.jit(..., compiler_options=...)` that select `library` for one jit.

  Args:
    library: 'ynnpack' (XLA's default: {}) or 'eigen'.

  Returns:
    {XLA debug option: value}, empty for the default.
  """
  _check(library)
  value = _XLA_FLAGS[library]
  return {} if value is None else {_FLAG: value}


def _backend_started() -> bool:
  """Whether JAX has started its backends (a private JAX function: False where it is gone)."""
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    return bool(xla_bridge.backends_are_initialized())
  except (ImportError, AttributeError):  # Another JAX version: trust the caller's order.
    return False


def use_convolution_library(library: str) -> bool:
  """Selects `library` for every computation of this process, through XLA_FLAGS.

  Must run before JAX starts its CPU backend (the first computation or device query); a
  flag the user already put in XLA_FLAGS wins.

  Args:
    library: 'ynnpack' (nothing to do) or 'eigen'.

  Returns:
    True if XLA_FLAGS was changed.

  Raises:
    ValueError: an unknown library.
    RuntimeError: JAX's backend is already running, so the flag would be ignored silently.
  """
  _check(library)
  value = _XLA_FLAGS[library]
  flags = os.environ.get('XLA_FLAGS', '')
  if value is None or f'--{_FLAG}' in flags:
    return False
  if _backend_started():
    raise RuntimeError(f'use_convolution_library({library!r}) after JAX started its backend: '
                       'XLA would ignore the flag. Call it before the first computation, or '
                       'pass compiler_options(library) to jax.jit.')
  os.environ['XLA_FLAGS'] = f'{flags} --{_FLAG}={value}'.strip()
  return True
