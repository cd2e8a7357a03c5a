"""Convolution layers with CPU-friendly formulations, numerically equal to flax's.

Why: XLA's CPU backend computes the gradients of a strided transposed
convolution (an input-dilated convolution) through a slow generic path, 5 to
10 times slower than the forward pass. Written as one matrix product followed
by shifted adds, the same layer differentiates into matrix products, which
XLA runs fast. Likewise `Conv` computes a 1x1 convolution as a matrix
product, whose gradients XLA runs 2-5x faster than those of its own
convolution; strided and channel-widening convolutions go through im2col; the
remaining 3x3 stride-1 layers keep lax's convolution, whose library
genjax/core/xla_cpu.py chooses (experiments/xla_cpu_convolutions/conv_shapes.py measures
each layer shape). Parameters
have flax's names, shapes and initializers, so the modules are drop-in replacements
(tests/test_nn_conv.py proves the outputs and gradients equal). Both add their bias with
`add_bias`, whose gradient is a matrix product rather than a reduction.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


# ------------------------------------------------------------------------------------------------
# The bias add, with its gradient as a matrix product.

@jax.custom_jvp
def add_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
  """y [..., C] + bias [C] -> [..., C]: the values and derivatives of `y + bias`.

  Why: the bias gradient is a sum of dy over every position. Compiled for Eigen
  convolutions, XLA:CPU runs such large reductions on one core (7.6 ms for a
  [128, 28, 28, 32] activation); as the matrix product ones[N] @ dy[N, C] it runs on
  all of them (0.9 ms). The JVP below writes the bias's tangent as that outer
  product, so reverse mode, which transposes the JVP, gets the product, while
  forward mode (jax.jvp) and higher orders keep working.
  """
  return y + bias


@functools.partial(add_bias.defjvp, symbolic_zeros=True)
def _add_bias_jvp(primals, tangents):
  y, bias = primals
  ty, tb = tangents
  zero = jax.custom_derivatives.SymbolicZero
  if isinstance(tb, zero):
    return y + bias, jnp.zeros_like(y) if isinstance(ty, zero) else ty
  n = y.size // y.shape[-1]
  ones = jnp.ones((n, 1), y.dtype)  # [N, 1] @ [1, C]: every position gets tb.
  t_bias = lax.dot_general(ones, tb.astype(y.dtype)[None, :],
                           (((1,), (0,)), ((), ()))).reshape(y.shape)
  return y + bias, t_bias if isinstance(ty, zero) else ty + t_bias


# ------------------------------------------------------------------------------------------------
# ConvTranspose: flax.linen.ConvTranspose (SAME padding) as one matrix product and shifted adds.

def _same_transpose_pad_lo(k: int, s: int) -> int:
  """Low padding of lax.conv_transpose(padding='SAME') along one axis (output = s * input)."""
  pad_len = k + s - 2
  return k - 1 if s > k - 1 else -(-pad_len // 2)


def conv_transpose_same(x: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """Equals `lax.conv_transpose(x, kernel, strides, 'SAME')` (flax's ConvTranspose, NHWC/HWIO).

  Each kernel tap k contributes x @ kernel[k] to output position
  s * i + (pad_lo - k): one matrix product gives every tap's contribution,
  which is then shifted into one of the s*s output phases and interleaved.

  Args:
    x: [B, H, W, C_in].
    kernel: [kh, kw, C_in, C_out].
    strides: (sh, sw).

  Returns:
    [B, sh * H, sw * W, C_out].
  """
  b, h, w, c_in = x.shape
  kh, kw, _, c_out = kernel.shape
  sh, sw = strides
  lo_h, lo_w = _same_transpose_pad_lo(kh, sh), _same_transpose_pad_lo(kw, sw)
  # [B*H*W, C_in] @ [C_in, kh*kw*C_out]: one GEMM, and GEMMs in the backward pass too.
  taps = (x.reshape(-1, c_in) @ kernel.transpose(2, 0, 1, 3).reshape(c_in, -1)).reshape(
      b, h, w, kh * kw, c_out)
  # lax.split, not indexing: its transpose is one concatenation, where the transpose of
  # kh*kw index slices is kh*kw zero-padded full-size copies summed (about 3x slower in the
  # VAE's train step, whose largest fusions they were).
  tap_list = [t.reshape(b, h, w, c_out) for t in lax.split(taps, [1] * (kh * kw), axis=3)]
  zero = jnp.zeros((), x.dtype)
  phases = {}
  for i in range(kh):
    for j in range(kw):
      oh, ow = lo_h - i, lo_w - j
      a, c = oh % sh, ow % sw
      qh, qw = (oh - a) // sh, (ow - c) // sw  # Phase-grid shift: P[m] += tap[m - q].
      shifted = lax.pad(tap_list[i * kw + j], zero,
                        [(0, 0, 0), (qh, -qh, 0), (qw, -qw, 0), (0, 0, 0)])
      phases[a, c] = phases[a, c] + shifted if (a, c) in phases else shifted
  empty = jnp.zeros((b, h, w, c_out), x.dtype)
  grid = jnp.stack([jnp.stack([phases.get((a, c), empty) for c in range(sw)], 3)
                    for a in range(sh)], 2)  # [B, H, sh, W, sw, C_out]
  return grid.reshape(b, h * sh, w * sw, c_out)


class ConvTranspose(nn.Module):
  """`flax.linen.ConvTranspose` with SAME padding, differentiated as matrix products.

  Attributes:
    features: C_out.
    kernel_size: (kh, kw).
    strides: (sh, sw); output side = stride * input side.
    use_bias: add a bias.
    kernel_init, bias_init: as flax's defaults.
  """
  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: Sequence[int] = (1, 1)
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C_in] -> [B, sh * H, sw * W, features]."""
    kernel = self.param('kernel', self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
    y = conv_transpose_same(x, kernel.astype(x.dtype), tuple(self.strides))
    if self.use_bias:
      bias = self.param('bias', self.bias_init, (self.features,), jnp.float32)
      y = add_bias(y, bias.astype(x.dtype))
    return y


# ------------------------------------------------------------------------------------------------
# Conv: flax.linen.Conv (2-D, NHWC/HWIO) with the formulation that XLA:CPU differentiates fastest.

_DN = ('NHWC', 'HWIO', 'NHWC')
Pads = tuple[tuple[int, int], tuple[int, int]]


def tap_views(x: jax.Array, kh: int, kw: int, strides, pads: Pads) -> list[jax.Array]:
  """The kh*kw strided views of the padded x that meet kernel tap (i, j): [B, Ho, Wo, C] each."""
  b, h, w, c = x.shape
  sh, sw = strides
  ho, wo = (h + sum(pads[0]) - kh) // sh + 1, (w + sum(pads[1]) - kw) // sw + 1
  xp = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)])
  return [lax.slice(xp, (0, i, j, 0), (b, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, c),
                    (1, sh, sw, 1)) for i in range(kh) for j in range(kw)]


def conv_method(kernel_shape: Sequence[int], strides: Sequence[int], pads: Pads) -> str:
  """Which formulation `conv2d` uses: 'gemm', 'im2col' or 'lax' (measured; see below).

  On XLA:CPU (jax 0.10) the weight gradient of `lax.conv_general_dilated` runs 3-8x slower
  than its forward pass, while matrix products differentiate into matrix products.
  - 1x1, stride 1: a plain matrix product ('gemm'; gradients 2-5x faster than lax's).
  - im2col (the kh*kw strided views concatenated, then one matrix product) pays for building
    a [B*Ho*Wo, kh*kw*C_in] patch matrix. That is cheap next to the product when the layer
    is strided (a quarter of the positions) or widens the channels (C_out >= 2 C_in, e.g.
    every conv of the classifier and the first of a widening ResBlock), and the gradient is
    then 1.2-2.5x faster than lax's.
  - Otherwise (stride 1, C_out < 2 C_in: most U-Net convs) the patch matrix costs more than
    it saves: lax's convolution ('lax'). Under YNNPACK, its kernel gradient runs on one core,
    and 'split' (`conv_split_kernel_grad`) makes it 1.3-3.5x faster; but the U-Net, the model
    made of such layers, runs fastest on Eigen (genjax/core/xla_cpu.py), where 'split' costs
    (whole step 0.90x), so 'split' is a `method=` to ask for, not a default.
  (experiments/xla_cpu_convolutions/conv_shapes.py: per-layer figures; conv_ab.py: whole steps.)
  `method=` in `conv2d`/`Conv` forces a formulation; 'lax' is flax's plain convolution.
  """
  kh, kw, c_in, c_out = kernel_shape
  if kh == kw == 1 and tuple(strides) == (1, 1) and pads == ((0, 0), (0, 0)):
    return 'gemm'
  if tuple(strides) != (1, 1) or c_out >= 2 * c_in:
    return 'im2col'
  return 'lax'


# Every formulation `conv2d` and `Conv` accept as `method=`.
METHODS = ('gemm', 'im2col', 'lax', 'split')


def _lax_conv(x: jax.Array, kernel: jax.Array, strides, pads: Pads) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=_DN)


def input_grad_kernel(kernel: jax.Array) -> jax.Array:
  """The kernel of a stride-1 convolution's input gradient: reversed in space, C_in <-> C_out.

  Args:
    kernel: [kh, kw, C_in, C_out] (HWIO).

  Returns:
    [kh, kw, C_out, C_in]: dx = conv(dy, this) with the padding `conv_with_input_grad_kernel`
    uses.
  """
  return jnp.swapaxes(jnp.flip(kernel, (0, 1)), 2, 3)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def conv_with_input_grad_kernel(x: jax.Array, kernel: jax.Array, grad_kernel: jax.Array,
                                pads: Pads) -> jax.Array:
  """lax's stride-1 convolution (NHWC/HWIO) whose input gradient uses a kernel given to it.

  Why: for the input gradient XLA reverses and transposes the kernel at every call, a copy of
  the whole kernel. Where the kernel is fixed across many calls (style transfer optimises the
  image through a fixed VGG19), that copy is wasted work: at 256x256 the nine 3x3x512x512
  copies took 48 of the 380 ms of a step (experiments/style_transfer/README.md). Compute
  `input_grad_kernel(kernel)` once and pass it here.

  Args:
    x: [B, H, W, C_in].
    kernel: [kh, kw, C_in, C_out].
    grad_kernel: `input_grad_kernel(kernel)`, [kh, kw, C_out, C_in]. Not checked (that
      would cost the copy it saves); another value gives a wrong input gradient. The output
      does not depend on it, so its own cotangent is zero.
    pads: ((lo_h, hi_h), (lo_w, hi_w)).

  Returns:
    [B, Ho, Wo, C_out], equal to `_lax_conv(x, kernel, (1, 1), pads)`. The kernel's gradient
    is lax's (XLA drops it when nothing asks for it). Reverse mode only.
  """
  return _lax_conv(x, kernel, (1, 1), pads)


def _given_fwd(x, kernel, grad_kernel, pads):
  return _lax_conv(x, kernel, (1, 1), pads), (x, kernel, grad_kernel)


def _given_bwd(pads, residuals, dy):
  x, kernel, grad_kernel = residuals
  (kh, kw), ((lo_h, hi_h), (lo_w, hi_w)) = kernel.shape[:2], pads
  dx = _lax_conv(dy, grad_kernel, (1, 1), ((kh - 1 - lo_h, kh - 1 - hi_h),
                                           (kw - 1 - lo_w, kw - 1 - hi_w)))
  dkernel = jax.vjp(lambda k: _lax_conv(x, k, (1, 1), pads), kernel)[1](dy)[0]
  return dx, dkernel, jnp.zeros_like(grad_kernel)


conv_with_input_grad_kernel.defvjp(_given_fwd, _given_bwd)


# A slice of the kernel gradient in 'split': at least this many images and output positions
# (8 images at 14x14, 32 at 7x7; smaller slices lost at 7x7 128->128,
# experiments/xla_cpu_convolutions/README.md).
KERNEL_GRAD_SLICE = 8
KERNEL_GRAD_SLICE_POSITIONS = 1568


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_split_kernel_grad(x: jax.Array, kernel: jax.Array, strides, pads: Pads) -> jax.Array:
  """`lax.conv_general_dilated` (NHWC/HWIO) whose kernel gradient is summed over batch slices.

  Why: XLA:CPU computes a convolution's kernel gradient as one contraction over all
  B*Ho*Wo output positions, which at batch 128 runs at about one core's speed and takes
  3-8x the forward pass. Summed over slices of at least `KERNEL_GRAD_SLICE` images and
  `KERNEL_GRAD_SLICE_POSITIONS` positions, the same gradient is 1.3-3.5x faster
  (experiments/xla_cpu_convolutions/conv_dw.py): each slice's contraction fits in cache, and
  independent slices run on every core. The forward pass and the input gradient are lax's,
  unchanged. Reverse mode only: a custom_vjp has no forward-mode rule, so jax.jvp needs
  `Conv(method='lax')`.

  Args:
    x: [B, H, W, C_in].
    kernel: [kh, kw, C_in, C_out].
    strides: (sh, sw).
    pads: ((lo_h, hi_h), (lo_w, hi_w)).

  Returns:
    [B, Ho, Wo, C_out], as `lax.conv_general_dilated`.
  """
  return _lax_conv(x, kernel, strides, pads)


def _split_fwd(x, kernel, strides, pads):
  return _lax_conv(x, kernel, strides, pads), (x, kernel)


def _split_bwd(strides, pads, residuals, dy):
  x, kernel = residuals
  _, vjp_x = jax.vjp(lambda v: _lax_conv(v, kernel, strides, pads), x)
  n = max(KERNEL_GRAD_SLICE, -(-KERNEL_GRAD_SLICE_POSITIONS // (dy.shape[1] * dy.shape[2])))
  dkernel = None
  for i in range(0, x.shape[0], n):
    x_slice = x[i:i + n]
    _, vjp_k = jax.vjp(lambda k: _lax_conv(x_slice, k, strides, pads), kernel)
    part = vjp_k(dy[i:i + n])[0]
    dkernel = part if dkernel is None else dkernel + part
  return vjp_x(dy)[0], dkernel


conv_split_kernel_grad.defvjp(_split_fwd, _split_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, strides: Sequence[int], pads: Pads,
           method: str | None = None) -> jax.Array:
  """Equals `lax.conv_general_dilated(x, kernel, strides, pads)` in NHWC/HWIO.

  Args:
    x: [B, H, W, C_in].
    kernel: [kh, kw, C_in, C_out].
    strides: (sh, sw).
    pads: ((lo_h, hi_h), (lo_w, hi_w)), explicit zero padding.
    method: 'gemm' (1x1, stride 1, no padding), 'im2col', 'lax' or 'split'; None:
      `conv_method`.

  Returns:
    [B, Ho, Wo, C_out], Ho = (H + lo_h + hi_h - kh) // sh + 1 (likewise Wo).
  """
  strides = tuple(strides)
  pads = tuple(tuple(p) for p in pads)
  kh, kw, c_in, c_out = kernel.shape
  method = method or conv_method(kernel.shape, strides, pads)
  if method == 'gemm':
    if kernel.shape[:2] != (1, 1) or strides != (1, 1) or pads != ((0, 0), (0, 0)):
      raise ValueError('conv2d: method="gemm" needs a 1x1 kernel, stride 1 and no padding.')
    return (x.reshape(-1, c_in) @ kernel.reshape(c_in, c_out)).reshape(*x.shape[:3], c_out)
  if method == 'im2col':
    views = tap_views(x, kh, kw, strides, pads)
    b, ho, wo, _ = views[0].shape
    patches = jnp.concatenate(views, -1).reshape(-1, kh * kw * c_in)
    return (patches @ kernel.reshape(-1, c_out)).reshape(b, ho, wo, c_out)
  if method == 'lax':
    return _lax_conv(x, kernel, strides, pads)
  if method == 'split':
    return conv_split_kernel_grad(x, kernel, strides, pads)
  raise ValueError(f'conv2d: unknown method {method!r} ({", ".join(METHODS)}).')


class Conv(nn.Module):
  """`flax.linen.Conv` for 2-D NHWC inputs, computed by `conv2d` (same parameters and results).

  The subset of flax's arguments that genjax's models use; parameter names, shapes,
  dtypes and initializers are flax's, so checkpoints of `nn.Conv` models load unchanged.

  Attributes:
    features: C_out.
    kernel_size: (kh, kw), or an int for a square kernel.
    strides: (sh, sw), or an int; 1 by default.
    padding: 'SAME', 'VALID', an int n (n on every side), a pair of ints (per axis) or
      ((lo_h, hi_h), (lo_w, hi_w)). 'CIRCULAR', 'REFLECT', 'CAUSAL' are not supported.
    use_bias: add a bias.
    dtype: computation dtype (None: promote the input's and parameters' dtypes, as flax).
    param_dtype: parameter dtype.
    kernel_init, bias_init: as flax's defaults.
    method: force a formulation of `conv2d` ('gemm', 'im2col', 'lax', 'split'); None picks
      the fastest. 'lax' for forward-mode autodiff (jax.jvp): 'split' is reverse-mode only.
  """
  features: int
  kernel_size: int | Sequence[int] = (3, 3)
  strides: int | Sequence[int] = 1
  padding: str | int | Sequence[int] | Sequence[tuple[int, int]] = 'SAME'
  use_bias: bool = True
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  method: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, input_grad_kernel: jax.Array | None = None) -> jax.Array:
    """[B, H, W, C_in] -> [B, Ho, Wo, features].

    `input_grad_kernel`: this layer's `input_grad_kernel(kernel)`, precomputed, for a
    stride-1 'lax' convolution whose kernel stays fixed across calls
    (`conv_with_input_grad_kernel`); None: XLA transposes the kernel itself.
    """
    ks = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
    st = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    if len(ks) != 2 or len(st) != 2:
      raise ValueError(f'genjax.nn.conv.Conv is 2-D only: kernel_size={self.kernel_size}, '
                       f'strides={self.strides}; use flax.linen.Conv for other ranks.')
    if x.ndim != 4:
      raise ValueError(f'genjax.nn.conv.Conv needs NHWC inputs [B, H, W, C], got shape {x.shape}.')
    padding = nn.linear.canonicalize_padding(self.padding, 2)
    if isinstance(padding, str):
      if padding not in ('SAME', 'VALID'):
        raise ValueError(f'genjax.nn.conv.Conv supports padding SAME, VALID or explicit ints, '
                         f'not {padding!r}; use flax.linen.Conv.')
      pads = tuple(lax.padtype_to_pads(x.shape[1:3], ks, st, padding))
    else:
      pads = tuple(padding)
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    kernel = self.param('kernel', self.kernel_init, (*ks, x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    if input_grad_kernel is None:
      y = conv2d(x, kernel, st, pads, self.method)
    elif st != (1, 1) or self.method not in (None, 'lax'):
      raise ValueError(f'genjax.nn.conv.Conv: input_grad_kernel needs strides 1 and lax\'s '
                       f'convolution, got strides={st}, method={self.method!r}.')
    else:
      y = conv_with_input_grad_kernel(x, kernel, input_grad_kernel.astype(kernel.dtype), pads)
    return y if bias is None else add_bias(y, bias)
