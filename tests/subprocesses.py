"""The environment of genjax subprocesses in tests (no side effects: experiments import it)."""
import os

# Tests check semantics, not speed: XLA's cheapest code generation halves compile times.
CHEAP_XLA = '--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true'


def env(devices: int | None = 1, **extra: str) -> dict:
  """os.environ for a subprocess: CPU, `devices` virtual devices (None: XLA's default),
  XLA's cheap code generation, unbuffered output; `extra` variables on top."""
  flags = CHEAP_XLA if devices is None else f'--xla_force_host_platform_device_count={devices} {CHEAP_XLA}'
  return {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONUNBUFFERED': '1', 'XLA_FLAGS': flags,
          **extra}
