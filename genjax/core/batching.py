"""Applying a jitted function over a large array in fixed-size chunks (one compiled shape)."""
from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np


def batched_apply(fn: Callable[[Any], Any], inputs: Any, batch_size: int) -> Any:
  """Applies a jitted `fn` over the leading axis of `inputs` in fixed-size chunks.

  The last chunk is padded to `batch_size` so `fn` compiles once.

  Args:
    fn: pytree [b, ...] -> pytree [b, ...].
    inputs: pytree of arrays [N, ...].
    batch_size: b.

  Returns:
    `fn`'s outputs concatenated to [N, ...], as numpy.
  """
  n = len(jax.tree.leaves(inputs)[0])
  outs = []
  for start in range(0, n, batch_size):
    size = min(batch_size, n - start)
    # Repeat the last row to fill the final chunk; indexing works for numpy, jax and key arrays.
    rows = np.minimum(np.arange(start, start + batch_size), n - 1)
    outs.append(jax.tree.map(lambda y: np.asarray(y)[:size], fn(jax.tree.map(lambda x: x[rows], inputs))))
  return jax.tree.map(lambda *ys: np.concatenate(ys), *outs)

