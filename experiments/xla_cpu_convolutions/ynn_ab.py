"""genjax alone, A/B in one process: train steps (and the U-Net's sampler) compiled with
XLA:CPU's convolutions on YNNPACK (XLA's default) against the same on Eigen.

Usage: python experiments/xla_cpu_convolutions/ynn_ab.py [--models=classifier,vae,dcgan,unet_ddpm]
       [--rounds=3] [--a_split] [--sample_steps=5] [--b_ynn=individual_dot,reduce] [--b_lax]

Why: genjax/core/xla_cpu.py. Both steps are traced from the same model and compiled with
YNNPACK (A) and Eigen (B) (`xla_cpu.compiler_options`), whatever the model's config chooses.
--a_split traces A with Conv method 'split' where the rule picks 'lax' (3x3 stride-1,
C_out < 2 C_in): what genjax ran on YNNPACK before the choice of library existed.
--b_ynn keeps these XLA library-fusion types on YNNPACK in B (of dot, eltwise, reduce,
individual_dot, individual_convolution; e.g. 'individual_dot,reduce': convolutions on Eigen,
matrix products and reductions on YNNPACK). --b_lax traces B with every Conv on 'lax'.
Blocks of A and B alternate (order flipped every round); the speedup is the median of
(B img/s) / (A img/s).
"""
from __future__ import annotations

import os
import sys

# run.py's train steps (`build_genjax`) live in the PyTorch comparison's folder.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'torch_speed'))

import run as bench  # noqa: E402
from genjax.core import malloc  # noqa: E402

# As genjax commands do, before XLA starts its threads (genjax/core/malloc.py).
malloc.keep_freed_memory()


def main():
  p = bench.ab_parser()
  p.add_argument('--a_split', action='store_true',
                 help="A traces Conv method 'split' where the rule picks 'lax'")
  p.add_argument('--sample_steps', type=int, default=5, help='U-Net sampler steps (0: skip)')
  p.add_argument('--b_ynn', default='', help='library-fusion types B leaves on YNNPACK')
  p.add_argument('--b_lax', action='store_true', help="B traces every Conv with method 'lax'")
  args = p.parse_args()
  import jax
  import jax.numpy as jnp
  from genjax.nn import conv
  chosen = conv.conv_method
  a_name = 'YNNPACK' + (", 'split'" if args.a_split else '')
  b_name = ('Eigen' + (f' (YNNPACK: {args.b_ynn})' if args.b_ynn else '') +
            (", 'lax'" if args.b_lax else ''))
  b_library = 'eigen'
  if args.b_ynn:
    b_library = {'xla_cpu_experimental_ynn_fusion_type': ','.join(
        'LIBRARY_FUSION_TYPE_' + t.strip().upper() for t in args.b_ynn.split(','))}
  print(f'| workload | {a_name} img/s | {b_name} img/s | speedup (min-max) |')
  print('|---|---|---|---|')
  rule_a = (lambda *a: {'lax': 'split'}.get(chosen(*a), chosen(*a))) if args.a_split else None
  rule_b = (lambda *a: 'lax') if args.b_lax else None
  for name in args.models.split(','):
    with bench.conv_rule(rule_a):
      run_a, _, _, _, _, _ = bench.build_genjax(name, args.batch, 'ynnpack')
      run_a(1)
    with bench.conv_rule(rule_b):
      run_b, _, _, holder, config, shape = bench.build_genjax(name, args.batch, b_library)
      run_b(1)
    rows = [(f'{name} train', run_a, run_b)]
    if name in bench.SAMPLING and args.sample_steps:
      # A copy: the train steps donate (and so delete) the state's buffers.
      params = jax.tree.map(jnp.copy, holder['state'].params)
      sampler = lambda library: bench.build_genjax_sampler(config, shape, params, args.batch,
                                                           args.sample_steps, library)
      run_a_sample = sampler('ynnpack')
      with bench.conv_rule(rule_b):
        run_b_sample = sampler(b_library)  # Traced (and compiled) here, with B's rule.
      rows.append((f'{name} sample ({args.sample_steps} NFE)', run_a_sample, run_b_sample))
    for label, a, b in rows:
      a(1)
      out = bench.compare(b, a, args.batch, args.rounds, args.target_s)
      print(f'| {label} | {out["torch_img_s"]:.0f} | {out["genjax_img_s"]:.0f} | '
            f'**{out["ratio"]:.2f}** ({out["ratio_min"]:.2f}-{out["ratio_max"]:.2f}) |', flush=True)
    del rows, run_a, run_b
    jax.clear_caches()


if __name__ == '__main__':
  main()
