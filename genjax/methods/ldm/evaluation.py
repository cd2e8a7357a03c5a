"""The LDM's measures and pictures: does a sample show what its prompt says?

  prompt accuracy     the shipped mnist5k classifier's label of each sample against its
                      prompt's digit (prompts: the test split's captions)
  attribute adherence for prompt pairs differing in one attribute only (thin vs thick, leaning
                      left vs right, small vs large; same digit, template and seed), the
                      fraction of pairs whose samples' measured attribute is ordered as asked
  CLIP score          100 max(cos, 0) of sample and prompt under the CLIP stage's towers,
                      beside the same score of the real test pairs
  FID, precision/recall and the rest of genjax.metrics.suite, against the real-data floor,
                      for the prompted samples and (eval_unconditional) empty-prompt ones
"""
from __future__ import annotations

import os

import jax
import numpy as np

from genjax.data import captions
from genjax.methods import sampling
from genjax.methods.api import EvalContext
from genjax.methods.diffusion import SampleSpec
from genjax.methods.ldm import clip as clip_stage
from genjax.methods.ldm.ldm import Parts, make_sample_fn, sample
from genjax.metrics import extractors, suite
from genjax.core.batching import batched_apply
from genjax.core.state import TrainState
from genjax.diffusion.samplers import nfe
from genjax.viz.grid import save_grid


def draw(parts: Parts, sample_spec: SampleSpec, state: TrainState, rng: jax.Array,
         prompts, batch_size: int = 250) -> np.ndarray:
  """Images [N, H, W, C] in [-1, 1] for N prompts (strings, or token ids [N, T]); sample i
  from key fold_in(rng, i)."""
  ids = prompts if isinstance(prompts, np.ndarray) else captions.tokenize(prompts)[0]
  keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(np.arange(len(ids), dtype=np.uint32))
  # Always whole batches (the last one padded): one compiled sampler for every call.
  return batched_apply(lambda b: sample(parts, sample_spec, state, b['keys'], b['ids']),
                       {'keys': keys, 'ids': np.asarray(ids, np.int32)}, batch_size)


def adherence(parts: Parts, sample_spec: SampleSpec, state: TrainState, rng: jax.Array,
              num_pairs: int, batch_size: int = 250) -> dict:
  """Per attribute: the fraction of prompt pairs (low vs high tercile) whose samples, drawn
  from the same key, measure low < high (genjax.data.captions.measure)."""
  prompts, keys = [], []
  for a, name in enumerate(captions.ATTRIBUTES):  # All 6 * num_pairs samples in one draw.
    low, high, _ = captions.contrast_pairs(name, num_pairs, seed=a)
    pair_keys = [jax.random.fold_in(jax.random.fold_in(rng, a), i) for i in range(num_pairs)]
    prompts += low + high
    keys += pair_keys + pair_keys
  fn = lambda b: sample(parts, sample_spec, state, b['keys'], b['ids'])
  images = batched_apply(fn, {'keys': jax.numpy.stack(keys),
                              'ids': captions.tokenize(prompts)[0]}, batch_size)
  measures = captions.measure(images).reshape(3, 2, num_pairs, 3)
  out = {f'adherence_{name}': float(np.mean(measures[a, 0, :, a] < measures[a, 1, :, a]))
         for a, name in enumerate(captions.ATTRIBUTES)}
  out['adherence_pairs'] = num_pairs
  return out


def evaluate(parts: Parts, sample_spec: SampleSpec, state: TrainState, ctx: EvalContext) -> dict:
  """Prompt accuracy, attribute adherence, CLIP score and sample quality (see the module)."""
  c = ctx.config
  ss = sample_spec
  guided = ss.guidance_scale not in (None, 0, 1)
  result = {'sampler': ss.sampler, 'sample_steps': ss.num_steps, 'guidance_scale': ss.guidance_scale,
            'nfe': nfe(ss.sampler, ss.num_steps) * (2 if guided else 1)}
  n, batch = c.eval.num_samples, c.eval.sample_batch_size
  test = ctx.load_split(c.eval.split, None)
  pick = np.arange(n) % len(test['label'])  # The test split's captions, cycled.
  ids, digits = test['captions'][pick, 0], test['label'][pick]
  samples = draw(parts, ss, state, jax.random.fold_in(ctx.rng, 0), ids, batch)
  if c.eval.feature_extractor is not None:
    extractor = extractors.get_extractor(c.eval.feature_extractor, c.eval.feature_extractor_path)
    train = ctx.load_split(c.data.train_split, None)
    floor = train['image'][np.random.default_rng(c.seed).choice(len(train['image']), n,
                                                                 replace=False)]
    quality = suite.sample_quality(extractor, samples, test['image'], floor, sample_labels=digits,
                                   reference_labels=test['label'], seed=c.seed,
                                   kid_subset_size=c.eval.kid_subset_size,
                                   kid_num_subsets=c.eval.kid_num_subsets)
    result.update(quality)
    result['prompt_accuracy'] = quality['label_accuracy']
    if parts.spec.eval_unconditional:
      uncond = sampling.evaluate_samples(lambda s, k, _: sample(parts, ss, s, k, None), state, ctx)
      result.update({f'uncond_{k}': uncond[k] for k in ('fid', 'fid_floor', 'fid_ratio',
                                                        'precision', 'recall')})
  if parts.clip is not None:
    clip_spec, clip_params = parts.clip
    result['clip_score'] = float(np.mean(clip_stage.clip_score(clip_spec, clip_params, samples, ids)))
    result['clip_score_real'] = float(np.mean(clip_stage.clip_score(
        clip_spec, clip_params, test['image'][pick], ids)))
  if parts.spec.adherence_pairs:
    result.update(adherence(parts, ss, state, jax.random.fold_in(ctx.rng, 1),
                            parts.spec.adherence_pairs, batch))
  return result


DIGIT_PROMPTS = tuple(f'a {w}' for w in captions.DIGIT_WORDS)


def prompt_grid(parts: Parts, sample_spec: SampleSpec, state: TrainState, rng: jax.Array,
                prompts=DIGIT_PROMPTS, num_seeds: int = 8, batch_size: int = 250) -> np.ndarray:
  """[len(prompts) * num_seeds, H, W, C]: row p holds prompt p under seeds 0..num_seeds-1
  (seed s: key fold_in(rng, s), the same in every row)."""
  ids = np.repeat(captions.tokenize(prompts)[0], num_seeds, axis=0)
  keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(
      np.tile(np.arange(num_seeds, dtype=np.uint32), len(prompts)))
  return batched_apply(lambda b: sample(parts, sample_spec, state, b['keys'], b['ids']),
                       {'keys': keys, 'ids': ids}, batch_size)


def guidance_grid(parts: Parts, sample_spec: SampleSpec, state: TrainState, rng: jax.Array,
                  prompt: str, weights=(0.0, 1.0, 2.0, 4.0, 8.0), num_seeds: int = 8) -> np.ndarray:
  """[len(weights) * num_seeds, H, W, C]: row j is `prompt` at guidance weights[j], same seeds."""
  return np.concatenate([prompt_grid(parts, sample_spec.replace(guidance_scale=float(w)), state,
                                     rng, (prompt,), num_seeds, num_seeds) for w in weights])


def interpolation_grid(parts: Parts, sample_spec: SampleSpec, state: TrainState, rng: jax.Array,
                       prompt_a: str, prompt_b: str, num_steps: int = 8,
                       num_seeds: int = 4) -> np.ndarray:
  """[num_seeds * num_steps, H, W, C]: per seed (row), the condition slides from prompt_a to
  prompt_b (token embeddings interpolated), the initial noise fixed."""
  ids = captions.tokenize([prompt_a, prompt_b])[0]
  t = np.linspace(0.0, 1.0, num_steps, dtype=np.float32)
  fn = make_sample_fn(parts, sample_spec, blend=True)
  rows = []
  for s in range(num_seeds):
    keys = jax.numpy.stack([jax.random.fold_in(rng, s)] * num_steps)
    rows.append(np.asarray(fn(state.eval_params, state.extras, keys,
                              np.repeat(ids[:1], num_steps, 0), np.repeat(ids[1:], num_steps, 0), t)))
  return np.concatenate(rows)


def write_images(parts: Parts, sample_spec: SampleSpec, state: TrainState,
                 ctx: EvalContext) -> list[str]:
  """Ten digit prompts x eight seeds (fewer if eval.sample_batch_size < 80), at the configured
  guidance."""
  batch = ctx.config.eval.sample_batch_size
  grid = prompt_grid(parts, sample_spec, state, jax.random.fold_in(ctx.rng, 7),
                     num_seeds=min(8, max(1, batch // 10)), batch_size=batch)  # One batch.
  return [save_grid(grid, os.path.join(ctx.images_dir, f'prompts_{ctx.step:07d}.png'), ncol=8)]
