"""Mixed precision: float32 parameters and optimizer state, bf16 compute (`train.compute_dtype`).

The policy (as in big_vision and Flax's mixed-precision guide):
- parameters, optimizer state and the EMA stay float32 (`TrainState` is untouched);
- inside a network call, the parameters and the image-like inputs are cast to
  the compute dtype, so every convolution and matrix product runs in it; the
  gradient flows back through the cast and arrives float32;
- numerically sensitive parts stay float32: flax's GroupNorm/BatchNorm reduce
  their statistics in float32 (`force_float32_reductions`), the attention
  softmax is float32 (`jax.nn.dot_product_attention`), per-example scalars
  (timesteps, noise levels) and the sinusoidal embedding are float32, and the
  network's outputs are cast back to float32 before any loss, sampler or EMA.
bfloat16 has float32's exponent range, so no loss scaling is needed; float16
(whose gradients underflow without dynamic loss scaling) is not offered.

`with_policy(module, dtype)` wraps a flax module so that `apply` follows the
policy; in float32 it returns the module itself, so float32 runs are
bit-identical to runs without a policy.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(name: str | None):
  """The jnp dtype of `train.compute_dtype` ('float32' | 'bfloat16'; None: float32).

  Raises:
    ValueError: another name, listing the accepted ones.
  """
  if name is None:
    return jnp.float32
  if name not in COMPUTE_DTYPES:
    raise ValueError(f'train.compute_dtype={name!r} is not supported; accepted: '
                     f'{sorted(COMPUTE_DTYPES)} (float16 would need loss scaling; use bfloat16).')
  return COMPUTE_DTYPES[name]


def _is_float(x) -> bool:
  return isinstance(x, (jax.Array, jnp.ndarray)) and jnp.issubdtype(x.dtype, jnp.floating)


def cast_floating(tree: Any, dtype, *, min_ndim: int = 0) -> Any:
  """`tree` with every floating array of at least `min_ndim` dims cast to `dtype`.

  Integer arrays, PRNG keys, None and Python scalars are left alone.
  """
  return jax.tree.map(
      lambda x: x.astype(dtype) if _is_float(x) and x.ndim >= min_ndim else x, tree)


class PolicyModule:
  """A flax module whose `apply` runs in a compute dtype (see the module docstring).

  `init` is the module's own (float32 parameters); any other attribute is the
  module's. `clone(**changes)` keeps the policy.

  Attributes:
    module: the wrapped flax module.
    dtype: the compute dtype (e.g. jnp.bfloat16).
  """

  def __init__(self, module, dtype):
    self.module, self.dtype = module, dtype

  def apply(self, variables: dict, *args, **kwargs):
    """`module.apply` with 'params' and array inputs of >= 2 dims in the compute dtype.

    Inputs of < 2 dims (timesteps [B], noise levels [B], labels) stay as given,
    so noise embeddings are computed in float32. Floating outputs (and mutable
    collections such as BatchNorm statistics) come back float32.
    """
    variables = {k: cast_floating(v, self.dtype) if k == 'params' else v
                 for k, v in variables.items()}
    args = cast_floating(args, self.dtype, min_ndim=2)
    kwargs = {k: v if k in ('rngs', 'method', 'mutable') else cast_floating(v, self.dtype,
                                                                             min_ndim=2)
              for k, v in kwargs.items()}
    return cast_floating(self.module.apply(variables, *args, **kwargs), jnp.float32)

  def init(self, *args, **kwargs):
    return self.module.init(*args, **kwargs)

  def clone(self, **changes) -> 'PolicyModule':
    return PolicyModule(self.module.clone(**changes), self.dtype)

  def __getattr__(self, name):
    return getattr(self.module, name)

  def __repr__(self):
    return f'PolicyModule({self.module!r}, dtype={jnp.dtype(self.dtype).name})'


def with_policy(module, dtype_name: str | None):
  """`module` itself in float32; else a `PolicyModule` computing in `dtype_name`."""
  dtype = compute_dtype(dtype_name)
  return module if dtype == jnp.float32 else PolicyModule(module, dtype)
