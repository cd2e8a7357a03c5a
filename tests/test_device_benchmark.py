"""experiments/device_benchmark runs in its CPU smoke mode and reports what it measures."""
import importlib.util
import os

from conftest import REPO


def test_benchmark_smoke_mode_reports_throughput_and_no_peak_on_cpu(capsys):
  path = os.path.join(REPO, 'experiments', 'device_benchmark', 'benchmark.py')
  spec = importlib.util.spec_from_file_location('device_benchmark', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  # bf16 only: the float32 row runs the same code (the CI budget pays for one compile).
  rows = module.main(['--smoke', '--no_torch', '--dtypes=bfloat16'])
  assert [r['dtype'] for r in rows] == ['bfloat16']
  for r in rows:
    assert r['img_per_s'] > 0 and r['achieved_flops_per_s'] > 0 and 'mfu' not in r
    assert r['peak_memory_mib'] > 0
  assert 'no peak known' in capsys.readouterr().out
