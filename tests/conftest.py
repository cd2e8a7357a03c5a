"""Test set-up: 8 virtual CPU devices, so sharding is exercised without accelerators.

XLA reads the flag once, at backend start, so it is set before anything imports jax.
"""
import os
import tempfile

from subprocesses import CHEAP_XLA  # XLA's cheapest code generation.

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8 " + CHEAP_XLA
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests never touch the user's TFDS cache; bundled sets are prepared here once
# (a file lock serialises pytest workers).
os.environ["TFDS_DATA_DIR"] = os.path.join(tempfile.gettempdir(), f"genjax_tfds_test_{os.getuid()}")

import glob  # noqa: E402

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(
    p for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
    if os.path.basename(p) not in ("__init__.py", "base.py"))


@pytest.fixture
def load():
  """load(name_or_path[:variant], **overrides) -> locked ConfigDict.

  Overrides are `group__field=value` (e.g. `vae__beta=4.0`) or a top-level `field=value`.
  """
  from genjax.config import load_config

  def _load(spec, **overrides):
    if not os.path.isabs(spec) and not spec.startswith("configs/"):
      spec = os.path.join("configs", spec)
    config = load_config(os.path.join(REPO, spec) if not os.path.isabs(spec) else spec)
    for dotted, value in overrides.items():
      if "__" not in dotted:  # A top-level field, e.g. method="vae".
        config[dotted] = value
        continue
      group, key = dotted.split("__")
      config[group][key] = value
    return config

  return _load
