"""FLOPs and memory of a compiled step (XLA's own analyses) and model-FLOP utilisation (MFU).

The FLOPs are XLA's count for the compiled program (`Compiled.cost_analysis`):
every multiply-add of the convolutions and matrix products counts 2, element-wise
work counts too, and under SPMD the program is one device's share, so the
step's total is that times the device count. MFU = achieved FLOP/s / (the
devices' dense peak); a while loop (gradient accumulation's scan) is counted
once by XLA, so `step_stats` multiplies by its trip count given by the caller.
"""
from __future__ import annotations

import dataclasses

import jax

# Dense peak FLOP/s per chip (vendor data sheets, no sparsity): (device-kind substring,
# bfloat16 peak, float32 peak). float32 on NVIDIA: TF32 tensor cores, which XLA uses for
# float32 matrix products by default; on TPU float32 products run as bfloat16 passes.
PEAK_FLOPS = (
    ('H100 PCIe', 756e12, 378e12),
    ('H100', 989e12, 494e12),  # SXM / HBM3.
    ('H200', 989e12, 494e12),
    ('A100', 312e12, 156e12),
    ('TPU v4', 275e12, 275e12),
    ('TPU v5 lite', 197e12, 197e12),  # v5e's device_kind.
    ('TPU v5e', 197e12, 197e12),
)


def peak_flops(device_kind: str, dtype_name: str = 'float32') -> float | None:
  """The dense peak FLOP/s of one chip of `device_kind` in `dtype_name`; None when not known.

  Args:
    device_kind: `jax.Device.device_kind`, e.g. 'NVIDIA H100 80GB HBM3', 'TPU v4', 'cpu'.
    dtype_name: the compute dtype, 'bfloat16' or 'float32'.
  """
  for key, bf16, f32 in PEAK_FLOPS:
    if key.lower() in device_kind.lower():
      return bf16 if dtype_name == 'bfloat16' else f32
  return None


@dataclasses.dataclass(frozen=True)
class StepStats:
  """What XLA knows about one compiled training step.

  Attributes:
    flops: FLOPs of one step over all devices (None when XLA gives no count).
    argument_bytes, output_bytes, temp_bytes, alias_bytes: per device, from
      `Compiled.memory_analysis()` (None when the backend gives none).
    num_devices: devices the step runs on.
    device_kind: their kind.
    peak: the devices' dense peak FLOP/s in total, or None ("no peak known").
  """
  flops: float | None
  argument_bytes: int | None
  output_bytes: int | None
  temp_bytes: int | None
  alias_bytes: int | None
  num_devices: int
  device_kind: str
  peak: float | None

  @property
  def memory_bytes(self) -> int | None:
    """Per-device bytes the step needs at once: arguments + outputs not aliased to them + temps."""
    if self.argument_bytes is None:
      return None
    return self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes

  def metrics(self, steps_per_s: float) -> dict:
    """{'achieved_flops_per_s', 'mfu'} at `steps_per_s` (each only when known)."""
    out = {}
    if self.flops:
      out['achieved_flops_per_s'] = self.flops * steps_per_s
      if self.peak:
        out['mfu'] = out['achieved_flops_per_s'] / self.peak
    return out

  def describe(self) -> str:
    """One line for the log: FLOPs per step, memory, and the peak (or 'no peak known')."""
    parts = [f'{self.flops / 1e9:.3g} GFLOP per step (XLA cost analysis, {self.num_devices} '
             f'device(s))' if self.flops else 'no FLOP count from XLA']
    if self.memory_bytes is not None:
      parts.append(f'{self.memory_bytes / 2**20:.1f} MiB per device (arguments '
                   f'{self.argument_bytes / 2**20:.1f}, temporaries {self.temp_bytes / 2**20:.1f})')
    parts.append(f'peak {self.peak / 1e12:.0f} TFLOP/s for {self.num_devices} x '
                 f'{self.device_kind}' if self.peak else
                 f'no peak known for {self.device_kind!r}: MFU not reported')
    return '; '.join(parts) + '.'


def step_stats(compiled, *, num_devices: int, dtype_name: str = 'float32',
               loop_trips: int = 1) -> StepStats:
  """FLOPs, memory and peak of a compiled step (`jax.jit(f).lower(...).compile()`).

  Args:
    compiled: the compiled step.
    num_devices: devices of its mesh (XLA counts one device's share).
    dtype_name: the compute dtype, to pick the peak.
    loop_trips: times the step's dominant while loop runs (gradient accumulation's
      micro-batches): XLA counts a loop body once.
  """
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older jax: one dict per program.
    cost = cost[0] if cost else None
  flops = float(cost['flops']) * num_devices * loop_trips if cost and cost.get('flops') else None
  try:
    mem = compiled.memory_analysis()
  except (NotImplementedError, jax.errors.JaxRuntimeError):
    mem = None  # Backends without a memory analysis: the report then leaves memory out.
  kind = jax.devices()[0].device_kind
  per_chip = peak_flops(kind, dtype_name)
  get = lambda name: None if mem is None else int(getattr(mem, name))
  return StepStats(flops=flops, argument_bytes=get('argument_size_in_bytes'),
                   output_bytes=get('output_size_in_bytes'), temp_bytes=get('temp_size_in_bytes'),
                   alias_bytes=get('alias_size_in_bytes'), num_devices=num_devices,
                   device_kind=kind, peak=None if per_chip is None else per_chip * num_devices)
