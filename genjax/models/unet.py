"""The DDPM U-Net (Ho et al. 2020): residual blocks with GroupNorm, a sinusoidal noise
embedding, self-attention at low resolution, skip connections; optionally class-conditional.

`channels=(128, 256, 256, 256), num_res_blocks=2, attention_resolutions=(16,)` on 32x32x3
is the paper's 35.7M-parameter CIFAR-10 network.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn.blocks import Downsample, ResBlock, SelfAttention, Upsample, _norm, sinusoidal_embedding
from genjax.nn.conv import Conv


class UNet(nn.Module):
  """eps/x0/v (or EDM's F) network: (x [B, H, W, C], noise label [B], class [B]) -> [B, H, W, C].

  Attributes:
    out_channels: C of the output (the data's channels).
    channels: width per resolution level; each level but the last halves H and W.
      The noise embedding has 4 * channels[0] features.
    num_res_blocks: residual blocks per level on the way down (one more on the way up).
    attention_resolutions: sides (H) at which blocks are followed by self-attention.
    dropout: in residual blocks.
    num_classes: 0 for unconditional; K for class-conditional, with an extra
      'null' class K used by classifier-free guidance.
    num_heads: attention heads.
    patch_size: p > 1 folds p x p pixel patches into channels first (space to
      depth) and unfolds the output, so the network runs at H/p x W/p: p^2
      times fewer positions for the same receptive field (as DiT's patches).
    flip_sin_to_cos, freq_shift: the noise embedding's layout (`sinusoidal_embedding`);
      diffusers' DDPM checkpoints: False, 1.
    attention_down, attention_up: None (attention where the side is in
      `attention_resolutions`, both ways), or the level indices (0: full
      resolution) whose blocks are followed by attention on the way down / up,
      as diffusers' Attn*Block2D types place it.
  """
  out_channels: int = 1
  channels: Sequence[int] = (64, 128, 128)
  num_res_blocks: int = 2
  attention_resolutions: Sequence[int] = (7,)
  dropout: float = 0.0
  num_classes: int = 0
  num_heads: int = 1
  patch_size: int = 1
  flip_sin_to_cos: bool = True
  freq_shift: float = 0.0
  attention_down: Sequence[int] | None = None
  attention_up: Sequence[int] | None = None

  @nn.compact
  def __call__(self, x: jax.Array, noise_label: jax.Array, labels: jax.Array | None = None,
               *, train: bool = False) -> jax.Array:
    """Args: x [B, H, W, C]; noise_label [B] (timestep or c_noise); labels [B] ints in
    [0, num_classes] (num_classes = no class) or None. Returns [B, H, W, out_channels]."""
    ch = self.channels[0]
    emb = sinusoidal_embedding(noise_label, ch, flip_sin_to_cos=self.flip_sin_to_cos,
                               freq_shift=self.freq_shift)
    emb = nn.Dense(4 * ch)(emb)
    emb = nn.Dense(4 * ch)(nn.silu(emb))
    if self.num_classes:
      if labels is None:
        labels = jnp.full(x.shape[:1], self.num_classes, jnp.int32)  # The null class.
      emb = emb + nn.Embed(self.num_classes + 1, 4 * ch, name='class_embed')(labels)
    # The (float32) embedding in the activations' dtype: under bf16 compute, adding a
    # float32 embedding would promote every later layer back to float32.
    if jnp.finfo(x.dtype).bits < 32:
      emb = emb.astype(x.dtype)

    def block(h, features, level, levels):
      h = ResBlock(features, self.dropout)(h, emb, train=train)
      if (h.shape[1] in self.attention_resolutions if levels is None else level in levels):
        h = SelfAttention(self.num_heads)(h)
      return h

    p = self.patch_size
    b, height, width, _ = x.shape
    if height % p or width % p:
      raise ValueError(f'Image side {height}x{width} must divide by diffusion.patch_size={p}.')
    if p > 1:
      x = space_to_depth(x, p)
    h = Conv(ch, (3, 3), name='stem')(x)
    skips = [h]
    for level, width in enumerate(self.channels):
      for _ in range(self.num_res_blocks):
        h = block(h, width, level, self.attention_down)
        skips.append(h)
      if level < len(self.channels) - 1:
        h = Downsample()(h)
        skips.append(h)

    h = ResBlock(h.shape[-1], self.dropout)(h, emb, train=train)
    h = SelfAttention(self.num_heads)(h)
    h = ResBlock(h.shape[-1], self.dropout)(h, emb, train=train)

    for level, width in reversed(list(enumerate(self.channels))):
      for _ in range(self.num_res_blocks + 1):
        skip = skips.pop()
        h = block(jnp.concatenate([h, skip], axis=-1), width, level, self.attention_up)
      if level > 0:
        h = Upsample()(h)
        # Odd sides (7 -> 4 -> 8) come back one pixel too large: crop to the skip's size.
        h = h[:, :skips[-1].shape[1], :skips[-1].shape[2]]
    h = nn.silu(_norm(h.shape[-1])(h))
    out = Conv(self.out_channels * p * p, (3, 3), name='head', kernel_init=nn.initializers.zeros)(h)
    return depth_to_space(out, p) if p > 1 else out


def space_to_depth(x: jax.Array, p: int) -> jax.Array:
  """[B, H, W, C] -> [B, H/p, W/p, p*p*C], each p x p patch folded into channels."""
  b, h, w, c = x.shape
  return x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(
      b, h // p, w // p, p * p * c)


def depth_to_space(x: jax.Array, p: int) -> jax.Array:
  """[B, H, W, p*p*C] -> [B, pH, pW, C]; the inverse of `space_to_depth`."""
  b, h, w, c = x.shape
  return x.reshape(b, h, w, p, p, c // (p * p)).transpose(0, 1, 3, 2, 4, 5).reshape(
      b, h * p, w * p, c // (p * p))
