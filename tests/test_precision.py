"""Mixed precision (train.compute_dtype='bfloat16'): a bf16 step stays close to the float32 step.

Tolerances, measured on these tiny models with two SGD steps (lr 1, so the update
is minus the gradients) on the same batch and keys: relative error of the second
step's loss and relative L2 error of the whole update. bf16 keeps 8 bits of mantissa (relative
rounding 2^-9 = 0.2%), and errors grow through the layers, so a few percent is
expected; the GAN with BatchNorm at batch 8 drifts most.

The newer families' tolerances are about twice their errors measured on XLA:CPU (2026-12-06),
relative loss error / relative update error, and the share of convs/matmuls in bf16:
  ldm_autoencoder  1.6e-3 / 7.7e-2, 100%  (2x2 latents; at 28x28 with the config's widths the
                                           first step's gradient is 2.4% off)
  ldm_clip         1.8e-3 / 4.7e-2,  80%  (the text projection and the similarity logits stay
                                           float32: 11 of 56 products)
  ldm              8.9e-4 / 6.0e-3,  92%
  sr_rrdb_psnr     3.7e-5 / 6.4e-3,  97%  (the bicubic skip's two resize products are float32)
  inpaint_pconv    1.6e-2 / 1.2e-1, 100%  (L1 losses on an untrained 16x16 U-Net: a pixel
                                           whose prediction is within bf16's rounding of the
                                           target flips its gradient's sign. The first step's
                                           update is 1.8% off, and with lr 1 that moves the
                                           second step's gradient by 12%: chaotically, as the
                                           bias add in bf16 (worse first-step gradients:
                                           genjax/models/pconv.py) gave 3%)
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.core import precision
from genjax.data import captions
from genjax.diffusion import samplers as samplers_lib
from genjax.methods import make_method

# (config, image shape, overrides, loss rtol, update rtol)
FAMILIES = {
    'classifier': ('classifier_mnist.py:smoke', (8, 8, 1),
                   dict(classifier__channels=(4, 8), classifier__feature_dim=16), 0.01, 0.05),
    'vae': ('vae_mnist.py:smoke', (8, 8, 1),
            dict(vae__channels=(4, 8), vae__hidden_dim=16, vae__latent_dim=4), 0.01, 0.08),
    'gan': ('dcgan_mnist.py:smoke', (16, 16, 1),
            dict(gan__gen_channels=(8, 4), gan__disc_channels=(4, 8)), 0.05, 0.25),
    'diffusion': ('ddpm_mnist.py:smoke', (8, 8, 1),
                  dict(diffusion__channels=(16,), diffusion__num_res_blocks=1,
                       diffusion__attention_resolutions=()), 0.02, 0.05),
    'ldm_autoencoder': ('ldm_autoencoder_mnist.py:smoke', (8, 8, 1),
                        dict(ldm_autoencoder__channels=(4, 8)), 0.004, 0.15),
    'ldm_clip': ('ldm_clip_mnist.py:smoke', (8, 8, 1),
                 dict(ldm_clip__image_channels=(4, 8), ldm_clip__text_depth=2), 0.004, 0.1),
    # Pixel space with a jointly trained text encoder (no stage workdirs), as tests/test_ldm.py.
    'ldm': ('ldm_mnist.py:smoke', (8, 8, 1),
            dict(ldm__channels=(8,), ldm__transformer_resolutions=()), 0.002, 0.015),
    'sr_rrdb_psnr': ('rrdb_psnr_mnist.py:smoke', (16, 16, 1), {}, 1e-4, 0.015),
    # Without the perceptual and style losses: their feature network stays float32 by design
    # (at these sizes it would hold most of the step's convolutions).
    'inpaint_pconv': ('pconv_mnist.py:smoke', (16, 16, 1), dict(inpaint__feature_net=None),
                      0.04, 0.25),
}
# Families whose batches carry captions [B, K, T] (token ids) besides images and labels.
CAPTIONED = ('ldm_clip', 'ldm')


def _one_step(load, family, dtype, state=None):
  """Two SGD steps of `family` in `dtype` from `state` (None: a fresh one; float32 and bf16
  initialise identically, so the bf16 run reuses the float32 run's and saves a compile).

  Returns:
    (initial state, state after two steps, second step's loss, update [P] float64, the step's
    jaxpr).
  """
  name, shape, overrides, _, _ = FAMILIES[family]
  config = load(name, train__compute_dtype=dtype, optim__name='sgd', optim__momentum=0.0,
                optim__lr=1.0, optim__schedule='constant', **overrides)
  method = make_method(config, shape)
  rng = np.random.default_rng(0)
  batch = {'image': jnp.asarray(rng.uniform(-1, 1, (8,) + shape), jnp.float32),
           'label': jnp.arange(8, dtype=jnp.int32) % 10}
  if family in CAPTIONED:
    ids, _ = captions.tokenize([f'{p} {d}' for d in range(8) for p in ('the digit', 'a thick')])
    batch['captions'] = jnp.asarray(ids, jnp.int32).reshape(8, 2, -1)
  if state is None:
    state = jax.jit(method.init)(jax.random.key(0), jax.tree.map(lambda x: x[:1], batch))
  traced = jax.jit(method.train_step).trace(state, batch, jax.random.key(1))
  step = traced.lower().compile()
  # Two steps: the loss compared is the second's, so it sees a trained (non-zero) output head.
  new, _ = step(state, batch, jax.random.key(1))
  new, metrics = step(new, batch, jax.random.key(2))
  update = np.concatenate([np.ravel(b - a) for a, b in
                           zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params))])
  return state, new, float(metrics['loss']), update.astype(np.float64), traced.jaxpr


def _matmul_dtypes(jaxpr) -> list:
  """The operand dtype of every convolution and matrix product in a jaxpr (sub-jaxprs too)."""
  out = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in ('conv_general_dilated', 'dot_general'):
      out.append(eqn.invars[0].aval.dtype)
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      out += _matmul_dtypes(sub)
  return out


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_bf16_step_is_close_to_the_float32_step(load, family):
  *_, loss_rtol, update_rtol = FAMILIES[family]
  init, _, loss32, up32, _ = _one_step(load, family, 'float32')
  _, s16, loss16, up16, jaxpr16 = _one_step(load, family, 'bfloat16', init)
  update_err = np.linalg.norm(up16 - up32) / np.linalg.norm(up32)
  print(f'{family}: loss {loss32:.5g} (f32) {loss16:.5g} (bf16), relative loss error '
        f'{abs(loss16 - loss32) / abs(loss32):.2e}, relative update error {update_err:.2e}')
  assert abs(loss16 - loss32) <= loss_rtol * abs(loss32), (loss16, loss32)
  assert update_err <= update_rtol
  # Parameters, optimizer state and EMA stay float32; the matrix work runs in bf16.
  for leaf in jax.tree.leaves((s16.params, s16.opt_state, s16.ema_params, s16.extras)):
    assert not jnp.issubdtype(leaf.dtype, jnp.floating) or leaf.dtype == jnp.float32
  dtypes = _matmul_dtypes(jaxpr16.jaxpr)
  share = np.mean([d == jnp.bfloat16 for d in dtypes])
  assert share >= 0.75, f'only {share:.0%} of {len(dtypes)} convs/matmuls run in bf16'


def test_float32_policy_is_the_module_itself_and_bad_names_are_refused():
  module = object()
  assert precision.with_policy(module, 'float32') is module
  with pytest.raises(ValueError, match='accepted'):
    precision.compute_dtype('float16')


def test_policy_keeps_scalars_per_example_in_float32():
  seen = {}

  class Probe:
    def apply(self, variables, x, t):
      seen.update(params=variables['params']['w'].dtype, x=x.dtype, t=t.dtype)
      return x * 2

  out = precision.PolicyModule(Probe(), jnp.bfloat16).apply(
      {'params': {'w': jnp.ones((2, 2))}}, jnp.ones((2, 3)), jnp.ones((2,)))
  assert seen == dict(params=jnp.bfloat16, x=jnp.bfloat16, t=jnp.float32)
  assert out.dtype == jnp.float32


def test_every_sampler_runs_bf16_states_on_float32_sigmas():
  """Gaussian data N(mu, s^2) has the exact denoiser mu + s^2 / (s^2 + sigma^2) (x - mu): each
  sampler, run on bf16 x with float32 sigmas, recovers the data's mean and standard deviation
  as its float32 run does (stochastic samplers draw other noise in bf16, so moments, not
  samples, are compared)."""
  mu, s2 = 0.5, 0.25
  denoise = lambda x, sigma: (mu + s2 / (s2 + sigma**2) * (x - mu)).astype(x.dtype)
  sigmas = jnp.asarray(np.append(np.geomspace(20.0, 0.02, 8), 0.0), jnp.float32)
  x = 20.0 * jax.random.normal(jax.random.key(0), (1024, 4))
  for name, sampler in samplers_lib.SAMPLERS.items():
    run = jax.jit(lambda x: sampler(denoise, x, sigmas, rng=jax.random.key(1)))
    out32 = np.asarray(run(x))
    out16 = run(x.astype(jnp.bfloat16))
    assert out16.dtype == jnp.bfloat16, (name, out16.dtype)
    out16 = np.asarray(out16, np.float32)
    assert np.all(np.isfinite(out16)), name
    # pc_langevin in bf16 ends 15% away from its float32 run (std 0.484 against 0.419; the
    # data's is 0.5): float32 norms in its step size did not change that (tried 2026-12-06),
    # so the bf16 rounding of the state itself moves its 8-sigma Langevin chain.
    tol = 0.2 if name == 'pc_langevin' else 0.03
    assert abs(out16.mean() - out32.mean()) < tol, (name, out16.mean(), out32.mean())
    assert abs(out16.std() / out32.std() - 1) < tol, (name, out16.std(), out32.std())
