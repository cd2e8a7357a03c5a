"""`genjax stylize`: files in, file out, around `stylize`."""
from __future__ import annotations

import functools
from typing import Callable

from genjax import config as config_lib
from genjax.models import vgg
from genjax.stylize import images, transfer

# The user's mistakes, said in one line by the command line (no traceback).
USERS_ERRORS = (FileNotFoundError, images.ImageError, vgg.WeightsError, config_lib.ConfigError)


def run(content_path: str, style_path: str, out: str, *, weights: str | None = None,
        optimizer: str = 'adam', steps: int = 300, max_side: int = 512,
        log: Callable[[str], None] = functools.partial(print, flush=True)) -> dict:
  """Reads both images (any PIL mode, as RGB), checks the weights, stylises, writes `out`.

  Returns:
    stylize's history.

  Raises:
    USERS_ERRORS: the user's files or flags, refused before any computation.
  """
  content, style = images.read_rgb(content_path), images.read_rgb(style_path)
  if steps < 1 or max_side < 16:
    raise config_lib.ConfigError(f'--steps must be >= 1 and --max_side >= 16, got {steps} and '
                                 f'{max_side}.')
  network = transfer.load_network(weights)  # Read once; a bad file is refused before any work.
  h, w = content.shape[:2]
  hw = transfer.working_size(h, w, max_side)
  if hw != (h, w):
    log(f'content {content_path} is {w}x{h}: working at {hw[1]}x{hw[0]} '
        f'(--max_side={max_side}).')
  image, history = transfer.stylize(content, style, weights=network, optimizer=optimizer,
                                    steps=steps, max_side=max_side, log=log)
  images.write_png(out, image)
  log(f'Wrote {out} ({image.shape[1]}x{image.shape[0]}); loss {history["total"][0]:.4g} -> '
      f'{history["total"][-1]:.4g} in {len(history["total"])} steps, '
      f'{history["seconds"][-1]:.1f} s.')
  return history
