"""Attribute adherence of a trained LDM at several guidance weights (issue 21's control).

  python experiments/latent_diffusion/adherence.py --workdir=runs/ldm --weights=0,1,2,3 --pairs=500

`genjax eval` measures adherence at the run's guidance (config.sample.guidance_scale) only.
This prints it per weight: w = 0 is the unconditional model, whose two samples of a pair
(same key, prompts differing in one attribute) are identical, so every pair is a tie and
counts as not ordered (adherence 0): the measure cannot pass on samples that ignore the
prompt. Writes adherence.json beside the study's other outputs (--out).
"""
import argparse
import json
import os

import jax

from analyze import load_run  # The study's loader, beside this script.
from genjax.methods.ldm import evaluation


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--workdir', required=True)
  p.add_argument('--weights', default='0,1,2,3')
  p.add_argument('--pairs', type=int, default=500)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--out', default=os.path.dirname(os.path.abspath(__file__)))
  args = p.parse_args()
  t, parts, base = load_run(args.workdir)
  rows = []
  print('| w | thickness | slant | size | pairs |\n|---|---|---|---|---|')
  for w in [float(x) for x in args.weights.split(',')]:
    r = evaluation.adherence(parts, base.replace(guidance_scale=w), t.state,
                             jax.random.fold_in(jax.random.key(args.seed), 1), args.pairs)
    rows.append({'guidance': w, 'step': t.step, **r})
    print(f"| {w:g} | {r['adherence_thickness']:.3f} | {r['adherence_slant']:.3f} | "
          f"{r['adherence_size']:.3f} | {r['adherence_pairs']} |", flush=True)
  with open(os.path.join(args.out, 'adherence.json'), 'w') as f:
    json.dump(rows, f, indent=1)


if __name__ == '__main__':
  main()
