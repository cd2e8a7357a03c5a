"""Latent diffusion text-to-image (Rombach et al. 2022) in three stages, each a method of the
one loop: `ldm_autoencoder` (the KL autoencoder), `ldm_clip` (the text encoder, pre-trained
CLIP-style and then frozen) and `ldm` (the latent U-Net with cross-attention to the text).
`genjax train --config=configs/ldm_mnist.py` runs the three in order
(genjax/train/pipeline.py); `genjax generate` draws images for a prompt.

  autoencoder  AutoencoderSpec, its loss, reconstructions, latent scale, export
  clip         ClipSpec, the contrastive loss, zero-shot accuracy, CLIP score, export
  ldm          LDMSpec, Parts (the loaded stages), training, the guided denoiser, sampling
  evaluation   prompt accuracy, attribute adherence, CLIP score, FID; the pictures
"""
from __future__ import annotations

import functools

import ml_collections

from genjax import config as config_lib
from genjax.methods.api import Method, StateSpec
from genjax.methods.diffusion import SampleSpec
from genjax.methods.ldm import autoencoder, clip, evaluation, ldm
from genjax.methods.ldm.autoencoder import AutoencoderSpec
from genjax.methods.ldm.clip import ClipSpec
from genjax.methods.ldm.ldm import LDMSpec, Parts, load_parts

make_autoencoder = autoencoder.make
make_clip = clip.make


def make_ldm(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Method:
  """The LDM stage: `config.ldm` and `config.sample` decoded, the frozen stages loaded, once."""
  spec = config_lib.decode(LDMSpec, config, 'ldm', compute_dtype=config.train.compute_dtype)
  sample_spec = config_lib.decode(SampleSpec, config, 'sample')
  if config.data.name != 'mnist5k_captions':
    raise config_lib.ConfigError(f"config.data.name={config.data.name!r}: the ldm stage trains on "
                                 "captioned images; use 'mnist5k_captions'.")
  parts = load_parts(spec, tuple(image_shape))
  bind = lambda fn: functools.partial(fn, parts, sample_spec)
  return Method(init=functools.partial(ldm.init, parts, StateSpec.from_config(config)),
                train_step=functools.partial(ldm.train_step, parts),
                evaluate=bind(evaluation.evaluate), sample=bind(ldm.sample),
                write_images=bind(evaluation.write_images))


__all__ = ['AutoencoderSpec', 'ClipSpec', 'LDMSpec', 'Parts', 'autoencoder', 'clip', 'evaluation',
           'ldm', 'load_parts', 'make_autoencoder', 'make_clip', 'make_ldm']
