"""Every field of a smoke config with a few typed-in values: which fail outside the checks.

The exhaustive companion of tests/test_config_fuzz.py (which draws 12 overrides per config
with hypothesis): for each field of SPEC (optionally only those starting with PREFIX) and
each TEXT, `--config.FIELD=TEXT` is checked as the test checks it; a line per outcome,
`FAIL` where the CLI would print a traceback or an error that does not name the key.

Usage:
  python experiments/fault_injection/fuzz_sweep.py ddpm_mnist.py:smoke 'None|-1|0|abc' diffusion
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'tests'))
import conftest  # noqa: E402,F401  # 8 virtual devices, the tests' TFDS dir.
import test_config_fuzz as fuzz  # noqa: E402


def main() -> None:
  spec, texts = sys.argv[1], sys.argv[2].split('|')
  keys = [k for k in fuzz.keys_of(spec) if len(sys.argv) < 4 or k.startswith(sys.argv[3])]
  t0, failed = time.time(), 0
  for key in keys:
    for text in texts:
      try:
        line = fuzz.outcome(spec, key, text)
        print('refused' if line else 'ok', key, repr(text), (line or '')[:120], flush=True)
      except AssertionError as e:
        failed += 1
        print('FAIL', str(e)[:300], flush=True)
  print(f'{len(keys) * len(texts)} overrides, {failed} failed, {time.time() - t0:.0f}s')


if __name__ == '__main__':
  main()
