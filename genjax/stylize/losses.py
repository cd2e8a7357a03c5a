"""The losses of neural style transfer (Gatys, Ecker & Bethge 2016) and colour conversions.

Every function is pure and works on one image's features ([H, W, C]) or a batch ([B, H, W, C]).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

# RGB <-> YIQ (NTSC 1953), the luminance/chrominance split of Gatys et al. (2017).
RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.59590059, -0.27455667, -0.32134392),
              (0.21153661, -0.52273617, 0.31119955))


@jax.custom_vjp
def gram_matrix(features: jax.Array) -> jax.Array:
  """Channel correlations averaged over positions: F^T F / (H W), as the seed normalises.

  Its gradient is one matrix product, F (dG + dG^T) / (H W), where autodiff of F^T F takes
  two (one per factor): a third of the Gram's work at every style layer (reverse mode only).

  Args:
    features: [..., H, W, C].

  Returns:
    [..., C, C]; entry (i, j) is mean over positions p of F[p, i] F[p, j].
  """
  *batch, h, w, c = features.shape
  flat = features.reshape(*batch, h * w, c)
  return jnp.einsum('...pi,...pj->...ij', flat, flat) / (h * w)


def _gram_fwd(features):
  return gram_matrix(features), features


def _gram_bwd(features, g):
  *batch, h, w, c = features.shape
  flat = features.reshape(*batch, h * w, c)
  sym = (g + jnp.swapaxes(g, -1, -2)).astype(flat.dtype)
  return (jnp.einsum('...pj,...ji->...pi', flat, sym).reshape(features.shape) / (h * w),)


gram_matrix.defvjp(_gram_fwd, _gram_bwd)


def content_loss(features: jax.Array, target: jax.Array, scale: float | jax.Array = 1.0
                 ) -> jax.Array:
  """mean((F - P)^2) / scale over every position and channel (the seed's content loss)."""
  return jnp.mean(jnp.square(features - target)) / scale


def style_layer_loss(features: jax.Array, target_gram: jax.Array,
                     scale: float | jax.Array = 1.0) -> jax.Array:
  """mean((G(F) - A)^2) / scale over the C x C entries (the seed's per-layer style loss).

  Args:
    features: [..., H, W, C] the generated image's activations.
    target_gram: [..., C, C] the style image's Gram matrix.
    scale: the layer's normaliser (1: the seed's; mean(A^2): relative error).
  """
  return jnp.mean(jnp.square(gram_matrix(features) - target_gram)) / scale


def total_variation(image: jax.Array) -> jax.Array:
  """Mean squared difference of vertical and of horizontal neighbours, summed: [..., H, W, C]."""
  dh = jnp.mean(jnp.square(image[..., 1:, :, :] - image[..., :-1, :, :]))
  dw = jnp.mean(jnp.square(image[..., :, 1:, :] - image[..., :, :-1, :]))
  return dh + dw


def rgb_to_yiq(image: jax.Array) -> jax.Array:
  """[..., 3] RGB -> [..., 3] YIQ (Y in [0, 1] for RGB in [0, 1])."""
  return image @ jnp.asarray(RGB_TO_YIQ, image.dtype).T


def yiq_to_rgb(image: jax.Array) -> jax.Array:
  """[..., 3] YIQ -> [..., 3] RGB (the inverse of `rgb_to_yiq`)."""
  return image @ jnp.linalg.inv(jnp.asarray(RGB_TO_YIQ, jnp.float32)).T.astype(image.dtype)


def match_luminance(style_y: jax.Array, content_y: jax.Array) -> jax.Array:
  """Style luminance with the content luminance's mean and std (Gatys et al. 2017, eq. 1)."""
  scale = jnp.std(content_y) / jnp.maximum(jnp.std(style_y), 1e-6)
  return jnp.clip((style_y - jnp.mean(style_y)) * scale + jnp.mean(content_y), 0.0, 1.0)
