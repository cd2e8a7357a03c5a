"""Converts a diffusers `UNet2DModel` (google/ddpm-cifar10-32's layout) into a genjax run.

Input: a diffusers model folder with `config.json` and
`diffusion_pytorch_model.safetensors` (read with safetensors, no torch needed)
or `diffusion_pytorch_model.bin` (read with `torch.load(weights_only=True)`,
which unpickles tensors only, never arbitrary objects); the folder may be the
`unet/` of a pipeline; a `scheduler_config.json` beside it (or in `../scheduler/`) is checked.
Output: a genjax workdir (config.json + checkpoint at step 0) of the
diffusion family, eps-parameterised on the VP chain, so `genjax sample`,
`genjax eval` and every sampler run on it.

The architecture maps one to one onto `genjax.models.unet.UNet` with
`flip_sin_to_cos`/`freq_shift` (diffusers' noise-embedding layout) and
`attention_down`/`attention_up` (its per-block attention); the layers' maths
are the same (GroupNorm eps 1e-6, 3x3 stride-2 downsampling padded (0, 1) as
SAME, nearest x2 upsampling, single-head attention with 1/sqrt(C) scale).
Configurations genjax's U-Net cannot express are refused, naming the field.
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genjax.core.checkpoint import Checkpointer

WEIGHT_FILES = ('diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.bin')
# diffusers renamed the attention projections; old checkpoints (ddpm-cifar10-32) use the first.
_ATTN_NAMES = {'to_q': 'query', 'to_k': 'key', 'to_v': 'value', 'to_out.0': 'proj_attn'}


class ConversionError(ValueError):
  """The folder is not a diffusers UNet2DModel that genjax's U-Net can express."""


def load_weights(folder: str) -> dict[str, np.ndarray]:
  """{name: float32 array} of the folder's safetensors (preferred) or .bin weights."""
  for name in WEIGHT_FILES:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
      continue
    if name.endswith('.safetensors'):
      from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
      weights = load_file(path)
    else:
      import torch  # pylint: disable=g-import-not-at-top  # Only for .bin files.
      weights = {k: v.float().numpy() for k, v in
                 torch.load(path, map_location='cpu', weights_only=True).items()}
    return {k: np.asarray(v, np.float32) for k, v in weights.items()}
  raise ConversionError(f'{folder} holds none of {WEIGHT_FILES}: pass a diffusers UNet2DModel '
                        'folder (e.g. the unet/ of google/ddpm-cifar10-32).')


def read_config(folder: str) -> dict:
  """The diffusers model's config.json."""
  path = os.path.join(folder, 'config.json')
  if not os.path.isfile(path):
    raise ConversionError(f'{path} not found: pass a diffusers UNet2DModel folder.')
  with open(path) as f:
    return json.load(f)


def unet_fields(dc: dict) -> dict:
  """The `config.diffusion` fields of a diffusers UNet2DModel config.

  Raises:
    ConversionError: an architecture genjax's U-Net does not express, naming the field.
  """
  def need(key, ok, accepted):
    if not ok(dc.get(key)):
      raise ConversionError(f'diffusers config {key}={dc.get(key)!r} is not supported; '
                            f'genjax converts {accepted}.')

  channels = tuple(dc['block_out_channels'])
  need('_class_name', lambda v: v in (None, 'UNet2DModel'), "'UNet2DModel'")
  need('time_embedding_type', lambda v: v in (None, 'positional'), "'positional'")
  need('act_fn', lambda v: v in (None, 'silu'), "'silu'")
  need('resnet_time_scale_shift', lambda v: v in (None, 'default'), "'default'")
  need('norm_num_groups', lambda v: v in (None, 32) and all(c % 32 == 0 for c in channels),
       '32 groups with block_out_channels multiples of 32')
  need('norm_eps', lambda v: v is None or abs(v - 1e-6) < 1e-12, '1e-6')
  need('downsample_padding', lambda v: v in (None, 0), '0 (conv stride 2, padded (0, 1))')
  need('center_input_sample', lambda v: not v, 'False')
  need('mid_block_scale_factor', lambda v: v in (None, 1, 1.0), '1')
  need('num_class_embeds', lambda v: v is None, 'None (unconditional)')
  need('class_embed_type', lambda v: v is None, 'None')
  need('add_attention', lambda v: v in (None, True), 'True')
  need('attention_head_dim', lambda v: v is None, 'None (single-head attention)')
  need('in_channels', lambda v: v == dc.get('out_channels'), 'in_channels == out_channels')
  down, up = dc['down_block_types'], dc['up_block_types']
  if len(down) != len(channels) or len(up) != len(channels):
    raise ConversionError(f'{len(channels)} block_out_channels but {len(down)} down and '
                          f'{len(up)} up blocks.')
  n = len(channels)
  return dict(channels=channels, num_res_blocks=int(dc['layers_per_block']),
              attention_down_levels=tuple(i for i, t in enumerate(down) if t.startswith('Attn')),
              attention_up_levels=tuple(n - 1 - i for i, t in enumerate(up) if t.startswith('Attn')),
              num_heads=1, embedding_flip_sin_to_cos=bool(dc.get('flip_sin_to_cos', True)),
              embedding_freq_shift=float(dc.get('freq_shift', 0)))


def convert_params(weights: dict[str, np.ndarray], dc: dict) -> dict:
  """genjax UNet parameters (flax names, NHWC/HWIO layouts) from diffusers' state dict."""
  used = set()

  def w(name):
    if name not in weights:
      old = next((name.replace(f'.{k}.', f'.{v}.') for k, v in _ATTN_NAMES.items()
                  if f'.{k}.' in name), None)
      if old is None or old not in weights:
        raise ConversionError(f'weight {name} missing from the checkpoint: not a UNet2DModel '
                              'of this config.')
      name = old
    used.add(name)
    return weights[name]

  conv = lambda p: {'kernel': w(f'{p}.weight').transpose(2, 3, 1, 0), 'bias': w(f'{p}.bias')}
  dense = lambda p: {'kernel': w(f'{p}.weight').T, 'bias': w(f'{p}.bias')}
  norm = lambda p: {'scale': w(f'{p}.weight'), 'bias': w(f'{p}.bias')}

  def resblock(p):
    out = {'GroupNorm_0': norm(f'{p}.norm1'), 'Conv_0': conv(f'{p}.conv1'),
           'Dense_0': dense(f'{p}.time_emb_proj'), 'GroupNorm_1': norm(f'{p}.norm2'),
           'Conv_1': conv(f'{p}.conv2')}
    if f'{p}.conv_shortcut.weight' in weights:
      out['skip'] = conv(f'{p}.conv_shortcut')
    return out

  def attention(p):
    qkv = [dense(f'{p}.{k}') for k in ('to_q', 'to_k', 'to_v')]
    return {'GroupNorm_0': norm(f'{p}.group_norm'),
            'qkv': {'kernel': np.concatenate([d['kernel'] for d in qkv], 1),
                    'bias': np.concatenate([d['bias'] for d in qkv])},
            'proj': dense(f'{p}.to_out.0')}

  fields = unet_fields(dc)
  n, blocks = len(fields['channels']), fields['num_res_blocks']
  params = {'Dense_0': dense('time_embedding.linear_1'), 'Dense_1': dense('time_embedding.linear_2'),
            'stem': conv('conv_in'), 'GroupNorm_0': norm('conv_norm_out'), 'head': conv('conv_out')}
  count = {'ResBlock': 0, 'SelfAttention': 0, 'Downsample': 0, 'Upsample': 0}

  def add(kind, value):  # flax numbers each module type in creation order.
    params[f'{kind}_{count[kind]}'] = value
    count[kind] += 1

  for level in range(n):
    for b in range(blocks):
      add('ResBlock', resblock(f'down_blocks.{level}.resnets.{b}'))
      if level in fields['attention_down_levels']:
        add('SelfAttention', attention(f'down_blocks.{level}.attentions.{b}'))
    if level < n - 1:
      add('Downsample', {'Conv_0': conv(f'down_blocks.{level}.downsamplers.0.conv')})
  add('ResBlock', resblock('mid_block.resnets.0'))
  add('SelfAttention', attention('mid_block.attentions.0'))
  add('ResBlock', resblock('mid_block.resnets.1'))
  for i, level in enumerate(reversed(range(n))):
    for b in range(blocks + 1):
      add('ResBlock', resblock(f'up_blocks.{i}.resnets.{b}'))
      if level in fields['attention_up_levels']:
        add('SelfAttention', attention(f'up_blocks.{i}.attentions.{b}'))
    if level > 0:
      add('Upsample', {'Conv_0': conv(f'up_blocks.{i}.upsamplers.0.conv')})
  unused = sorted(set(weights) - used)
  if unused:
    raise ConversionError(f'{len(unused)} checkpoint weights have no place in the genjax U-Net '
                          f'(first: {unused[:3]}).')
  return jax.tree.map(jnp.asarray, params)


def check_scheduler(folder: str) -> None:
  """Refuses a DDPM scheduler other than genjax's linear VP chain (when the folder has one)."""
  candidates = [os.path.join(folder, 'scheduler_config.json'),  # Single-folder repos.
                os.path.join(os.path.dirname(os.path.abspath(folder)), 'scheduler',
                             'scheduler_config.json')]  # The unet/ of a pipeline.
  path = next((p for p in candidates if os.path.isfile(p)), None)
  if path is None:
    return
  with open(path) as f:
    sc = json.load(f)
  ok = (sc.get('beta_schedule', 'linear') == 'linear' and
        abs(sc.get('beta_start', 1e-4) - 1e-4) < 1e-12 and
        abs(sc.get('beta_end', 0.02) - 0.02) < 1e-12
        and sc.get('prediction_type', 'epsilon') == 'epsilon')
  if not ok:
    raise ConversionError(f'{path}: genjax converts the linear 1e-4..0.02 epsilon DDPM chain, '
                          f'got {sc}.')


def converted_config(base: ml_collections.ConfigDict, dc: dict) -> ml_collections.ConfigDict:
  """`base` (a diffusion config) with the U-Net of diffusers config `dc`, eps on the linear chain."""
  config = ml_collections.ConfigDict(base.to_dict())
  if config.method != 'diffusion':
    raise ConversionError(f'--config must be a diffusion config, got method {config.method!r}.')
  for key, value in unet_fields(dc).items():
    config.diffusion[key] = value
  config.diffusion.parameterization, config.diffusion.loss_weighting = 'eps', 'simple'
  config.diffusion.beta_schedule, config.diffusion.conditional = 'linear', False
  config.diffusion.num_timesteps = int(dc.get('num_train_timesteps') or 1000)
  config.diffusion.attention_resolutions = ()  # The per-level lists above decide.
  return config


def convert(folder: str, workdir: str, base: ml_collections.ConfigDict,
            image_shape: tuple[int, int, int] | None = None) -> str:
  """Writes `workdir` (config.json + step-0 checkpoint) from the diffusers folder.

  Args:
    folder: the diffusers UNet2DModel folder.
    workdir: the genjax run to create (must hold no checkpoint).
    base: the diffusion config to start from (e.g. configs/ddpm_cifar10.py): its data,
      eval and sample groups are kept.
    image_shape: (H, W, C); None: (sample_size, sample_size, in_channels).

  Returns:
    The checkpoint's path.
  """
  from genjax.core import writers  # pylint: disable=g-import-not-at-top
  from genjax.methods import make_method  # pylint: disable=g-import-not-at-top

  dc = read_config(folder)
  check_scheduler(folder)
  config = converted_config(base, dc)
  params = convert_params(load_weights(folder), dc)
  shape = tuple(image_shape or (dc['sample_size'], dc['sample_size'], dc['in_channels']))
  method = make_method(config, shape)
  example = {'image': jnp.zeros((1,) + shape), 'label': jnp.zeros((1,), jnp.int32)}
  abstract = jax.eval_shape(method.init, jax.random.key(0), example)
  got, want = (jax.tree.map(lambda x: x.shape, t) for t in (params, abstract.params))
  if got != want:
    raise ConversionError('the converted parameters do not fit the genjax U-Net of this config: '
                          f'{jax.tree.leaves(got)[:3]} vs {jax.tree.leaves(want)[:3]}.')
  state = jax.jit(method.init)(jax.random.key(0), example)
  state = state.replace(params=params, ema_params=None if state.ema_params is None else params)
  checkpointer = Checkpointer(workdir, config.train.keep_checkpoints)
  if checkpointer.latest_step() is not None:
    raise ConversionError(f'{workdir} already holds checkpoints; pick a fresh --workdir.')
  writers.write_json(os.path.join(workdir, 'config.json'), config.to_dict())
  checkpointer.save(state)
  checkpointer.close()
  return checkpointer.path(0)


def run_command() -> None:
  """`genjax convert-diffusers --input=FOLDER --workdir=RUN [--config=FILE]`."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from genjax import config as config_lib  # pylint: disable=g-import-not-at-top
  from genjax.tools import commands  # pylint: disable=g-import-not-at-top

  base = commands.CONFIG.value or config_lib.load_config(
      os.path.join(commands.REPO, 'configs', 'ddpm_cifar10.py'))
  try:
    path = convert(flags.FLAGS['input'].value, flags.FLAGS['workdir'].value, base)
  except (ConversionError, FileNotFoundError) as e:  # Not a convertible folder: one line.
    commands.fail(e)
  print(f'Wrote {path}; sample with `genjax sample --workdir={flags.FLAGS["workdir"].value} '
        '--num=... --out=...` or evaluate with `genjax eval`.')
