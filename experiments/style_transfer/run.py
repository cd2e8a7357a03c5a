"""Neural style transfer on bundled photos with the offline default (random-weight VGG19).

    .venv/bin/python experiments/style_transfer/run.py --side=128 --adam_steps=60 --lbfgs_steps=20
    .venv/bin/python experiments/style_transfer/run.py --side=256 --content=coffee --tag=_coffee256

Writes, beside this file (names end with --tag): panels.png (content, style, Adam, L-BFGS, noise init, colour
preserved), losses.png (content and style loss against iterations and wall time, Adam vs
L-BFGS) and results.json (final losses, seconds, and distances under a VGG19 of another seed).
"""
import argparse
import json
import os
import time

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
import skimage.transform  # noqa: E402

from genjax import stylize  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def texture(side: int) -> np.ndarray:
  """A procedural style: coloured waves crossed with rings, [side, side, 3] in [0, 1]."""
  yy, xx = np.mgrid[0:side, 0:side] / side * 2 * np.pi
  r = np.hypot(xx - np.pi, yy - np.pi)
  waves = np.sin(6 * xx + 3 * np.sin(2 * yy))
  rings = np.sin(10 * r)
  img = np.stack([0.5 + 0.5 * waves, 0.5 + 0.5 * rings * waves, 0.5 - 0.5 * rings], -1)
  return np.clip(img, 0, 1).astype(np.float32)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--side', type=int, default=128)
  parser.add_argument('--adam_steps', type=int, default=60)
  parser.add_argument('--lbfgs_steps', type=int, default=20)
  parser.add_argument('--content', default='astronaut', choices=['astronaut', 'coffee', 'chelsea'])
  parser.add_argument('--style', default='texture',
                      help="'texture' (procedural waves x rings) or a skimage.data photo name")
  parser.add_argument('--tag', default='', help='suffix of the written files, e.g. _coffee256')
  args = parser.parse_args()
  photo = getattr(skimage.data, args.content)()
  content = skimage.transform.resize(photo, (args.side, args.side), anti_aliasing=True)
  content = content.astype(np.float32)
  if args.style == 'texture':
    style = texture(args.side)
  else:
    style = skimage.transform.resize(getattr(skimage.data, args.style)()[..., :3],
                                     (args.side, args.side), anti_aliasing=True).astype(np.float32)
  runs = {
      'Adam': dict(optimizer='adam', steps=args.adam_steps),
      'L-BFGS': dict(optimizer='lbfgs', steps=args.lbfgs_steps),
      'Adam, noise init': dict(optimizer='adam', steps=args.adam_steps, init='noise'),
      'Adam, colour preserved': dict(optimizer='adam', steps=args.adam_steps, preserve_color=True),
  }
  images, histories, results = {}, {}, {}
  for name, options in runs.items():
    start = time.perf_counter()
    image, history = stylize.stylize(content, style, max_side=args.side, progress=False,
                                     **options)
    seconds = time.perf_counter() - start
    images[name], histories[name] = image, history
    before = stylize.evaluate(content if options.get('init') != 'noise' else
                              np.random.default_rng(0).uniform(size=content.shape), content, style)
    after = stylize.evaluate(image, content, style)
    results[name] = {'steps': options['steps'], 'seconds_with_compile': round(seconds, 1),
                     'total': [float(history['total'][0]), float(history['total'][-1])],
                     'content': [float(history['content'][0]), float(history['content'][-1])],
                     'style': [float(history['style'][0]), float(history['style'][-1])],
                     'check_seed1_before': before, 'check_seed1_after': after}
    print(name, json.dumps(results[name]), flush=True)
  results['setup'] = {'side': args.side, 'content': args.content, 'style': args.style,
                      'network': 'random-weight VGG19, He init, seed 0', 'date': '2026-12-06',
                      'machine': '2-core CPU (shared)'}
  with open(os.path.join(HERE, f'results{args.tag}.json'), 'w') as f:
    json.dump(results, f, indent=2)
  panels = [('content', content), ('style', style)] + list(images.items())
  fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3))
  for ax, (title, img) in zip(axes, panels):
    ax.imshow(np.clip(img, 0, 1))
    ax.set_title(title, fontsize=9)
    ax.axis('off')
  fig.tight_layout()
  fig.savefig(os.path.join(HERE, f'panels{args.tag}.png'), dpi=100)
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
  for name in ('Adam', 'L-BFGS'):
    h = histories[name]
    steps = np.arange(len(h['total']))
    axes[0].semilogy(steps, h['content'] + 1e-8, label=name)
    axes[1].semilogy(steps, h['style'], label=name)
    axes[2].semilogy(h['seconds'], h['total'], 'o-', ms=3, label=name)
  for ax, title, xlabel in zip(axes, ('content loss (normalised)', 'style loss (normalised)',
                                      'total loss vs wall time'), ('step', 'step', 'seconds')):
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(HERE, f'losses{args.tag}.png'), dpi=100)


if __name__ == '__main__':
  main()
