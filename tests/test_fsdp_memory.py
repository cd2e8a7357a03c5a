"""fsdp saves memory: the compiled step's per-device argument bytes fall about as 1/fsdp."""
import numpy as np

from genjax.train import loop


def test_per_device_state_bytes_fall_as_one_over_fsdp(load):
  rows = {}
  for fsdp in (1, 2, 4, 8):
    config = load('ddpm_cifar10.py:smoke', mesh__fsdp=fsdp, diffusion__channels=(64,),
                  diffusion__num_res_blocks=1, diffusion__attention_resolutions=(),
                  train__ema_decay=None)
    stats, sizes = loop.compiled_step_stats(config, (8, 8, 3))
    # XLA's own count: the step's per-device arguments are the state's shards and the batch's.
    state_bytes = stats.argument_bytes - sizes['batch_bytes_per_device']
    assert abs(state_bytes - sizes['state_bytes_per_device']) <= 64, (fsdp, state_bytes, sizes)
    rows[fsdp] = state_bytes
  full = rows[1]
  for fsdp, nbytes in rows.items():
    # Small tensors (biases, norms) stay replicated: within 15% of the ideal 1/fsdp.
    assert nbytes <= 1.15 * full / fsdp, (fsdp, nbytes, full / fsdp)
  assert np.all(np.diff([rows[f] for f in (1, 2, 4, 8)]) < 0)
