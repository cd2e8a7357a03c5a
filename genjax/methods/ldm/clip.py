"""Stage 2 of the latent diffusion pipeline: CLIP-style pre-training of the text encoder
(method `ldm_clip`; Radford et al. 2021).

A text tower (genjax.models.text.TextEncoder, pooled output projected) and an image tower
(the article's CNN, its logits as the embedding) are trained so that matching
(image, caption) pairs of a batch score highest: the symmetric cross-entropy over the
batch's cosine similarities, at a learned temperature. Each step draws one of every
digit's captions. Evaluation: zero-shot digit accuracy (each test digit against the ten
prompts "the digit k"), zero-shot attribute accuracy, and the CLIP score of the test
pairs (100 x cosine). Each evaluation exports the towers to `<workdir>/clip.npz`; the
LDM stage freezes its text tower, and scores its samples with both.
"""
from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genjax import config as config_lib
from genjax.core import precision
from genjax.core.batching import batched_apply
from genjax.core.state import TrainState
from genjax.data import captions
from genjax.methods.api import EvalContext, Method, StateSpec
from genjax.metrics import weights_file
from genjax.models.classifier import CNNClassifier
from genjax.models.text import TextEncoder

EXPORT = 'clip.npz'


@dataclasses.dataclass(frozen=True)
class ClipSpec:
  """`config.ldm_clip`: the two towers and the contrastive loss.

  Attributes:
    text_width, text_depth, text_heads: the text transformer.
    embed_dim: the joint embedding's size.
    image_channels: the image tower's conv widths.
    temperature: initial softmax temperature (CLIP: 0.07); learned.
    compute_dtype: `train.compute_dtype` (float32 | bfloat16) of both towers; not a field of
      this group (nor of the export: the LDM stage runs the frozen text tower in its own).
      The text projection and the similarity logits stay float32.
  """
  text_width: int = 128
  text_depth: int = 2
  text_heads: int = 4
  embed_dim: int = 64
  image_channels: tuple[int, ...] = (32, 64)
  temperature: float = 0.07
  compute_dtype: str = dataclasses.field(default='float32', metadata={'config': False})

  def __post_init__(self):
    config_lib.check_range('ldm_clip.text_depth', self.text_depth, low=1)
    config_lib.check_range('ldm_clip.temperature', self.temperature, low=0.0, low_open=True)
    if self.text_width % self.text_heads:
      raise config_lib.ConfigError(f'config.ldm_clip.text_width={self.text_width} must divide by '
                                   f'ldm_clip.text_heads={self.text_heads}.')

  @functools.cached_property
  def text_network(self) -> TextEncoder:
    """The text tower (built once per spec), computing in `compute_dtype`."""
    return precision.with_policy(
        TextEncoder(vocab_size=len(captions.VOCAB), width=self.text_width,
                    depth=self.text_depth, num_heads=self.text_heads,
                    max_tokens=captions.MAX_TOKENS), self.compute_dtype)

  @functools.cached_property
  def image_network(self) -> CNNClassifier:
    """The image tower (built once per spec), computing in `compute_dtype`."""
    return precision.with_policy(
        CNNClassifier(num_classes=self.embed_dim, channels=tuple(self.image_channels),
                      feature_dim=2 * self.embed_dim), self.compute_dtype)


def contrastive_loss(image_emb: jax.Array, text_emb: jax.Array, logit_scale: jax.Array) -> jax.Array:
  """CLIP's symmetric InfoNCE: pair i of the batch against every other pairing.

  Args:
    image_emb, text_emb: [B, D], each row normalised to unit length.
    logit_scale: log of the inverse temperature.

  Returns:
    [] mean of the image->text and text->image cross-entropies with targets i = i.
  """
  logits = jnp.exp(logit_scale) * image_emb @ text_emb.T  # [B, B]
  targets = jnp.arange(logits.shape[0])
  return 0.5 * (optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean() +
                optax.softmax_cross_entropy_with_integer_labels(logits.T, targets).mean())


def _normalize(x: jax.Array) -> jax.Array:
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def embed_text(spec: ClipSpec, params, ids: jax.Array) -> jax.Array:
  """Unit text embeddings [B, embed_dim] of token ids [B, T]."""
  _, pooled = spec.text_network.apply({'params': params['text']}, ids)
  return _normalize(pooled @ params['text_proj'])


def embed_image(spec: ClipSpec, params, images: jax.Array) -> jax.Array:
  """Unit image embeddings [B, embed_dim] of images [B, H, W, C] in [-1, 1]."""
  return _normalize(spec.image_network.apply({'params': params['image']}, images))


def init(spec: ClipSpec, state_spec: StateSpec, rng: jax.Array, batch: dict) -> TrainState:
  """Fresh towers; `batch` {'image' [B, H, W, C], 'captions' [B, K, T]} gives the shapes."""
  text_rng, image_rng, proj_rng = jax.random.split(rng, 3)
  text = spec.text_network.init(text_rng, batch['captions'][:, 0])['params']
  image = spec.image_network.init(image_rng, batch['image'])['params']
  proj = jax.random.normal(proj_rng, (spec.text_width, spec.embed_dim)) * spec.text_width**-0.5
  return state_spec.create({'text': text, 'text_proj': proj, 'image': image,
                            'logit_scale': jnp.log(1.0 / jnp.asarray(spec.temperature))})


def pick_captions(batch: dict, rng: jax.Array) -> jax.Array:
  """One of each example's captions, drawn at random: [B, T] from batch['captions'] [B, K, T]."""
  caps = batch['captions']
  which = jax.random.randint(rng, caps.shape[:1], 0, caps.shape[1])
  return jnp.take_along_axis(caps, which[:, None, None], axis=1)[:, 0]


def train_step(spec: ClipSpec, state: TrainState, batch: dict, rng: jax.Array):
  """One contrastive update on {'image' [B, H, W, C], 'captions' [B, K, T]}."""
  ids = pick_captions(batch, rng)

  def loss_fn(params):
    img, txt = embed_image(spec, params, batch['image']), embed_text(spec, params, ids)
    # CLIP clips the inverse temperature at 100.
    return contrastive_loss(img, txt, jnp.minimum(params['logit_scale'], jnp.log(100.0))), (img, txt)

  (loss, (img, txt)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  hits = jnp.argmax(img @ txt.T, axis=1) == jnp.arange(len(ids))
  return state.apply_gradients(grads), {'loss': loss, 'retrieval_accuracy': hits.mean(),
                                        'grad_norm': optax.tree.norm(grads)}


# Jitted once per spec; the parameters are arguments.
_embed_images = jax.jit(embed_image, static_argnums=0)
_embed_texts = jax.jit(embed_text, static_argnums=0)


def embed(spec: ClipSpec, params, images: np.ndarray | None = None, ids: np.ndarray | None = None,
          batch_size: int = 500) -> tuple[np.ndarray | None, np.ndarray | None]:
  """Unit embeddings of images [N, H, W, C] and of token ids [M, T] (either may be None)."""
  img = None if images is None else batched_apply(
      lambda x: _embed_images(spec, params, x), np.asarray(images, np.float32), batch_size)
  txt = None if ids is None else batched_apply(
      lambda t: _embed_texts(spec, params, t), np.asarray(ids, np.int32), batch_size)
  return img, txt


def clip_score(spec: ClipSpec, params, images: np.ndarray, ids: np.ndarray,
               batch_size: int = 500) -> np.ndarray:
  """CLIP score [N] (Hessel et al. 2021, w = 1): 100 max(cos(image, text), 0) of pairs
  images [N, H, W, C] and token ids [N, T]."""
  img, txt = embed(spec, params, images, ids, batch_size)
  return 100.0 * np.maximum(np.sum(img * txt, axis=-1), 0.0)


def zero_shot(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
  """Index [N] of the text [M, D] each image [N, D] scores highest (unit embeddings)."""
  return np.argmax(image_emb @ text_emb.T, axis=1)


def evaluate(spec: ClipSpec, state: TrainState, ctx: EvalContext) -> dict:
  """Zero-shot digit and attribute accuracy, CLIP score of test pairs; exports the towers."""
  c = ctx.config
  test = ctx.load_split(c.eval.split, c.eval.num_examples)
  params, labels, b = state.eval_params, test['label'], c.data.eval_batch_size
  # Every prompt at once: the ten digits, then "thin 0", "medium 0", "thick 0", "thin 1", ...
  prompts = [f'the digit {d}' for d in range(10)] + [
      f'{phrase} {d}' for name in captions.ATTRIBUTES for d in range(10)
      for phrase in captions.PHRASES[name]]
  img, txt = embed(spec, params, test['image'], captions.tokenize(prompts)[0], b)
  _, pairs = embed(spec, params, None, test['captions'][:, 0], b)
  result = {'zero_shot_digit_accuracy': float(np.mean(zero_shot(img, txt[:10]) == labels)),
            'clip_score': float(np.mean(100.0 * np.maximum(np.sum(img * pairs, -1), 0.0))),
            'num_examples': int(len(labels))}
  for a, name in enumerate(captions.ATTRIBUTES):  # "thin 3" / "medium 3" / "thick 3".
    hits = []
    for d in range(10):
      rows = labels == d
      start = 10 + 30 * a + 3 * d
      hits.append(zero_shot(img[rows], txt[start:start + 3]) == test['attributes'][rows, a])
    result[f'zero_shot_{name}_accuracy'] = float(np.mean(np.concatenate(hits)))
  result['temperature'] = float(np.exp(-state.eval_params['logit_scale']))
  if jax.process_index() == 0:
    result['export_sha256'] = weights_file.save(
        params, os.path.join(ctx.workdir, EXPORT),
        {'spec': config_lib.group_values(spec), 'vocab': list(captions.VOCAB), 'step': ctx.step})
  return result


def load_export(workdir: str) -> tuple[ClipSpec, dict, dict]:
  """(spec, params, info) of a finished CLIP stage's export in `workdir`.

  Raises:
    FileNotFoundError: no export there.
    ValueError: the export was trained on another vocabulary.
  """
  path = os.path.join(workdir, EXPORT)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} not found: train the text encoder stage first (`genjax train '
                            f'--config=configs/ldm_clip_mnist.py --workdir={workdir}`).')
  params, info = weights_file.load(path)
  if info.get('vocab') != list(captions.VOCAB):
    raise ValueError(f'{path} was trained on another vocabulary than genjax.data.captions.VOCAB.')
  spec = ClipSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in info['spec'].items()})
  return spec, params, info


def make(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Method:
  """The CLIP stage: `config.ldm_clip` decoded once, the functions bound to it."""
  del image_shape  # Convolutions and a dense layer adapt to any size at init.
  spec = config_lib.decode(ClipSpec, config, 'ldm_clip', compute_dtype=config.train.compute_dtype)
  if config.data.name != 'mnist5k_captions':
    raise config_lib.ConfigError(f"config.data.name={config.data.name!r}: the ldm_clip stage trains "
                                 "on captioned images; use 'mnist5k_captions'.")
  bind = lambda fn: functools.partial(fn, spec)
  return Method(init=functools.partial(init, spec, StateSpec.from_config(config)),
                train_step=bind(train_step), evaluate=bind(evaluate))
