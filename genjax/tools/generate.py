"""`genjax generate`: images for a text prompt from a trained latent diffusion run.

  genjax generate --workdir=runs/ldm --prompt="a thick seven leaning right" --num=16 \
      --guidance=3 --out=grid.png

`.png` writes a grid (up to 8 per row); `.npz` writes `images` (uint8 [N, H, W, C]),
`prompts` [N], `seed`, `guidance` and `step`, as `genjax sample` does. Sample i uses the
key fold_in(key(seed), i), whatever the batch size. The empty prompt is the unconditional
model; unknown words are named once and left out; a prompt of unknown words only is refused
with the vocabulary shown.
"""
from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np
from absl import app, flags

from genjax.tools import commands

PROMPT = flags.DEFINE_string('prompt', None, 'The text to draw, in the captions\' grammar '
                             '(experiments/latent_diffusion/README.md); "" is the unconditional '
                             'model.')
PROMPTS = flags.DEFINE_string('prompts', None, 'LDM runs: a text file of prompts, one a line, '
                              'repeated cyclically over the --num samples.')
GUIDANCE = flags.DEFINE_float('guidance', None, 'Classifier-free guidance weight (0: '
                              'unconditional, 1: conditional); default the run\'s '
                              'sample.guidance_scale.')
FLAGS = ('workdir', 'prompt', 'num', 'guidance', 'seed', 'out') + commands.JAX_FLAGS


def run(workdir: str, prompt: str, out: str, *, num: int = 16, guidance: float | None = None,
        seed: int | None = None, log: Callable[[str], None] = print) -> np.ndarray:
  """Draws `num` images of `prompt` from the LDM run in `workdir` and writes `out`.

  Args:
    workdir: an LDM run, or a pipeline's directory (its `ldm` stage is used).
    prompt: the text ('' for the unconditional model).
    out: a .png (grid) or .npz path.
    num: images.
    guidance: classifier-free guidance weight; None: the run's sample.guidance_scale.
    seed: base seed; None: the run's config.seed.
    log: where messages go.

  Returns:
    The images, uint8 [num, H, W, C].

  Raises:
    app.UsageError: `out` is neither .png nor .npz, or the run is not an LDM.
    captions.PromptError: a prompt of unknown words only, or too long.
  """
  import jax  # pylint: disable=g-import-not-at-top

  from genjax.data import captions  # pylint: disable=g-import-not-at-top
  from genjax.methods import sampling  # pylint: disable=g-import-not-at-top
  from genjax.train import pipeline, trained as trained_lib  # pylint: disable=g-import-not-at-top
  from genjax.viz.grid import save_grid, to_uint8  # pylint: disable=g-import-not-at-top

  ext = os.path.splitext(out)[1].lower()
  if ext not in ('.png', '.npz'):
    raise app.UsageError(f'--out={out!r}: write a .png (a grid) or an .npz (images and prompts).')
  workdir = pipeline.resolve_workdir(workdir)
  config = trained_lib.workdir_config(workdir)
  if config.method != 'ldm':
    raise app.UsageError(f'{workdir} is a {config.method!r} run; generate reads latent diffusion '
                         'runs (genjax train --config=configs/ldm_mnist.py).')
  ids, prompts = captions.prompt_batch([prompt], num, log)
  if guidance is not None:
    config.sample.guidance_scale = float(guidance)
  seed = config.seed if seed is None else seed
  t = trained_lib.load_trained(workdir, config)
  images = sampling.draw(t.method.sample, t.state, jax.random.key(seed), num, ids,
                         config.eval.sample_batch_size)
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if ext == '.png':
      save_grid(images, out, ncol=min(8, math.ceil(math.sqrt(num))))
    else:
      np.savez(out, images=to_uint8(images), prompts=prompts, seed=np.int64(seed),
               guidance=np.float64(np.nan if config.sample.guidance_scale is None
                                   else config.sample.guidance_scale), step=np.int64(t.step))
    log(f'Wrote {num} images of {prompt!r} (guidance {config.sample.guidance_scale}, seed {seed}, '
        f'step {t.step}) to {out}.')
  return to_uint8(images)


def run_verb() -> None:
  """`genjax generate`: the flags read, JAX started, `run`; the user's mistakes in one line."""
  from genjax.data import captions  # pylint: disable=g-import-not-at-top
  from genjax.train import pipeline, trained as trained_lib  # pylint: disable=g-import-not-at-top

  f = flags.FLAGS
  try:
    if PROMPT.value is None:
      raise app.UsageError('generate needs --prompt (use --prompt="" for the unconditional model).')
    if f.num < 1:
      raise app.UsageError(f'--num must be >= 1, got {f.num}.')
    config = trained_lib.workdir_config(pipeline.resolve_workdir(f.workdir))
    commands._start_jax(config)  # pylint: disable=protected-access
    run(f.workdir, PROMPT.value, f.out, num=f.num, guidance=GUIDANCE.value, seed=f.seed)
  except (FileNotFoundError, app.UsageError, captions.PromptError) as e:  # One line, exit 2.
    commands.fail(e)
