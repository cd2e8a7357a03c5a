"""Neural style transfer: one optimisation of the pixels of one image per (content, style) pair.

Why a function and not a config of the training loop: nothing is trained across a data set.
The network is fixed (VGG19), and what is optimised is a single image, from scratch for each
content/style pair; there are no batches, checkpoints, data pipeline or evaluation split for
`genjax train` to manage. So the method is `stylize(content, style, ...)`, one call per pair.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import config as config_lib
from genjax.core import xla_cpu
from genjax.models import vgg
from genjax.stylize import losses

STYLE_LAYERS = ('block1_conv1', 'block2_conv1', 'block3_conv1', 'block4_conv1', 'block5_conv1')
CONTENT_LAYERS = ('block5_conv2',)
OPTIMIZERS = ('adam', 'lbfgs')
INITS = ('content', 'noise')
NORMS = ('none', 'style')
# The seed's weights, for trained (ImageNet) VGG weights: un-normalised losses.
TRAINED_DEFAULTS = {'content_weight': 1e4, 'style_weight': 1e-2, 'norm': 'none'}
# Random-weight VGG19 (no weights file): each layer's loss relative to its target's size.
RANDOM_DEFAULTS = {'content_weight': 1.0, 'style_weight': 1.0, 'norm': 'style'}
RANDOM_SEED = 0


@dataclasses.dataclass(frozen=True)
class StylizeSpec:
  """How one image is stylised.

  Attributes:
    optimizer: 'adam' (the seed's, lr `lr`) or 'lbfgs' (optax.lbfgs with its zoom line search).
    steps: optimisation steps per resolution level.
    lr: Adam's learning rate on pixels in [0, 1] (seed: 0.02); unused by L-BFGS.
    content_weight, style_weight: the loss weights; None: 1e4 and 1e-2 (the seed's) with a
      weights file, 1 and 1 with the random-weight network.
    tv_weight: weight of `losses.total_variation` (0: off).
    norm: per-layer scaling. 'none' (the seed's): style layer loss mean((G - A)^2), content
      loss mean((F - P)^2). 'style': each divided by its target's mean square, mean(A^2) and
      mean(P^2), so every layer's term is a relative error, 1 at a blank start, whatever
      the scale of its features. None: 'none' with a weights file, 'style' with random weights.
    content_layers, style_layers: VGG layer names (seed: block5_conv2; block1..5_conv1).
    init: 'content' (the seed's) or 'noise' (uniform [0, 1] from `seed`).
    scales: coarse-to-fine levels as fractions of the working size, increasing, last 1.0;
      each level starts from the previous level's result, resized.
    preserve_color: transfer on luminance only (Gatys et al. 2017): the style's luminance
      matched to the content's mean and std, the result's luminance joined with the content's
      chrominance (YIQ).
    max_side: the longer side of the working size (the content is shrunk to it, never grown).
    seed: noise init's seed.
    chunk: steps between reading losses back and updating the progress bar.
  """
  optimizer: str = 'adam'
  steps: int = 1000
  lr: float = 0.02
  content_weight: float | None = None
  style_weight: float | None = None
  tv_weight: float = 0.0
  norm: str | None = None
  content_layers: tuple[str, ...] = CONTENT_LAYERS
  style_layers: tuple[str, ...] = STYLE_LAYERS
  init: str = 'content'
  scales: tuple[float, ...] = (1.0,)
  preserve_color: bool = False
  max_side: int = 512
  seed: int = 0
  chunk: int = 10

  def __post_init__(self):
    config_lib.check_choice('stylize.optimizer', self.optimizer, OPTIMIZERS)
    config_lib.check_choice('stylize.init', self.init, INITS)
    config_lib.check_choice('stylize.norm', self.norm, (None,) + NORMS)
    config_lib.check_range('stylize.steps', self.steps, low=1)
    config_lib.check_range('stylize.lr', self.lr, low=0.0, low_open=True)
    config_lib.check_range('stylize.tv_weight', self.tv_weight, low=0.0)
    config_lib.check_range('stylize.max_side', self.max_side, low=16)
    config_lib.check_range('stylize.chunk', self.chunk, low=1)
    for key in ('content_weight', 'style_weight'):
      if getattr(self, key) is not None:
        config_lib.check_range(f'stylize.{key}', getattr(self, key), low=0.0)
    known = vgg.layer_names('vgg19')
    for layer in self.content_layers + self.style_layers:
      config_lib.check_choice('stylize.layers', layer, known)
    if not self.scales or list(self.scales) != sorted(self.scales) or self.scales[-1] != 1.0 \
        or self.scales[0] <= 0:
      raise config_lib.ConfigError(f'config.stylize.scales={self.scales!r} must increase to 1.0 '
                                   '(e.g. (0.5, 1.0)).')


@dataclasses.dataclass(frozen=True)
class Network:
  """The feature network: VGG19 weights and the preprocessing they need."""
  params: dict
  preprocessing: str
  description: str
  trained: bool


def load_network(weights: str | None = None) -> Network:
  """VGG19 from a converted .npz, or random He-initialised weights (seed RANDOM_SEED).

  The weights are put on the default device (one copy; the file's numpy arrays are dropped).
  """
  if weights is None:
    return Network(jax.device_put(vgg.random_params(RANDOM_SEED)), 'torch',
                   f'random-weight VGG19 (He et al. init, seed {RANDOM_SEED}; no --weights)',
                   trained=False)
  params, _, mode = vgg.load_weights(weights, 'vgg19')
  return Network(jax.device_put(params), mode,
                 f'VGG19 weights from {weights} ({mode} preprocessing)', trained=True)


def working_size(h: int, w: int, max_side: int) -> tuple[int, int]:
  """(H', W') with the aspect ratio of (h, w) and max(H', W') <= max_side (never enlarged)."""
  s = min(1.0, max_side / max(h, w))
  return max(1, round(h * s)), max(1, round(w * s))


def _resize(image: jax.Array, hw: tuple[int, int]) -> jax.Array:
  if tuple(image.shape[:2]) == tuple(hw):
    return image
  return jnp.clip(jax.image.resize(image, (*hw, image.shape[-1]), 'linear', antialias=True),
                  0.0, 1.0)


def _features(params, image, layers, preprocessing, grad_kernels=None):
  x = vgg.preprocess(image[None], preprocessing)
  # XLA's own convolution for every layer ('lax'): genjax.nn.conv's per-layer rule picks
  # im2col for widening layers to speed up *kernel* gradients, which style transfer never
  # takes. For the image's gradient alone, 'lax' ran VGG19 4-8% faster at 256x256, and the
  # whole step took 13% less peak memory at 512 (experiments/style_transfer/README.md).
  net = vgg.network('vgg19', conv_method='lax')
  return {k: v[0] for k, v in net.apply(params, x, layers,
                                        input_grad_kernels=grad_kernels).items()}


@functools.partial(jax.jit, static_argnames=('spec', 'preprocessing', 'norm'),
                   compiler_options=xla_cpu.compiler_options('eigen'))
def _targets(params, content, style, spec: StylizeSpec, preprocessing: str, norm: str):
  """Content features, style Grams and their normalisers (1 unless norm == 'style').

  Jitted, though it runs once per level: op by op, its VGG19 activations are hundreds of
  small allocations that the allocator keeps but the step's one large buffer cannot reuse
  (RSS +400 MiB at 256x256, experiments/style_transfer/memory_probe.py); compiled, they are
  one buffer, freed whole.
  """
  cf = _features(params, content, spec.content_layers, preprocessing)
  sf = _features(params, style, spec.style_layers, preprocessing)
  grams = {k: losses.gram_matrix(v) for k, v in sf.items()}
  if norm == 'style':
    c_scale = {k: jnp.maximum(jnp.mean(jnp.square(v)), 1e-12) for k, v in cf.items()}
    s_scale = {k: jnp.maximum(jnp.mean(jnp.square(v)), 1e-12) for k, v in grams.items()}
  else:
    c_scale = {k: jnp.float32(1.0) for k in cf}
    s_scale = {k: jnp.float32(1.0) for k in grams}
  return {'content': cf, 'grams': grams, 'c_scale': c_scale, 's_scale': s_scale}


def loss_terms(image, params, targets, spec: StylizeSpec, preprocessing: str,
               weights: tuple[float, float], grad_kernels=None) -> tuple[jax.Array, dict]:
  """(total, {'total', 'content', 'style', 'tv'}) of `image` [H, W, 3] against the targets.

  content: mean over content layers of `losses.content_loss`; style: mean over style layers
  of `losses.style_layer_loss` (the seed divides by the layer count); total: content_weight *
  content + style_weight * style + tv_weight * tv. `grad_kernels`:
  `vgg.input_grad_kernels(params)` for a faster image gradient (same values), or None.
  """
  layers = tuple(dict.fromkeys(spec.content_layers + spec.style_layers))
  feats = _features(params, image, layers, preprocessing, grad_kernels)
  content = sum(losses.content_loss(feats[k], targets['content'][k], targets['c_scale'][k])
                for k in spec.content_layers) / len(spec.content_layers)
  style = sum(losses.style_layer_loss(feats[k], targets['grams'][k], targets['s_scale'][k])
              for k in spec.style_layers) / len(spec.style_layers)
  tv = losses.total_variation(image)
  total = weights[0] * content + weights[1] * style + spec.tv_weight * tv
  return total, {'total': total, 'content': content, 'style': style, 'tv': tv}


def _optimizer(spec: StylizeSpec) -> optax.GradientTransformation:
  return optax.adam(spec.lr) if spec.optimizer == 'adam' else optax.lbfgs()


# Eigen's convolutions on XLA:CPU: 1.70 against YNNPACK's 0.78 steps/s at 256x256 (both on the
# idle 2-core box, experiments/style_transfer/README.md); other backends ignore the option.
@functools.partial(jax.jit, static_argnames=('spec', 'preprocessing', 'weights'),
                   donate_argnums=0,  # Not the state: L-BFGS's init shares buffers.
                   compiler_options=xla_cpu.compiler_options('eigen'))
def _step(image, opt_state, params, grad_kernels, targets, *, spec, preprocessing, weights):
  """One optimisation step; the iterate is clipped to [0, 1].

  `grad_kernels` (`vgg.input_grad_kernels(params)`, computed once per call of `stylize`):
  VGG19's kernels as its image gradient needs them, so that the step does not copy them
  afresh (48 of 380 ms per step at 256x256).

  One jitted step driven from Python, not a `lax.scan` of steps: XLA:CPU ran VGG19's
  value-and-gradient 3-7x slower inside a scan's loop body than as a jitted function of its
  own (experiments/style_transfer/README.md, "Speed"), and dispatch is asynchronous, so the
  Python loop costs nothing. L-BFGS evaluates the loss afresh at each clipped iterate (the
  value and gradient its line search left in the state belong to the unclipped point).
  """
  opt = _optimizer(spec)

  def value(x):
    return loss_terms(x, params, targets, spec, preprocessing, weights, grad_kernels)

  (loss, aux), grad = jax.value_and_grad(value, has_aux=True)(image)
  if spec.optimizer == 'lbfgs':
    updates, opt_state = opt.update(grad, opt_state, image, value=loss, grad=grad,
                                    value_fn=lambda y: value(y)[0])
  else:
    updates, opt_state = opt.update(grad, opt_state, image)
  return jnp.clip(optax.apply_updates(image, updates), 0.0, 1.0), opt_state, aux


def stylize(content: np.ndarray, style: np.ndarray, *, weights: str | Network | None = None,
            optimizer: str = 'adam', steps: int = 1000, max_side: int = 512,
            progress: bool = True, log: Callable[[str], None] | None = print,
            **options) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """Renders `content` in the style of `style` (Gatys et al. 2016) by optimising its pixels.

  It is a function, not a config of the training loop: nothing is trained across a data set;
  one image is optimised, once per (content, style) pair, against a fixed network.

  The network: VGG19 from `weights` (a .npz of genjax.tools.convert_vgg), else a random-weight
  VGG19 (He et al. init, seed 0), announced by one line through `log`. Random VGG features
  still carry texture statistics (Ustyuzhaninov et al. 2017; He, Wang & Hopcroft 2016), but
  their layers' Gram matrices differ in scale by orders of magnitude, so with the seed's
  un-normalised losses the largest layer decides everything; there the default is
  norm='style': each layer's loss divided by its target's mean square (mean(A^2) for a Gram,
  mean(P^2) for content features), making every term a relative error that each layer
  contributes to equally (see StylizeSpec).

  Args:
    content: [H, W, 3] floats in [0, 1] (RGB).
    style: [h, w, 3] floats in [0, 1].
    weights: path of a converted VGG19 .npz, a `Network` already loaded (`load_network`),
      or None for the random network.
    optimizer: 'adam' | 'lbfgs'.
    steps: optimisation steps per resolution level.
    max_side: the working size's longer side (the content is shrunk to fit, never grown);
      the style is resized so that its longer side is the working size's longer side.
    progress: show a tqdm bar.
    log: where the one-line network announcement goes (None: nowhere).
    **options: other `StylizeSpec` fields (lr, content_weight, style_weight, tv_weight, norm,
      init, scales, preserve_color, seed, chunk, content_layers, style_layers).

  Returns:
    (image [H', W', 3] float32 in [0, 1] at the working size, history) where history maps
    'total', 'content', 'style', 'tv' to [S] per-step losses (of the iterate before each
    step), 'level' to [S] resolution level, 'seconds' to [S] cumulative wall time, S =
    steps * len(scales).

  Raises:
    ConfigError: an option outside what is accepted.
    FileNotFoundError, genjax.models.vgg.WeightsError: a missing or wrong weights file.
  """
  spec = StylizeSpec(optimizer=optimizer, steps=steps, max_side=max_side, **options)
  content = np.asarray(content, np.float32)
  style = np.asarray(style, np.float32)
  for name, image in (('content', content), ('style', style)):
    if image.ndim != 3 or image.shape[-1] != 3:
      raise ValueError(f'{name} must be [H, W, 3] RGB, got shape {image.shape}.')
  net = weights if isinstance(weights, Network) else load_network(weights)
  defaults = TRAINED_DEFAULTS if net.trained else RANDOM_DEFAULTS
  cw = defaults['content_weight'] if spec.content_weight is None else spec.content_weight
  sw = defaults['style_weight'] if spec.style_weight is None else spec.style_weight
  norm = spec.norm or defaults['norm']
  if log is not None:
    log(f'stylize: network {net.description}; losses: content {cw:g} x {spec.content_layers[0]}'
        f'{"..." if len(spec.content_layers) > 1 else ""}, style {sw:g} x '
        f'{len(spec.style_layers)} layers, norm={norm!r}.')
  hw = working_size(*content.shape[:2], spec.max_side)
  style_hw = working_size(*style.shape[:2], max(hw))
  style_hw = tuple(round(s * max(hw) / max(style_hw)) for s in style_hw)
  content_full = _resize(jnp.asarray(content), hw)
  style_full = _resize(jnp.asarray(style), style_hw)
  chroma = None
  if spec.preserve_color:
    c_yiq, s_yiq = losses.rgb_to_yiq(content_full), losses.rgb_to_yiq(style_full)
    chroma = c_yiq[..., 1:]
    s_y = losses.match_luminance(s_yiq[..., :1], c_yiq[..., :1])
    content_full = jnp.repeat(c_yiq[..., :1], 3, -1).clip(0.0, 1.0)
    style_full = jnp.repeat(s_y, 3, -1)
  # On the device once (a no-op for `load_network`'s): numpy weights would be copied to the
  # device at every step, 80 MB for VGG19 (a 256x256 step 416 against 394 ms on XLA:CPU).
  params = jax.device_put(net.params)
  grad_kernels = jax.jit(vgg.input_grad_kernels)(params)
  image, parts, start = None, [], time.perf_counter()
  bar = _progress(spec.steps * len(spec.scales), progress)
  for level, scale in enumerate(spec.scales):
    level_hw = tuple(max(16, round(s * scale)) for s in hw)
    level_style_hw = tuple(max(16, round(s * scale)) for s in style_hw)
    content_l, style_l = _resize(content_full, level_hw), _resize(style_full, level_style_hw)
    if image is None:
      # A copy: the steps donate their image, and content_l may be content_full itself.
      image = jnp.copy(content_l) if spec.init == 'content' else jax.random.uniform(
          jax.random.key(spec.seed), content_l.shape, jnp.float32)
    else:
      image = _resize(image, level_hw)
    targets = _targets(params, content_l, style_l, spec, net.preprocessing, norm)
    opt_state = _optimizer(spec).init(image)
    for first in range(0, spec.steps, spec.chunk):
      length = min(spec.chunk, spec.steps - first)
      auxes = []
      for _ in range(length):  # Losses read back once per chunk.
        image, opt_state, aux = _step(image, opt_state, params, grad_kernels, targets,
                                      spec=spec, preprocessing=net.preprocessing,
                                      weights=(cw, sw))
        # One step in flight: steps dispatched ahead each held their own buffers on XLA:CPU
        # (a chunk of 4: RSS +700-940 MiB at 256x256 against +270-600 one at a time,
        # experiments/style_transfer/memory_probe.py). Waiting costs nothing next to a step.
        image.block_until_ready()
        auxes.append(aux)
      aux = {k: np.stack([np.asarray(a[k]) for a in jax.device_get(auxes)]) for k in auxes[0]}
      now = time.perf_counter() - start
      aux['level'] = np.full(length, level, np.int32)
      aux['seconds'] = np.full(length, now, np.float64)
      parts.append(aux)
      if bar is not None:
        bar.update(length)
        bar.set_postfix(loss=f'{float(aux["total"][-1]):.4g}')
  if bar is not None:
    bar.close()
  if chroma is not None:
    image = jnp.clip(losses.yiq_to_rgb(jnp.concatenate([image[..., :1], chroma], -1)), 0.0, 1.0)
  history = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  return np.asarray(image, np.float32), history


def _progress(total: int, show: bool):
  if not show:
    return None
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

  return tqdm(total=total, desc='stylize', unit='step')


def evaluate(image: np.ndarray, content: np.ndarray, style: np.ndarray, *, seed: int = 1,
             layers: tuple[str, ...] = STYLE_LAYERS, content_layer: str = 'block4_conv2'
             ) -> dict[str, float]:
  """An independent check: distances under a random VGG19 of another seed (norm='style').

  Returns:
    {'style_distance': mean over `layers` of relative Gram error to the style,
     'content_distance': relative feature error to the content at `content_layer`}.
  """
  params = vgg.random_params(seed)
  hw = image.shape[:2]
  content = _resize(jnp.asarray(content, jnp.float32), hw)
  style_hw = working_size(*style.shape[:2], max(hw))
  style = _resize(jnp.asarray(style, jnp.float32),
                  tuple(round(s * max(hw) / max(style_hw)) for s in style_hw))
  f = _features(params, jnp.asarray(image), layers + (content_layer,), 'torch')
  fc = _features(params, content, (content_layer,), 'torch')[content_layer]
  fs = _features(params, style, layers, 'torch')
  grams = {k: losses.gram_matrix(v) for k, v in fs.items()}
  style_d = np.mean([float(losses.style_layer_loss(f[k], grams[k], jnp.mean(jnp.square(grams[k]))))
                     for k in layers])
  content_d = float(losses.content_loss(f[content_layer], fc, jnp.mean(jnp.square(fc))))
  return {'style_distance': float(style_d), 'content_distance': content_d}
