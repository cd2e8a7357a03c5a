"""One table and one plot of FID against NFE from 5 to 1,000, from two studies of the same recipe.

  .venv/bin/python experiments/sampler_nfe/combine.py \
      [--low=experiments/sampler_nfe] [--high=experiments/sampler_nfe/retrain_2026-11-29]

The 5-20 NFE rows come from `--low` (the first flagship checkpoint), the 50-1,000
NFE rows from `--high` (the flagship retrained with the same command, whose rows
at 10 and 20 NFE agree with the first to within 0.04 FID; RESULTS.md). Karras
sigmas only. Writes all_nfe.md and all_nfe.png beside this file.
"""
import argparse
import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

HERE = os.path.dirname(os.path.abspath(__file__))
BUDGETS = (5, 10, 20, 50, 100)


def rows_by_budget(path: str, budgets) -> dict:
  """{(sampler, budget): row} for Karras-sigma rows of a results.json within `budgets`."""
  rows = json.load(open(os.path.join(path, 'results.json')))
  return {(r['sampler'], r['budget']): r for r in rows
          if r['sigma_schedule'] == 'karras' and r['budget'] in budgets}


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--low', default=HERE)
  p.add_argument('--high', default=os.path.join(HERE, 'retrain_2026-11-29'))
  args = p.parse_args()
  table = {**rows_by_budget(args.low, (5, 10, 20)), **rows_by_budget(args.high, (50, 100))}
  ref = [r for r in json.load(open(os.path.join(args.high, 'results.json'))) if r['budget'] >= 1000]
  samplers = sorted({s for s, _ in table})
  cell = lambda r: '' if r is None else f"{r['fid']:.2f}" + (
      f" ({r['steps']} steps)" if r['steps'] != r['budget'] else '')
  lines = ['| sampler | ' + ' | '.join(f'{b} NFE' for b in BUDGETS) + ' |',
           '|---|' + '---|' * len(BUDGETS)]
  for s in samplers:
    lines.append(f'| {s} | ' + ' | '.join(cell(table.get((s, b))) for b in BUDGETS) + ' |')
  for r in ref:
    lines.append(f"\nReference: {r['sampler']} {r['steps']} steps, FID {r['fid']:.2f} "
                 f"({r['fid_ratio']:.1f}x the floor {r['fid_floor']:.3f}).")
  with open(os.path.join(HERE, 'all_nfe.md'), 'w') as f:
    f.write('FID (N = 1,000). 5-20 NFE: first flagship checkpoint; 50-100 NFE and the reference: '
            'its retrain (same command).\n\n' + '\n'.join(lines) + '\n')
  fig, ax = plt.subplots(figsize=(9, 6))
  cmap = plt.get_cmap('tab20')
  for j, s in enumerate(samplers):
    pts = sorted((r['nfe'], r['fid']) for (name, _), r in table.items() if name == s)
    ax.plot(*zip(*pts), marker='o', ms=4, color=cmap(j % 20), label=s)
  for r in ref:
    ax.axhline(r['fid'], color='k', ls='--', lw=1, label=f"{r['sampler']} {r['nfe']} NFE")
  ax.axhline(ref[0]['fid_floor'] if ref else next(iter(table.values()))['fid_floor'], color='gray',
             ls=':', lw=1, label='real-data floor')
  ax.axvspan(35, 120, color='0.93', zorder=0)
  ax.text(38, 0.6, 'retrained checkpoint', fontsize=8, color='0.4')
  ax.set_xscale('log')
  ax.set_yscale('log')
  ax.set_xlabel('NFE (denoiser calls)')
  ax.set_ylabel('FID (mnist5k classifier features, N=1000)')
  ax.set_title('Sample quality against NFE, every sampler (Karras sigmas)')
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  fig.savefig(os.path.join(HERE, 'all_nfe.png'), dpi=110)
  plt.close(fig)


if __name__ == '__main__':
  main()
