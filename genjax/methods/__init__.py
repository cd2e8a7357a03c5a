"""Model families ("methods"), registered by name in explicit dicts.

`METHODS` maps a method name (`config.method`) to its `make(config, image_shape)`;
`GROUPS` maps each family config group to the family that owns it and the spec
its fields decode into. A config holds the shared groups plus the groups of
its own family, and nothing else (`check_groups`).
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import ml_collections

from genjax import config as config_lib
from genjax.methods import classifier, config_v1, diffusion, gan, inpaint, vae
from genjax.methods import sr
from genjax.methods import ldm
from genjax.methods.api import EvalContext, Method, StateSpec


@dataclasses.dataclass(frozen=True)
class Group:
  """A family config group. Attributes: owner (the method name), spec (its dataclass), about."""
  owner: str
  spec: Any
  about: str


# method name -> make(config, image_shape (H, W, C)) -> Method
METHODS = {
    'classifier': classifier.make,
    'diffusion': diffusion.make,
    'gan': gan.make,
    'ldm': ldm.make_ldm,
    'ldm_autoencoder': ldm.make_autoencoder,
    'ldm_clip': ldm.make_clip,
    'inpaint': inpaint.make,
    'sr': sr.make,
    'vae': vae.make,
}

# config group -> who owns it. A method's main group has the method's name.
GROUPS = {
    'classifier': Group('classifier', classifier.ClassifierSpec, 'the CNN classifier'),
    'vae': Group('vae', vae.VAESpec, 'VAE, beta-VAE, conditional VAE'),
    'gan': Group('gan', gan.GanSpec, 'MLP GAN, DCGAN, StyleGAN'),
    'stylegan': Group('gan', gan.StyleGANSpec, "StyleGAN's extras, with gan.arch='stylegan'"),
    'diffusion': Group('diffusion', diffusion.DiffusionSpec, 'diffusion U-Net and training'),
    'ldm': Group('ldm', ldm.LDMSpec, 'latent diffusion text-to-image: the latent U-Net'),
    'ldm_autoencoder': Group('ldm_autoencoder', ldm.AutoencoderSpec, "LDM's KL autoencoder"),
    'ldm_clip': Group('ldm_clip', ldm.ClipSpec, 'CLIP-style text encoder pre-training'),
    'inpaint': Group('inpaint', inpaint.InpaintSpec, 'masked autoencoder, partial-conv U-Net'),
    'sr': Group('sr', sr.SRSpec, 'super-resolution: RRDB-PSNR, ESRGAN, SR3 diffusion'),
}


def config_groups(method: str, *extra: str) -> dict[str, ml_collections.ConfigDict]:
  """The default groups of `method` (its main group, plus `extra` groups it owns)."""
  config_lib.check_choice('method', method, sorted(METHODS))
  out = {}
  for name in (method,) + extra:
    config_lib.check_choice('<group>', name, sorted(GROUPS))
    if GROUPS[name].owner != method:
      raise config_lib.ConfigError(f'config.{name} belongs to the {GROUPS[name].owner!r} '
                                   f'family, not to {method!r}.')
    out[name] = config_lib.config_group(GROUPS[name].spec)
  return out


def check_groups(config: ml_collections.ConfigDict) -> None:
  """Refuses a config that holds another family's group, naming the group and its owner."""
  method = config.method
  config_lib.check_choice('method', method, sorted(METHODS))
  for name in config.keys():
    if name in GROUPS and GROUPS[name].owner != method:
      raise config_lib.ConfigError(
          f'config.{name} belongs to the {GROUPS[name].owner!r} family ({GROUPS[name].about}); '
          f'this is a {method!r} config. Remove it, or start from a {GROUPS[name].owner} config.')


def field_owners(field: str) -> list[str]:
  """The family groups that have a field named `field` (for error messages)."""
  return [name for name, g in GROUPS.items()
          if field in {f.name for f in config_lib.group_fields(g.spec)}]


def check_key(config: ml_collections.ConfigDict, key: str) -> None:
  """Refuses a dotted override key (`'vae.w_dim'`) that `config` lacks, saying whose it is.

  Another family's group or field names its owner; a key of the first config
  layout (`model.*`, `method.*`) names its new place; anything else lists the
  group's fields and the closest match.

  Raises:
    ConfigError: one line, naming the key and what is accepted.
  """
  method = config.get('method')
  parts = key.split('.')
  if len(parts) == 2 and parts[0] in ('model', 'method'):  # The first layout.
    new = 'method' if parts == ['method', 'name'] else config_v1.new_key(method, *parts)
    hint = f'it is now config.{new}' if new else 'it has no counterpart today'
    raise config_lib.ConfigError(
        f'config.{key} is a key of the old layout (one flat model/method group); {hint}.')
  node, path = config, []
  for part in key.split('.'):
    fields = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
    if part in fields:
      node, path = node[part], path + [part]
      continue
    where = '.'.join(path)
    if not path and part in GROUPS and GROUPS[part].owner == method:  # Not built in.
      raise config_lib.ConfigError(
          f'config.{key}: this {method!r} config has no config.{part} group '
          f'({GROUPS[part].about}); start from a config built with '
          f'configs.base.get_config({method!r}, {part!r}).')
    if not path and part in GROUPS:  # Another family's group.
      g = GROUPS[part]
      raise config_lib.ConfigError(
          f'config.{key}: the group config.{part} belongs to the {g.owner!r} family ({g.about}); '
          f'this is a {method!r} config, whose own groups are '
          f'{[n for n in fields if n in GROUPS]}.')
    owners = [g for g in field_owners(part) if g != where] if len(path) == 1 else []
    if owners:
      owned = ', '.join(f'config.{g}.{part} (family {GROUPS[g].owner!r})' for g in owners)
      raise config_lib.ConfigError(
          f'config.{key}: config.{where} has no field {part!r}; that field belongs to {owned}, '
          f'not to this {method!r} config.')
    close = difflib.get_close_matches(part, fields, n=1)
    hint = f' Did you mean {".".join(path + close)!r}?' if close else ''
    raise config_lib.ConfigError(f'unknown config key {key!r}: {where or "the config"} has no '
                                 f'field {part!r}; its fields are {sorted(fields)}.{hint}')


def make_method(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Method:
  """Builds the method named by `config.method`, bound to `config` and the data's shape."""
  check_groups(config)
  return METHODS[config.method](config, tuple(image_shape))
