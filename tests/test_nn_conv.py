"""The fast ConvTranspose equals flax's, in outputs, parameters and gradients."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nn.conv import ConvTranspose


@pytest.mark.parametrize('kernel,stride,size', [((3, 3), (2, 2), 7), ((4, 4), (2, 2), 4),
                                                 ((3, 3), (1, 1), 6), ((3, 2), (2, 1), 5)])
def test_equals_flax_conv_transpose(kernel, stride, size):
  x = jax.random.normal(jax.random.key(0), (3, size, size + 1, 5))
  ours, ref = ConvTranspose(4, kernel, stride), nn.ConvTranspose(4, kernel, stride, padding='SAME')
  params = ref.init(jax.random.key(1), x)
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)
  np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)

  def loss(module):
    return lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))

  g_ours = jax.grad(loss(ours), argnums=(0, 1))(params, x)
  g_ref = jax.grad(loss(ref), argnums=(0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_same_initialization_as_flax():
  x = jnp.zeros((1, 4, 4, 3))
  a = ConvTranspose(8, (3, 3), (2, 2)).init(jax.random.key(0), x)
  b = nn.ConvTranspose(8, (3, 3), (2, 2)).init(jax.random.key(0), x)
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(u, v)


# --- Conv ----------------------------------------------------------------------------------------

from genjax.nn import conv as conv_module  # noqa: E402
from genjax.nn.conv import Conv, conv2d, conv_method  # noqa: E402

# Every (kernel, stride, padding) the models use (classifier, VAE encoder, DCGAN discriminator,
# U-Net stem/ResBlock/skip/Downsample/Upsample/head), plus VALID and explicit paddings.
_CONV_CASES = [
    ((3, 3), (1, 1), 'SAME', 6, 3),      # classifier, U-Net 3x3 convs
    ((3, 3), (2, 2), 'SAME', 7, 3),      # VAE encoder, Downsample (odd side)
    ((3, 3), (2, 2), 'SAME', 8, 40),     # strided, many input channels (lax path)
    ((4, 4), (2, 2), 'SAME', 8, 2),      # DCGAN discriminator
    ((1, 1), (1, 1), 'SAME', 5, 6),      # ResBlock skip (gemm path)
    ((3, 3), (1, 1), 'VALID', 6, 3),
    ((3, 2), (2, 1), 'VALID', 7, 3),
    ((3, 3), (1, 1), 1, 5, 3),
    ((3, 3), (2, 2), ((1, 0), (2, 1)), 7, 3),
    ((1, 1), (2, 2), 'SAME', 5, 3),
]


@pytest.mark.parametrize('method', [None, 'im2col', 'lax', 'split'])
@pytest.mark.parametrize('kernel,stride,padding,size,c_in', _CONV_CASES)
def test_conv_equals_flax_conv(kernel, stride, padding, size, c_in, method):
  x = jax.random.normal(jax.random.key(0), (2, size, size + 1, c_in))
  ours = Conv(4, kernel, stride, padding=padding, method=method)
  ref = nn.Conv(4, kernel, stride, padding=padding)
  params = ref.init(jax.random.key(1), x)
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)
  np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)

  def loss(module):
    return lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))

  g_ours = jax.grad(loss(ours), argnums=(0, 1))(params, x)
  g_ref = jax.grad(loss(ref), argnums=(0, 1))(params, x)
  assert jax.tree.structure(g_ours) == jax.tree.structure(g_ref)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_ref)):  # bias, kernel, x.
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('batch', [1, 8, 19])  # One slice, exactly one, and 8 + 8 + 3 images.
def test_split_kernel_grad_equals_lax_over_uneven_slices(batch, monkeypatch):
  monkeypatch.setattr(conv_module, 'KERNEL_GRAD_SLICE_POSITIONS', 1)  # Slices of 8 images.
  x = jax.random.normal(jax.random.key(0), (batch, 6, 5, 3))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
  pads = ((1, 1), (1, 1))

  def loss(method):
    return lambda x, k: jnp.sum(jnp.sin(conv2d(x, k, (1, 1), pads, method)))

  np.testing.assert_allclose(conv2d(x, kernel, (1, 1), pads, 'split'),
                             conv2d(x, kernel, (1, 1), pads, 'lax'), rtol=1e-6, atol=1e-6)
  got = jax.grad(loss('split'), argnums=(0, 1))(x, kernel)
  want = jax.grad(loss('lax'), argnums=(0, 1))(x, kernel)
  for a, b in zip(got, want):  # x, kernel.
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_split_kernel_grad_slices_have_enough_positions(monkeypatch):
  # 7x7 outputs: slices of 32 images (1,568 positions), so a batch of 64 makes two.
  batches, lax_conv = [], conv_module._lax_conv
  monkeypatch.setattr(conv_module, '_lax_conv', lambda x, *a: batches.append(x.shape[0]) or
                      lax_conv(x, *a))
  x = jax.random.normal(jax.random.key(0), (64, 7, 7, 2))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 2, 2))
  jax.grad(lambda k: jnp.sum(conv2d(x, k, (1, 1), ((1, 1), (1, 1)), 'split') ** 2))(kernel)
  assert sorted(b for b in batches if b != 64) == [32, 32]


def test_split_kernel_grad_second_order_equals_lax(monkeypatch):
  monkeypatch.setattr(conv_module, 'KERNEL_GRAD_SLICE_POSITIONS', 1)  # Two slices, 8 + 2.
  # R1-style penalties differentiate an input gradient with respect to the kernel.
  x = jax.random.normal(jax.random.key(0), (10, 5, 5, 2))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 2, 2))
  pads = ((1, 1), (1, 1))

  def penalty(method):
    def f(k):
      dx = jax.grad(lambda x: jnp.sum(jnp.tanh(conv2d(x, k, (1, 1), pads, method))))(x)
      return jnp.sum(dx ** 2)
    return f

  np.testing.assert_allclose(jax.grad(penalty('split'))(kernel), jax.grad(penalty('lax'))(kernel),
                             rtol=1e-4, atol=1e-5)


def test_conv_gemm_path_equals_flax():
  x = jax.random.normal(jax.random.key(0), (2, 5, 4, 6))
  assert conv_method((1, 1, 6, 4), (1, 1), ((0, 0), (0, 0))) == 'gemm'
  same = ((1, 1), (1, 1))
  assert conv_method((3, 3, 32, 64), (1, 1), same) == 'im2col'  # Widening: classifier conv2.
  assert conv_method((4, 4, 64, 128), (2, 2), same) == 'im2col'  # Strided: DCGAN D.
  assert conv_method((3, 3, 64, 64), (1, 1), same) == 'lax'  # U-Net ResBlock (on Eigen).
  assert conv_method((3, 3, 64, 32), (1, 1), same) == 'lax'
  ours, ref = Conv(4, (1, 1), method='gemm', use_bias=False), nn.Conv(4, (1, 1), use_bias=False)
  params = ref.init(jax.random.key(1), x)
  np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)
  gx = jax.grad(lambda x, m: jnp.sum(jnp.sin(m.apply(params, x))))
  np.testing.assert_allclose(gx(x, ours), gx(x, ref), rtol=1e-5, atol=1e-5)


def test_conv_same_initialization_and_dtype_as_flax():
  x = jnp.zeros((1, 6, 6, 3))
  for kw in [{}, {'use_bias': False}, {'kernel_init': nn.initializers.zeros},
             {'strides': (2, 2), 'kernel_size': (4, 4)}]:
    a = Conv(8, **{'kernel_size': (3, 3), **kw}).init(jax.random.key(0), x)
    b = nn.Conv(8, **{'kernel_size': (3, 3), **kw}).init(jax.random.key(0), x)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_array_equal(u, v)
  params = nn.Conv(8, (3, 3)).init(jax.random.key(0), x)
  y = Conv(8, (3, 3), dtype=jnp.bfloat16).apply(params, x)
  assert y.dtype == nn.Conv(8, (3, 3), dtype=jnp.bfloat16).apply(params, x).dtype == jnp.bfloat16


def test_conv_auto_names_match_flax():
  class Net(nn.Module):
    conv: type

    @nn.compact
    def __call__(self, x):
      return self.conv(4, (3, 3))(self.conv(4, (1, 1))(x))

  x = jnp.zeros((1, 4, 4, 2))
  a, b = Net(Conv).init(jax.random.key(0), x), Net(nn.Conv).init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, a) == jax.tree.map(jnp.shape, b)


@pytest.mark.parametrize('kwargs,shape,match', [
    ({'padding': 'CIRCULAR'}, (1, 5, 5, 2), 'padding'),
    ({'padding': 'REFLECT'}, (1, 5, 5, 2), 'padding'),
    ({'kernel_size': (3,)}, (1, 5, 2), '2-D'),
    ({'kernel_size': (3, 3, 3)}, (1, 5, 5, 5, 2), '2-D'),
    ({}, (5, 5, 2), 'NHWC'),
    ({'method': 'winograd'}, (1, 5, 5, 2), 'method'),
    ({'kernel_size': (3, 3), 'method': 'gemm'}, (1, 5, 5, 2), 'gemm'),
])
def test_conv_rejects_unsupported(kwargs, shape, match):
  with pytest.raises(ValueError, match=match):
    Conv(4, **{'kernel_size': (3, 3), **kwargs}).init(jax.random.key(0), jnp.zeros(shape))


def test_conv_rejects_unsupported_flax_arguments():
  with pytest.raises(TypeError):
    Conv(4, (3, 3), kernel_dilation=(2, 2))  # pylint: disable=unexpected-keyword-arg
  with pytest.raises(TypeError):
    Conv(4, (3, 3), feature_group_count=2)  # pylint: disable=unexpected-keyword-arg


def test_add_bias_has_the_derivatives_of_a_plain_add():
  y = jax.random.normal(jax.random.key(0), (3, 5, 4, 6))
  b = jax.random.normal(jax.random.key(1), (6,))
  plain = lambda y, b: jnp.sin(y + b)
  ours = lambda y, b: jnp.sin(conv_module.add_bias(y, b))
  np.testing.assert_array_equal(ours(y, b), plain(y, b))
  ct = jax.random.normal(jax.random.key(2), y.shape)
  for got, want in zip(jax.vjp(ours, y, b)[1](ct), jax.vjp(plain, y, b)[1](ct)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # Forward mode, with and without a tangent for either argument.
  ty, tb = jnp.ones_like(y), jnp.arange(6.0)
  for fn in (lambda f: jax.jvp(f, (y, b), (ty, tb))[1],
             lambda f: jax.jvp(lambda v: f(v, b), (y,), (ty,))[1],
             lambda f: jax.jvp(lambda c: f(y, c), (b,), (tb,))[1]):
    np.testing.assert_allclose(fn(ours), fn(plain), rtol=1e-5, atol=1e-5)
  # Second order: the Hessian-vector product in the bias.
  hvp = lambda f: jax.jvp(jax.grad(lambda c: jnp.sum(f(y, c))), (b,), (tb,))[1]
  np.testing.assert_allclose(hvp(ours), hvp(plain), rtol=1e-4, atol=1e-4)


def test_bias_gradient_is_a_matrix_product():
  # Why add_bias exists: reverse mode gets the bias gradient as a dot, not a reduction.
  y, b, ct = jnp.ones((2, 4, 4, 3)), jnp.zeros((3,)), jnp.ones((2, 4, 4, 3))
  bias_vjp = lambda c: jax.vjp(lambda d: conv_module.add_bias(y, d), c)[1](ct)
  eqns = jax.make_jaxpr(bias_vjp)(b).eqns
  assert [e.primitive.name for e in eqns if e.primitive.name == 'dot_general'] == ['dot_general']
  # No reduction over the 32 positions (only the [1, 3] -> [3] squeeze of the product).
  assert all(e.invars[0].aval.size <= 3 for e in eqns if e.primitive.name == 'reduce_sum')


# --- A stride-1 convolution with its input-gradient kernel given ----------------------------------

@pytest.mark.parametrize('kernel,pads', [((3, 3), ((1, 1), (1, 1))), ((3, 3), ((0, 0), (0, 0))),
                                         ((5, 3), ((2, 1), (0, 2))), ((1, 1), ((0, 0), (0, 0)))])
def test_conv_with_input_grad_kernel_has_lax_values_and_gradients(kernel, pads):
  kx, kk, kc = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (2, 7, 6, 3))
  w = jax.random.normal(kk, (*kernel, 3, 4))
  ref = lambda x, w: conv_module._lax_conv(x, w, (1, 1), pads)  # pylint: disable=protected-access
  ours = lambda x, w: conv_module.conv_with_input_grad_kernel(
      x, w, conv_module.input_grad_kernel(w), pads)
  y = ref(x, w)
  np.testing.assert_array_equal(ours(x, w), y)
  dy = jax.random.normal(kc, y.shape)  # A cotangent with no symmetry to hide a wrong flip.
  for a, b in zip(jax.vjp(ours, x, w)[1](dy), jax.vjp(ref, x, w)[1](dy)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  # The output does not depend on the given kernel: its cotangent is zero.
  g = jax.grad(lambda gk: jnp.sum(conv_module.conv_with_input_grad_kernel(x, w, gk, pads)))(
      conv_module.input_grad_kernel(w))
  np.testing.assert_array_equal(g, 0.0)


def test_conv_module_takes_an_input_grad_kernel_and_drops_the_kernel_copy():
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 4))
  layer = conv_module.Conv(6, (3, 3), method='lax')
  params = layer.init(jax.random.key(1), x)
  given = conv_module.input_grad_kernel(params['params']['kernel'])
  loss = lambda x, gk: jnp.sum(jnp.sin(layer.apply(params, x, gk)))
  np.testing.assert_allclose(jax.grad(loss)(x, given), jax.grad(loss)(x, None), rtol=1e-5, atol=1e-6)
  # XLA's own input gradient reverses the kernel (`rev`) at every call; the given one is used
  # as it is.
  assert 'rev' in str(jax.make_jaxpr(jax.grad(loss))(x, None))
  assert 'rev' not in str(jax.make_jaxpr(jax.grad(loss))(x, given))
  with pytest.raises(ValueError, match='strides 1'):
    conv_module.Conv(6, (3, 3), strides=2).apply(
        conv_module.Conv(6, (3, 3), strides=2).init(jax.random.key(1), x), x, given)
