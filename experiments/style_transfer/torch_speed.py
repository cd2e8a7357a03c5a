"""Adam iterations per second of `genjax.stylize.stylize` vs the same algorithm in PyTorch.

    .venv/bin/python experiments/style_transfer/torch_speed.py --sides=256 --steps=12 --chunk=4 \
        [--repeats=5]

Both sides optimise the same pixels from the same start against the same network: genjax's
random-weight VGG19 (He et al. init, seed 0) copied into a plain `torch.nn.Sequential` with
torchvision's key names (`features.N.weight` [C_out, C_in, 3, 3], loaded with
`load_state_dict(strict=True)`), torch preprocessing, content loss at block5_conv2 and style
losses at block1..5_conv1 (post-ReLU), each divided by its target's mean square (norm='style',
weights 1 and 1), Adam lr 0.02, the image clipped to [0, 1] after every step. The losses of
both are printed side by side: they agree to float32 rounding when the algorithms are the same.

Each framework runs in its own child process (no shared threads, caches or allocator; its own
peak RSS, `ru_maxrss`); the torch one imports neither jax nor genjax (the genjax child writes the
weights, transposed to OIHW, to a temporary .npz). genjax: the public `stylize` call with
`chunk` steps between read-backs, glibc keeping freed memory as the `genjax` command line does;
its rate is taken after the first chunk (XLA compilation). torch: `steps` eager steps; its rate
after the first `chunk` steps. Printed: steps/s of each and the ratio genjax/torch (> 1: genjax
faster).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

STYLE_LAYERS = ('block1_conv1', 'block2_conv1', 'block3_conv1', 'block4_conv1', 'block5_conv1')
CONTENT_LAYER = 'block5_conv2'
LR = 0.02


def images(side: int) -> tuple[np.ndarray, np.ndarray]:
  """(content, style) [side, side, 3] in [0, 1]: smooth blobs, and waves crossed with rings."""
  yy, xx = np.mgrid[0:side, 0:side] / side * 2 * np.pi
  content = np.stack([0.5 + 0.4 * np.sin(xx) * np.cos(yy), 0.5 + 0.4 * np.cos(2 * xx),
                      0.5 + 0.4 * np.sin(yy + xx)], -1)
  r = np.hypot(xx - np.pi, yy - np.pi)
  waves, rings = np.sin(6 * xx + 3 * np.sin(2 * yy)), np.sin(10 * r)
  style = np.stack([0.5 + 0.5 * waves, 0.5 + 0.5 * rings * waves, 0.5 - 0.5 * rings], -1)
  return np.clip(content, 0, 1).astype(np.float32), np.clip(style, 0, 1).astype(np.float32)


def _peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB.


def run_genjax(side: int, steps: int, chunk: int) -> dict:
  from genjax import stylize  # pylint: disable=g-import-not-at-top
  from genjax.core import malloc  # pylint: disable=g-import-not-at-top

  malloc.keep_freed_memory()  # As `genjax stylize` does (--keep_freed_memory, on by default).
  content, style = images(side)
  _, history = stylize.stylize(content, style, optimizer='adam', steps=steps, max_side=side,
                               lr=LR, chunk=chunk, progress=False, log=None)
  seconds = history['seconds']
  timed = (seconds[-1] - seconds[chunk - 1])
  return {'steps_per_s': (steps - chunk) / timed, 'first_chunk_s': float(seconds[chunk - 1]),
          'losses': [float(v) for v in history['total']], 'peak_rss_mib': _peak_rss_mib()}


def save_torch_weights(path: str) -> None:
  """genjax's random-weight VGG19 (seed 0) as torchvision's state dict keys, in a plain .npz."""
  from genjax.models import vgg  # pylint: disable=g-import-not-at-top
  from genjax.stylize.transfer import RANDOM_SEED  # pylint: disable=g-import-not-at-top
  from genjax.tools import convert_vgg  # pylint: disable=g-import-not-at-top

  params = vgg.random_params(RANDOM_SEED)['params']  # The very weights `stylize` uses.
  state = {}
  for name, index in convert_vgg.torch_conv_indices('vgg19').items():
    state[f'features.{index}.weight'] = params[name]['kernel'].transpose(3, 2, 0, 1)  # OIHW.
    state[f'features.{index}.bias'] = params[name]['bias']
  np.savez(path, **state)


# torchvision's VGG19 ('E'): channels of each 3x3 conv, 'M' a 2x2 max pool.
TORCHVISION_VGG19 = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512,
                     'M', 512, 512, 512, 512, 'M')


def run_torch(side: int, steps: int, chunk: int, weights: str) -> dict:
  """The same optimisation in eager PyTorch; imports neither jax nor genjax."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  modules, names, c_in, block, conv = [], {}, 3, 1, 1
  for v in TORCHVISION_VGG19:
    if v == 'M':
      modules.append(nn.MaxPool2d(2, 2))
      block, conv = block + 1, 1
    else:
      names[len(modules) + 1] = f'block{block}_conv{conv}'  # Its ReLU's output (post-ReLU).
      modules += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU()]
      c_in, conv = v, conv + 1
  features = nn.Sequential(*modules)
  model = nn.Module()
  model.features = features
  with np.load(weights) as z:
    model.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files}, strict=True)
  model.requires_grad_(False)
  wanted = {i: k for i, k in names.items() if k in STYLE_LAYERS + (CONTENT_LAYER,)}
  last = max(wanted)
  mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)  # torchvision's ImageNet ones.
  std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)

  def feats(image):  # image [1, 3, H, W] in [0, 1].
    x, out = (image - mean) / std, {}
    for i, layer in enumerate(features):
      x = layer(x)
      if i in wanted:
        out[wanted[i]] = x
      if i == last:
        return out
    return out

  def gram(f):
    _, c, h, w = f.shape
    flat = f.reshape(c, h * w)
    return flat @ flat.T / (h * w)

  content_np, style_np = images(side)
  to_torch = lambda a: torch.from_numpy(a.transpose(2, 0, 1)[None].copy())  # noqa: E731
  content, style = to_torch(content_np), to_torch(style_np)
  with torch.no_grad():
    target_c = feats(content)[CONTENT_LAYER]
    target_g = {k: gram(v) for k, v in feats(style).items() if k in STYLE_LAYERS}
    c_scale = target_c.square().mean().clamp_min(1e-12)
    s_scale = {k: g.square().mean().clamp_min(1e-12) for k, g in target_g.items()}
  image = content.clone().requires_grad_(True)
  opt = torch.optim.Adam([image], lr=LR)
  losses, marks = [], []
  start = time.perf_counter()
  for _ in range(steps):
    opt.zero_grad(set_to_none=True)
    f = feats(image)
    c = (f[CONTENT_LAYER] - target_c).square().mean() / c_scale
    s = sum((gram(f[k]) - target_g[k]).square().mean() / s_scale[k]
            for k in STYLE_LAYERS) / len(STYLE_LAYERS)
    loss = c + s
    loss.backward()
    opt.step()
    with torch.no_grad():
      image.clamp_(0.0, 1.0)
    losses.append(float(loss))
    marks.append(time.perf_counter() - start)
  return {'steps_per_s': (steps - chunk) / (marks[-1] - marks[chunk - 1]),
          'first_chunk_s': marks[chunk - 1], 'losses': losses, 'peak_rss_mib': _peak_rss_mib(),
          'threads': torch.get_num_threads(), 'torch': torch.__version__}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--sides', default='256', help='Comma list of image sides.')
  parser.add_argument('--steps', type=int, default=12)
  parser.add_argument('--chunk', type=int, default=4, help='Warm-up steps, excluded from rates '
                      '(genjax: steps per jitted scan; the first includes compilation).')
  parser.add_argument('--repeats', type=int, default=1,
                      help='Rounds per side, each a genjax and a torch child, the order '
                      'alternating; prints the median of the rounds\' ratios (the box\'s speed '
                      'drifts by up to 25%% between minutes).')
  parser.add_argument('--worker', choices=('genjax', 'torch'), help=argparse.SUPPRESS)
  parser.add_argument('--weights', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.steps % args.chunk or args.steps <= args.chunk:
    parser.error('--steps must be a multiple of --chunk, and larger.')
  if args.worker == 'genjax':
    save_torch_weights(args.weights)
    print(json.dumps(run_genjax(int(args.sides), args.steps, args.chunk)))
    return
  if args.worker == 'torch':
    print(json.dumps(run_torch(int(args.sides), args.steps, args.chunk, args.weights)))
    return
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = {**os.environ, 'PYTHONPATH': repo + os.pathsep + os.environ.get('PYTHONPATH', '')}
  weights = os.path.join(tempfile.mkdtemp(), 'vgg19_random_torch.npz')
  print(f'{os.cpu_count()} CPUs; {args.steps} Adam steps, the first {args.chunk} excluded.')
  for side in (int(s) for s in args.sides.split(',')):
    ratios = []
    for round_ in range(args.repeats):
      result = {}
      order = ('genjax', 'torch') if round_ % 2 == 0 else ('torch', 'genjax')
      for worker in order:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), f'--sides={side}',
                               f'--steps={args.steps}', f'--chunk={args.chunk}',
                               f'--worker={worker}', f'--weights={weights}'], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode:
          sys.exit(f'{worker} worker failed:\n{done.stderr}')
        result[worker] = json.loads(done.stdout.strip().splitlines()[-1])
      g, t = result['genjax'], result['torch']
      ratios.append(g['steps_per_s'] / t['steps_per_s'])
      diff = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(g['losses'], t['losses']))
      print(f'{side}x{side}: genjax {g["steps_per_s"]:.3f} steps/s (first chunk incl. compile '
            f'{g["first_chunk_s"]:.1f} s, peak RSS {g["peak_rss_mib"]:.0f} MiB); torch '
            f'{t["torch"]} ({t["threads"]} threads) {t["steps_per_s"]:.3f} steps/s (first '
            f'{args.chunk} steps {t["first_chunk_s"]:.1f} s, peak RSS {t["peak_rss_mib"]:.0f} '
            f'MiB); ratio genjax/torch {ratios[-1]:.2f} ({order[0]} ran first)')
      print(f'  loss start {g["losses"][0]:.5f} (genjax) {t["losses"][0]:.5f} (torch); end '
            f'{g["losses"][-1]:.5f} / {t["losses"][-1]:.5f}; max relative difference over '
            f'steps {diff:.1e}', flush=True)
    if args.repeats > 1:
      print(f'{side}x{side}: median ratio genjax/torch over {args.repeats} rounds '
            f'{np.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})', flush=True)

if __name__ == '__main__':
  main()
