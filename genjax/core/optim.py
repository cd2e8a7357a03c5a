"""Optimizers and learning-rate schedules from `config.optim`, built with optax, and gradient
accumulation (`train.grad_accum_steps`)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
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


def _summing_tx() -> optax.GradientTransformation:
  """Records gradients instead of applying them: its state is their running sum, its update 0."""
  def update(grads, total, params=None):
    del params
    return jax.tree.map(jnp.zeros_like, grads), jax.tree.map(jnp.add, total, grads)
  return optax.GradientTransformation(lambda p: jax.tree.map(jnp.zeros_like, p), update)


def check_accumulable(abstract_state, k: int) -> None:
  """Refuses gradient accumulation where one large-batch step is not the sum of micro-steps.

  Raises:
    ValueError: k < 1, or a state whose step updates `extras` (BatchNorm running
      statistics, a second optimizer): those updates happen once per micro-batch
      and would not equal one update on the whole batch.
  """
  if k < 1:
    raise ValueError(f'train.grad_accum_steps={k} must be >= 1.')
  if k > 1 and jax.tree.leaves(abstract_state.extras):
    raise ValueError(
        f'train.grad_accum_steps={k} is refused for this method: its step also updates '
        f'state.extras ({sorted(abstract_state.extras)}: BatchNorm statistics or a second '
        'optimizer, as in a GAN), whose per-micro-batch updates are not those of one step on the '
        'whole batch. Use train.grad_accum_steps=1 (with a smaller data.batch_size if memory is '
        'short).')


def accumulate_gradients(train_step, k: int):
  """A step that splits the batch into k micro-batches and makes one update of their mean gradient.

  Each micro-batch runs the method's own step on the unchanged state, with an
  optimizer that only sums the gradients (so every method that updates through
  `TrainState.apply_gradients` works unchanged); the real optimizer then
  applies the mean once, with one EMA update and one step count. With equal
  micro-batches the mean of their mean-loss gradients is the gradient of the
  whole batch's mean loss: the update equals one step on the k-times batch up to
  float rounding, in 1/k of the activation memory. Micro-batch i draws its
  randomness from fold_in(rng, i), so stochastic losses see other draws than a
  one-shot step would. Why not optax.MultiSteps: it spreads one update over k
  calls of the step, so the loop's step count, EMA and schedule would count
  micro-steps; here a step is still one update.

  Args:
    train_step: (state, batch, rng) -> (state, metrics), the method's.
    k: micro-batches per step; the batch size must divide by k (times the devices).

  Returns:
    (state, batch {key: [B, ...]}, rng) -> (state, metrics averaged over the
    micro-batches; 'grad_norm' is the norm of the applied mean gradient).
  """
  if k == 1:
    return train_step

  def step(state, batch, rng):
    size = jax.tree.leaves(batch)[0].shape[0]
    if size % k:
      raise ValueError(f'data.batch_size={size} does not divide into train.grad_accum_steps={k} '
                       'micro-batches.')
    # Micro-batch i takes rows i, i + k, ...: each device keeps its own rows.
    micro = jax.tree.map(lambda x: x.reshape(size // k, k, *x.shape[1:]).swapaxes(0, 1), batch)
    probe = state.replace(tx=_summing_tx(), opt_state=jax.tree.map(jnp.zeros_like, state.params))

    def body(total, inputs):
      mb, i = inputs
      new, metrics = train_step(probe.replace(opt_state=total), mb, jax.random.fold_in(rng, i))
      return new.opt_state, metrics

    total, metrics = jax.lax.scan(body, probe.opt_state, (micro, jnp.arange(k)))
    grads = jax.tree.map(lambda g: g / k, total)
    metrics = jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)
    if 'grad_norm' in metrics:
      metrics['grad_norm'] = optax.tree.norm(grads)
    return state.apply_gradients(grads), metrics

  return step
