"""Tabulates the GAN study: sample quality against the real-data floor, and training cost.

Usage: .venv/bin/python experiments/gan_mnist/analyze.py [runs/gan_mnist]

Reads each run's eval.json (the final evaluation), metrics.jsonl (steps/s per log
interval, and the last logged training monitors) and wall.jsonl (written by run.sh).
Prints a markdown table for README.md.
"""
import json
import os
import sys

ORDER = ['gan', 'dcgan', 'dcgan_hinge', 'cdcgan', 'stylegan', 'cstylegan']


def train_seconds(rows):
  """Seconds spent in training steps: sum of (interval steps / steps_per_s), compile included."""
  total, prev = 0.0, 0
  for r in rows:
    if 'steps_per_s' in r and r['steps_per_s'] > 0:
      total += (r['step'] - prev) / r['steps_per_s']
      prev = r['step']
  return total


def summarize(workdir):
  with open(os.path.join(workdir, 'eval.json')) as f:
    ev = json.load(f)
  rows = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  train_rows = [r for r in rows if 'loss' in r]
  wall = None
  wall_path = os.path.join(workdir, 'wall.jsonl')
  if os.path.exists(wall_path):
    wall = sum(json.loads(line)['wall_s'] for line in open(wall_path))
  last = train_rows[-1] if train_rows else {}
  return {**ev, 'train_s': train_seconds(train_rows), 'wall_s': wall,
          'batch_entropy_last': last.get('class_entropy')}


def fmt(v, spec):
  return '-' if v is None else format(v, spec)


def main(root):
  names = [n for n in ORDER if os.path.exists(os.path.join(root, n, 'eval.json'))]
  names += sorted(n for n in os.listdir(root) if n not in names
                  and os.path.exists(os.path.join(root, n, 'eval.json')))
  print('| run | steps x batch | FID (floor) | FID / floor | IS (real) | KID x1e3 (floor) | '
        'precision / recall (floor) | classes covered, entropy | label acc. | train time |')
  print('|---|---|---|---|---|---|---|---|---|---|')
  for n in names:
    s = summarize(os.path.join(root, n))
    if 'fid' not in s:  # No sample metrics (eval.feature_extractor=None).
      continue
    config = json.load(open(os.path.join(root, n, 'config.json')))
    label = fmt(s.get('label_accuracy'), '.3f')
    print(f"| {n} | {s['step']} x {config['data']['batch_size']} | {s['fid']:.2f} ({s['fid_floor']:.2f}) "
          f"| **{s['fid_ratio']:.2f}x** | {s['is']:.2f} ({s['is_real']:.2f}) "
          f"| {1e3 * s['kid']:.2f} ({1e3 * s['kid_floor']:.2f}) "
          f"| {s['precision']:.3f} / {s['recall']:.3f} ({s['precision_floor']:.3f} / {s['recall_floor']:.3f}) "
          f"| {s['classes_covered']}, {s['class_entropy']:.3f} | {label} "
          f"| {s['train_s'] / 60:.1f} min |")


if __name__ == '__main__':
  main(sys.argv[1] if len(sys.argv) > 1 else 'runs/gan_mnist')
