"""Is the empty prompt's FID limited by the sampler or by the weights? The eval's unconditional
FID of a trained LDM under other samplers, step counts, and raw weights instead of the EMA.

  .venv/bin/python experiments/latent_diffusion/uncond_probe.py runs/ldm4 \
      dpmpp_2m:20:ema dpmpp_2m:20:raw dpmpp_2m:50:ema heun:25:ema

Each probe is SAMPLER:STEPS:ema|raw (a name of genjax.diffusion.SAMPLERS); prints one JSON line
per probe: FID ratio to the floor, FID, precision, recall (N = the run's eval.num_samples).
"""
import json
import sys
import time

from analyze import load_run  # pylint: disable=g-bad-import-order  # This folder's study.
from genjax.methods import sampling
from genjax.methods.ldm.ldm import sample
from genjax.train import run as run_lib


def main():
  if len(sys.argv) < 3:
    sys.exit(__doc__)
  t, parts, base = load_run(sys.argv[1])
  ctx = run_lib.eval_context(t.run, t.step)
  for probe in sys.argv[2:]:
    name, steps, weights = probe.split(':')
    spec = base.replace(sampler=name, num_steps=int(steps))
    state = t.state if weights == 'ema' else t.state.replace(ema_params=None)
    t0 = time.time()
    r = sampling.evaluate_samples(lambda s, k, _: sample(parts, spec, s, k, None), state, ctx)
    print(json.dumps({'probe': probe, 'fid_ratio': round(r['fid_ratio'], 2),
                      'fid': round(r['fid'], 3), 'precision': r['precision'],
                      'recall': r['recall'], 'seconds': round(time.time() - t0)}), flush=True)


if __name__ == '__main__':
  main()
