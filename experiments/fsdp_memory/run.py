"""Per-device memory of DDPM CIFAR-10's compiled train step for mesh.fsdp = 1, 2, 4, 8.

Run (8 virtual CPU devices; compiles the 35.7M-parameter U-Net's step four times, ~minutes):
  XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \
      python experiments/fsdp_memory/run.py [--batch_size=128] [--out=experiments/fsdp_memory/results.json]
Prints a markdown table: XLA's per-device argument bytes (state shards + batch share), the state's
share computed from the shardings, temporaries, and the ratio to fsdp=1.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from genjax import config as config_lib  # noqa: E402
from genjax.train import loop  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--out', default=os.path.join(REPO, 'experiments/fsdp_memory/results.json'))
  args = parser.parse_args()
  rows = []
  for fsdp in (1, 2, 4, 8):
    config = config_lib.load_config(os.path.join(REPO, 'configs/ddpm_cifar10.py'))
    config.unlock()
    config.mesh.fsdp, config.data.batch_size = fsdp, args.batch_size
    stats, sizes = loop.compiled_step_stats(config, (32, 32, 3))
    rows.append(dict(fsdp=fsdp, argument_mib=stats.argument_bytes / 2**20,
                     state_mib_xla=(stats.argument_bytes - sizes['batch_bytes_per_device']) / 2**20,
                     state_mib_shardings=sizes['state_bytes_per_device'] / 2**20,
                     state_mib_total=sizes['state_bytes'] / 2**20,
                     temp_mib=stats.temp_bytes / 2**20, gflop_per_step=stats.flops / 1e9))
    print(rows[-1], flush=True)
  base = rows[0]['state_mib_xla']
  print('| fsdp | params+opt+EMA per device (XLA), MiB | from shardings, MiB | x fsdp=1 | '
        'ideal 1/fsdp | temporaries per device, MiB |')
  print('|---|---|---|---|---|---|')
  for r in rows:
    print(f"| {r['fsdp']} | {r['state_mib_xla']:.1f} | {r['state_mib_shardings']:.1f} | "
          f"{r['state_mib_xla'] / base:.3f} | {1 / r['fsdp']:.3f} | {r['temp_mib']:.1f} |")
  with open(args.out, 'w') as f:
    json.dump(rows, f, indent=2)


if __name__ == '__main__':
  main()
