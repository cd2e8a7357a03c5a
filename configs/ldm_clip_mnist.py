"""Stage 2 of latent diffusion on mnist5k: the text encoder, pre-trained CLIP-style on
(digit, caption) pairs of mnist5k_captions, then frozen.

Launch (alone; `genjax train --config=configs/ldm_mnist.py` runs it as its second stage):
  genjax train --config=configs/ldm_clip_mnist.py --workdir=runs/ldm/clip

Expected: zero-shot digit and attribute accuracy and the CLIP score of real test pairs in
eval.json and experiments/latent_diffusion/README.md; the export clip.npz is what the LDM
stage loads.
"""
from configs import base


def get_config(variant=None):
  c = base.get_config('ldm_clip')
  c.data.name = 'mnist5k_captions'
  c.data.batch_size = 128
  c.optim.name = 'adamw'
  c.optim.lr = 1e-3
  c.optim.weight_decay = 1e-4
  c.optim.schedule = 'warmup_cosine'
  c.optim.warmup_steps = 100
  c.optim.end_lr_factor = 0.1
  c.train.num_steps = 400
  c.train.eval_every_steps = 400
  c.train.checkpoint_every_steps = 200
  c.train.images_every_steps = 400
  c.train.xla_cpu_convolutions = 'eigen'
  return base.with_variant(c, variant, {'smoke': smoke})


def smoke(c):
  c = base.smoke(c)
  c.ldm_clip.text_width = 16
  c.ldm_clip.text_depth = 1
  c.ldm_clip.text_heads = 2
  c.ldm_clip.embed_dim = 8
  c.ldm_clip.image_channels = (8, 8)
  return c
