"""genjax alone, A/B in one process: train steps with every Conv on lax's convolution
(what flax.linen.Conv computes) against the same steps with genjax.nn.conv's chosen formulations.

Usage: python experiments/xla_cpu_convolutions/conv_ab.py [--models=classifier,vae] [--rounds=3]

Both steps are traced from the same model; `conv_method` is forced to 'lax' while the A step
traces (--a=split: 'split' where the rule picks 'lax', what genjax ran on YNNPACK before
genjax/core/xla_cpu.py existed; --a=plain_bias: the chosen rule, with the bias added by a plain
`y + bias`, whose gradient is a reduction, instead of `genjax.nn.conv.add_bias`). Both steps
compile for the model's configured library.
Blocks of A and B steps alternate (order flipped every round), so a shared machine's load
hits both alike; the speedup is the median over rounds of (B img/s) / (A img/s).
"""
from __future__ import annotations

import contextlib
import os
import sys
from unittest import mock

# run.py's train steps (`build_genjax`) live in the PyTorch comparison's folder.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'torch_speed'))

import run as bench  # noqa: E402
from genjax.core import malloc  # noqa: E402

# As genjax commands do, before XLA starts its threads (genjax/core/malloc.py).
malloc.keep_freed_memory()


def main():
  p = bench.ab_parser()
  p.add_argument('--a', default='lax', choices=('lax', 'split', 'plain_bias'),
                 help="A's rule: lax's convolution everywhere; the chosen rule with 'split' "
                      "in place of 'lax' (the kernel gradient summed over batch slices); or the "
                      "chosen rule with a plain bias add (its gradient a reduction)")
  args = p.parse_args()
  import jax
  from genjax.nn import conv
  chosen = conv.conv_method
  a_name = {'lax': 'lax conv', 'split': "chosen, 'split' for 'lax'",
            'plain_bias': 'chosen, plain bias add'}[args.a]
  print(f'| model | {a_name} img/s | genjax.nn.conv img/s | speedup (min-max) |')
  print('|---|---|---|---|')
  rule_a = {'lax': lambda *a: 'lax',
            'split': lambda *a: {'lax': 'split'}.get(chosen(*a), chosen(*a)),
            'plain_bias': chosen}[args.a]
  plain = (mock.patch.object(conv, 'add_bias', lambda y, bias: y + bias)
           if args.a == 'plain_bias' else contextlib.nullcontext())
  for name in args.models.split(','):
    with bench.conv_rule(rule_a), plain:
      run_a, step_a, batch, holder_a, _, _ = bench.build_genjax(name, args.batch)
      step_a.lower(holder_a['state'], batch).compile()
      run_a(1)
    run_b, step_b, _, holder_b, _, _ = bench.build_genjax(name, args.batch)
    run_b(1)
    out = bench.compare(run_b, run_a, args.batch, args.rounds, args.target_s)
    print(f'| {name} train | {out["torch_img_s"]:.0f} | {out["genjax_img_s"]:.0f} | '
          f'**{out["ratio"]:.2f}** ({out["ratio_min"]:.2f}-{out["ratio_max"]:.2f}) |', flush=True)
    del run_a, run_b, step_a, step_b, holder_a, holder_b
    jax.clear_caches()


if __name__ == '__main__':
  main()
