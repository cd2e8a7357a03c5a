"""Optimizers and learning-rate schedules from `config.optim`, built with optax."""
from __future__ import annotations

import ml_collections
import optax


SCHEDULES = ('constant', 'warmup_constant', 'cosine', 'warmup_cosine', 'linear')
OPTIMIZERS = ('adam', 'adamw', 'sgd', 'lamb')


def make_schedule(c: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """Learning rate as a function of the step (an optax schedule) for `config.optim`."""
  end = c.lr * c.end_lr_factor
  num_steps = max(num_steps, 2)
  warmup = min(c.warmup_steps, num_steps - 1)  # Tiny (smoke) runs still get a decay phase.
  decay_steps = num_steps - warmup
  if c.schedule == 'constant':
    return optax.constant_schedule(c.lr)
  if c.schedule == 'warmup_constant':
    return optax.linear_schedule(0.0, c.lr, max(warmup, 1))
  if c.schedule == 'cosine':
    return optax.cosine_decay_schedule(c.lr, num_steps, alpha=c.end_lr_factor)
  if c.schedule == 'warmup_cosine':
    return optax.warmup_cosine_decay_schedule(0.0, c.lr, warmup, num_steps, end)
  if c.schedule == 'linear':
    return optax.join_schedules(
        [optax.linear_schedule(0.0, c.lr, warmup), optax.linear_schedule(c.lr, end, decay_steps)],
        [warmup])
  raise ValueError(f'Unknown optim.schedule {c.schedule!r}; accepted: {SCHEDULES}.')


def make_optimizer(c: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """The optimizer of `config.optim` (name, lr, schedule, clipping, weight decay).

  Args:
    c: the `optim` config group.
    num_steps: total training steps, for decaying schedules.
  """
  lr = make_schedule(c, num_steps)
  if c.name == 'adam':
    opt = optax.adam(lr, b1=c.b1, b2=c.b2, eps=c.eps)
  elif c.name == 'adamw':
    opt = optax.adamw(lr, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay)
  elif c.name == 'sgd':
    opt = optax.chain(optax.add_decayed_weights(c.weight_decay),
                      optax.sgd(lr, momentum=c.momentum or None, nesterov=bool(c.momentum)))
  elif c.name == 'lamb':
    opt = optax.lamb(lr, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay)
  else:
    raise ValueError(f'Unknown optim.name {c.name!r}; accepted: {OPTIMIZERS}.')
  if c.grad_clip_norm is not None:
    opt = optax.chain(optax.clip_by_global_norm(c.grad_clip_norm), opt)
  return opt
