"""Configs of the first layout (one flat `model` and one flat `method` group) -> today's groups.

Runs written before each family owned its config group keep working: their
saved config.json is translated field by field (`migrate`), and an old
command-line key such as `--config.method.gan_loss` is answered with its new
name (`new_key`).
"""
from __future__ import annotations

# Old field name -> (group, new field name), where the group is not the method's own.
_STYLEGAN = {name: ('stylegan', name) for name in (
    'w_dim', 'mapping_layers', 'mapping_lr_mult', 'affine_lr_mult', 'style_mode', 'mbstd_group',
    'pl_weight', 'pl_every', 'pl_batch_shrink', 'pl_decay', 'style_mixing_prob', 'w_avg_beta',
    'truncation_psi')}
_STYLEGAN.update(stylegan_discriminator=('stylegan', 'discriminator'),
                 stylegan_output=('stylegan', 'output'))
_RENAMED = {('gan', 'gan_loss'): 'loss', ('gan', 'name'): 'arch'}


def new_key(method: str, old_group: str, field: str) -> str | None:
  """'gan', 'method', 'gan_loss' -> 'gan.loss'; None when the field has no new home.

  Args:
    method: the run's method name.
    old_group: 'model' or 'method'.
    field: the old field name.
  """
  if old_group not in ('model', 'method'):
    return None
  if method == 'gan' and field in _STYLEGAN:
    group, name = _STYLEGAN[field]
    return f'{group}.{name}'
  if field == 'name' and (old_group == 'method' or method != 'gan'):
    return None  # `method.name` became `method`; one network per family but the GAN's.
  return f'{method}.{_RENAMED.get((method, field), field)}'


def is_v1(saved: dict) -> bool:
  """Whether a saved config dict has the first layout (`method` is a group)."""
  return isinstance(saved.get('method'), dict)


def migrate(saved: dict, groups: dict[str, set[str]]) -> dict:
  """A first-layout config dict in today's layout.

  Args:
    saved: the old dict (from config.json).
    groups: today's family groups of the run's method -> their field names;
      old fields that no group has are dropped (they belonged to other families).

  Returns:
    The dict with `method` the method's name and the family groups filled.
  """
  method = saved['method']['name']
  out = {k: v for k, v in saved.items() if k not in ('model', 'method')}
  out['method'] = method
  for old_group in ('model', 'method'):
    for field, value in saved.get(old_group, {}).items():
      key = new_key(method, old_group, field)
      if key is None:
        continue
      group, name = key.split('.')
      if group in groups and name in groups[group]:
        out.setdefault(group, {})[name] = value
  if method == 'gan' and out.get('gan', {}).get('arch') != 'stylegan':
    out.pop('stylegan', None)
  return out
