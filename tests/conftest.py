"""Test set-up: 8 virtual CPU devices, so sharding is exercised without accelerators.

XLA reads the flag once, at backend start, so it is set before anything imports jax.
"""
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests never touch the network or the user's TFDS cache.
os.environ.setdefault("TFDS_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", "runs", "tfds_test"))
