"""PyTorch twins of genjax's benchmarked networks and train steps (benchmarks only).

Each network has the genjax model's architecture, widths and parameter count
(run.py checks the count), and each step does the work of the genjax
method's `train_step`: the same augmentation or noise, loss, Adam update and
EMA. Padding of stride-2 convolutions differs by one pixel's alignment
(flax's SAME pads (0, 1) where PyTorch pads (1, 1)); shapes and FLOPs are
equal. genjax itself never imports torch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def count_params(module: nn.Module) -> int:
  """Trainable parameters (BatchNorm running statistics are buffers, as flax's batch_stats)."""
  return sum(p.numel() for p in module.parameters())


def to_layout(module_or_tensor, channels_last: bool):
  """Moves a module or 4-D tensor to channels_last (NHWC in memory) when asked."""
  if not channels_last:
    return module_or_tensor
  if isinstance(module_or_tensor, torch.Tensor) and module_or_tensor.dim() != 4:
    return module_or_tensor
  return module_or_tensor.to(memory_format=torch.channels_last)


def make_adam(params, lr: float, betas=(0.9, 0.999), weight_decay: float = 0.0, adamw: bool = False):
  """Adam(W) with PyTorch's fastest CPU implementation available (fused, else foreach)."""
  cls = torch.optim.AdamW if adamw else torch.optim.Adam
  try:
    return cls(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
  except (RuntimeError, TypeError):
    return cls(params, lr=lr, betas=betas, weight_decay=weight_decay, foreach=True)


class EMA:
  """Parameter EMA with genjax's warm-up: decay = min(decay, (1 + n) / (10 + n))."""

  def __init__(self, module: nn.Module, decay: float):
    self.params = [p.detach().clone() for p in module.parameters()]
    self.decay, self.n = decay, 0

  @torch.no_grad()
  def update(self, module: nn.Module):
    d = min(self.decay, (1.0 + self.n) / (10.0 + self.n))
    torch._foreach_lerp_(self.params, [p.detach() for p in module.parameters()], 1.0 - d)
    self.n += 1


# ----------------------------------------------------------------------------- classifier


class Classifier(nn.Module):
  """genjax.models.classifier.CNNClassifier: conv3x3-ReLU-maxpool blocks, dense features, head."""

  def __init__(self, channels=(32, 64, 128), feature_dim=128, num_classes=10, dropout=0.0,
               in_channels=1, side=28):
    super().__init__()
    convs, c = [], in_channels
    for ch in channels:
      convs.append(nn.Conv2d(c, ch, 3, padding=1))
      c = ch
      side = math.ceil(side / 2)
    self.convs = nn.ModuleList(convs)
    self.feature = nn.Linear(side * side * c, feature_dim)
    self.head = nn.Linear(feature_dim, num_classes)
    self.drop = nn.Dropout(dropout)

  def forward(self, x):
    for conv in self.convs:
      x = F.max_pool2d(F.relu(conv(x)), 2, ceil_mode=True)  # flax max_pool SAME: 7 -> 4.
    h = F.relu(self.feature(x.flatten(1)))
    return self.head(self.drop(h))


def random_shift(images: torch.Tensor, max_shift: int) -> torch.Tensor:
  """genjax.methods.classifier.random_shift: per-image translation, background -1."""
  if max_shift == 0:
    return images
  b, c, h, w = images.shape
  s = max_shift
  padded = F.pad(images, (s, s, s, s), value=-1.0)
  oy, ox = torch.randint(0, 2 * s + 1, (2, b))
  rows = (oy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(b, c, h, w + 2 * s)
  cropped = torch.gather(padded, 2, rows)
  cols = (ox[:, None] + torch.arange(w)[None])[:, None, None, :].expand(b, c, h, w)
  return torch.gather(cropped, 3, cols)


def make_classifier_step(model: Classifier, lr: float, weight_decay: float, shift: int,
                         smoothing: float, num_classes: int = 10):
  """() -> loss: one AdamW step on (images [B, C, H, W], labels [B]) as the genjax method."""
  opt = make_adam(model.parameters(), lr, weight_decay=weight_decay, adamw=True)

  def step(images, labels):
    x = random_shift(images, shift)
    logits = model(x)
    loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  return step


# ----------------------------------------------------------------------------- VAE


class VAE(nn.Module):
  """genjax.models.vae.VAE: convs 32, 64 at stride 2, dense 256, z 32; decoder mirrored."""

  def __init__(self, enc_channels=(32, 64), dec_channels=(64, 32), hidden=256, latent=32,
               side=28, in_channels=1):
    super().__init__()
    convs, c, s = [], in_channels, side
    for ch in enc_channels:
      convs.append(nn.Conv2d(c, ch, 3, stride=2, padding=1))
      c, s = ch, math.ceil(s / 2)
    self.enc_convs = nn.ModuleList(convs)
    self.enc_dense = nn.Linear(s * s * c, hidden)
    self.mean = nn.Linear(hidden, latent)
    self.logvar = nn.Linear(hidden, latent)
    down = 2 ** len(dec_channels)
    self.base = (dec_channels[0], side // down)
    self.dec_dense = nn.Linear(latent, (side // down) ** 2 * dec_channels[0])
    ups, c = [], dec_channels[0]
    for ch in dec_channels:
      ups.append(nn.ConvTranspose2d(c, ch, 3, stride=2, padding=1, output_padding=1))
      c = ch
    self.dec_ups = nn.ModuleList(ups)
    self.out = nn.ConvTranspose2d(c, in_channels, 3, padding=1)

  def forward(self, x):
    for conv in self.enc_convs:
      x = F.relu(conv(x))
    h = F.relu(self.enc_dense(x.flatten(1)))
    mean, logvar = self.mean(h), self.logvar(h)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    c, s = self.base
    y = F.relu(self.dec_dense(z)).view(-1, c, s, s)
    if x.is_contiguous(memory_format=torch.channels_last):
      y = y.contiguous(memory_format=torch.channels_last)
    for up in self.dec_ups:
      y = F.relu(up(y))
    return self.out(y), mean, logvar


def make_vae_step(model: VAE, lr: float, ema_decay: float | None):
  """One Adam step of the negative ELBO on dynamically binarized images (Bernoulli likelihood)."""
  opt = make_adam(model.parameters(), lr)
  ema = EMA(model, ema_decay) if ema_decay else None

  def step(images, labels):
    del labels
    x01 = (torch.rand_like(images) < (images + 1.0) / 2.0).to(images.dtype)
    logits, mean, logvar = model(2.0 * x01 - 1.0)
    ll = -F.binary_cross_entropy_with_logits(logits, x01, reduction='none').sum((1, 2, 3))
    kl = 0.5 * torch.sum(logvar.exp() + mean**2 - 1.0 - logvar, -1)
    loss = torch.mean(kl - ll)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if ema is not None:
      ema.update(model)
    return loss

  return step


# ----------------------------------------------------------------------------- DCGAN


class DCGANGenerator(nn.Module):
  """genjax.models.gan.DCGANGenerator: dense to 4x4, transposed 4x4 stride-2 convs, BN, ReLU, tanh."""

  def __init__(self, latent=100, channels=(256, 128, 64), out_channels=1, momentum=0.9):
    super().__init__()
    self.c0 = channels[0]
    self.project = nn.Linear(latent, 16 * channels[0])
    self.bn_project = nn.BatchNorm2d(channels[0], momentum=1.0 - momentum)
    ups, bns, c = [], [], channels[0]
    for ch in channels[1:]:
      ups.append(nn.ConvTranspose2d(c, ch, 4, 2, 1))
      bns.append(nn.BatchNorm2d(ch, momentum=1.0 - momentum))
      c = ch
    self.ups, self.bns = nn.ModuleList(ups), nn.ModuleList(bns)
    self.to_image = nn.ConvTranspose2d(c, out_channels, 4, 2, 1)
    self.channels_last = False

  def forward(self, z):
    x = self.project(z).view(-1, self.c0, 4, 4)
    if self.channels_last:
      x = x.contiguous(memory_format=torch.channels_last)
    x = F.relu(self.bn_project(x))
    for up, bn in zip(self.ups, self.bns):
      x = F.relu(bn(up(x)))
    return torch.tanh(self.to_image(x))


class DCGANDiscriminator(nn.Module):
  """genjax.models.gan.DCGANDiscriminator: 4x4 stride-2 convs, BN on all but the first, LeakyReLU."""

  def __init__(self, channels=(64, 128, 256), in_channels=1, side=32, momentum=0.9):
    super().__init__()
    convs, bns, c = [], [], in_channels
    for i, ch in enumerate(channels):
      convs.append(nn.Conv2d(c, ch, 4, 2, 1))
      bns.append(nn.BatchNorm2d(ch, momentum=1.0 - momentum) if i else nn.Identity())
      c, side = ch, side // 2
    self.convs, self.bns = nn.ModuleList(convs), nn.ModuleList(bns)
    self.out = nn.Linear(side * side * c, 1)

  def forward(self, x):
    for conv, bn in zip(self.convs, self.bns):
      x = F.leaky_relu(bn(conv(x)), 0.2)
    return self.out(x.flatten(1))[:, 0]


def make_gan_step(gen: nn.Module, disc: nn.Module, latent: int, lr: float, b1: float):
  """One iteration of genjax's GAN method: fakes once, a D update, then a G update through the
  updated D on the same fakes (non-saturating loss)."""
  g_opt = make_adam(gen.parameters(), lr, betas=(b1, 0.999))
  d_opt = make_adam(disc.parameters(), lr, betas=(b1, 0.999))

  def step(real, labels):
    del labels
    fake = gen(torch.randn(real.shape[0], latent))
    d_loss = F.softplus(-disc(real)).mean() + F.softplus(disc(fake.detach())).mean()
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    d_opt.step()
    g_loss = F.softplus(-disc(fake)).mean()
    g_opt.zero_grad(set_to_none=True)
    disc.requires_grad_(False)  # The G update differentiates with respect to G only.
    g_loss.backward()
    disc.requires_grad_(True)
    g_opt.step()
    return d_loss + g_loss

  return step


# ----------------------------------------------------------------------------- U-Net


def _groups(c: int) -> int:
  return math.gcd(32, c)


class ResBlock(nn.Module):
  """genjax.nn.blocks.ResBlock."""

  def __init__(self, cin: int, cout: int, emb_dim: int):
    super().__init__()
    self.norm1 = nn.GroupNorm(_groups(cin), cin, eps=1e-6)
    self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
    self.emb = nn.Linear(emb_dim, cout)
    self.norm2 = nn.GroupNorm(_groups(cout), cout, eps=1e-6)
    self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
    self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

  def forward(self, x, emb):
    h = self.conv1(F.silu(self.norm1(x)))
    h = h + self.emb(F.silu(emb))[:, :, None, None]
    h = self.conv2(F.silu(self.norm2(h)))
    return (x if self.skip is None else self.skip(x)) + h


class SelfAttention(nn.Module):
  """genjax.nn.blocks.SelfAttention (single head)."""

  def __init__(self, c: int, num_heads: int = 1):
    super().__init__()
    self.norm = nn.GroupNorm(_groups(c), c, eps=1e-6)
    self.qkv = nn.Linear(c, 3 * c)
    self.proj = nn.Linear(c, c)
    self.heads = num_heads

  def forward(self, x):
    b, c, h, w = x.shape
    t = self.norm(x).flatten(2).transpose(1, 2)  # [B, HW, C]
    q, k, v = self.qkv(t).view(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
    out = self.proj(out).transpose(1, 2).reshape(b, c, h, w)
    return x + out


class UNet(nn.Module):
  """genjax.models.unet.UNet (unconditional), module for module; patch_size p > 1 folds p x p
  patches into channels first (pixel_unshuffle) and unfolds the output."""

  def __init__(self, channels=(64, 128, 128), num_res_blocks=2, attention_resolutions=(7,),
               in_channels=1, side=28, patch_size=1):
    super().__init__()
    self.p = patch_size
    in_channels, side = in_channels * patch_size**2, side // patch_size
    ch = channels[0]
    self.ch = ch
    self.emb1, self.emb2 = nn.Linear(ch, 4 * ch), nn.Linear(4 * ch, 4 * ch)
    e = 4 * ch
    self.stem = nn.Conv2d(in_channels, ch, 3, padding=1)
    self.down = nn.ModuleList()
    c, s = ch, side
    skips = [(c, s)]
    for level, width in enumerate(channels):
      for _ in range(num_res_blocks):
        blk = nn.ModuleList([ResBlock(c, width, e)])
        if s in attention_resolutions:
          blk.append(SelfAttention(width))
        self.down.append(blk)
        c = width
        skips.append((c, s))
      if level < len(channels) - 1:
        self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
        s = math.ceil(s / 2)
        skips.append((c, s))
    self.mid = nn.ModuleList([ResBlock(c, c, e), SelfAttention(c), ResBlock(c, c, e)])
    self.up = nn.ModuleList()
    self.upsample = nn.ModuleDict()
    for level, width in reversed(list(enumerate(channels))):
      for _ in range(num_res_blocks + 1):
        skip_c, _ = skips.pop()
        blk = nn.ModuleList([ResBlock(c + skip_c, width, e)])
        if s in attention_resolutions:
          blk.append(SelfAttention(width))
        self.up.append(blk)
        c = width
      if level > 0:
        self.upsample[str(level)] = nn.Conv2d(c, c, 3, padding=1)
        s = skips[-1][1]
    self.head_norm = nn.GroupNorm(_groups(c), c, eps=1e-6)
    self.head = nn.Conv2d(c, in_channels, 3, padding=1)
    self.levels, self.num_res_blocks = len(channels), num_res_blocks

  def embed(self, noise_label):
    half = self.ch // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = noise_label[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], -1)
    return self.emb2(F.silu(self.emb1(emb)))

  @staticmethod
  def _block(blk, h, emb):
    if isinstance(blk[0], ResBlock):
      h = blk[0](h, emb)
      return blk[1](h) if len(blk) > 1 else h
    return blk[0](h)  # Downsample.

  def forward(self, x, noise_label):
    emb = self.embed(noise_label)
    if self.p > 1:
      x = F.pixel_unshuffle(x, self.p)
    h = self.stem(x)
    skips = [h]
    for blk in self.down:
      h = self._block(blk, h, emb)
      skips.append(h)
    h = self.mid[0](h, emb)
    h = self.mid[1](h)
    h = self.mid[2](h, emb)
    i = 0
    for level in reversed(range(self.levels)):
      for _ in range(self.num_res_blocks + 1):
        h = self._block(self.up[i], torch.cat([h, skips.pop()], 1), emb)
        i += 1
      if level > 0:
        h = self.upsample[str(level)](F.interpolate(h, scale_factor=2, mode='nearest'))
        h = h[:, :, :skips[-1].shape[2], :skips[-1].shape[3]]
    out = self.head(F.silu(self.head_norm(h)))
    return F.pixel_shuffle(out, self.p) if self.p > 1 else out


def edm_precond(sigma, sigma_data: float = 0.5):
  """(c_skip, c_out, c_in, c_noise) of EDM (Karras et al. 2022, Table 1)."""
  total = sigma**2 + sigma_data**2
  return sigma_data**2 / total, sigma * sigma_data / total.sqrt(), 1.0 / total.sqrt(), 0.25 * sigma.log()


def make_edm_step(model: UNet, lr: float, ema_decay: float | None, p_mean=-1.2, p_std=1.2,
                  sigma_data=0.5):
  """One Adam step of EDM's weighted denoising loss, as genjax.methods.diffusion with 'edm'."""
  opt = make_adam(model.parameters(), lr)
  ema = EMA(model, ema_decay) if ema_decay else None

  def step(x, labels):
    del labels
    b = x.shape[0]
    sigma = torch.exp(p_mean + p_std * torch.randn(b))
    c_skip, c_out, c_in, c_noise = edm_precond(sigma, sigma_data)
    bc = lambda a: a[:, None, None, None]
    noisy = x + bc(sigma) * torch.randn_like(x)
    denoised = bc(c_skip) * noisy + bc(c_out) * model(bc(c_in) * noisy, c_noise)
    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    loss = torch.mean(weight * ((denoised - x) ** 2).mean((1, 2, 3)))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if ema is not None:
      ema.update(model)
    return loss

  return step


def karras_sigmas(n: int, sigma_min=0.002, sigma_max=80.0, rho=7.0) -> torch.Tensor:
  """[n + 1] Karras et al. (2022) noise levels, ending in 0."""
  ramp = torch.linspace(0, 1, n)
  lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
  return torch.cat([(hi + ramp * (lo - hi)) ** rho, torch.zeros(1)])


@torch.inference_mode()
def sample_dpmpp_2m(model: UNet, x: torch.Tensor, sigmas: torch.Tensor, sigma_data=0.5):
  """DPM-Solver++(2M) (Lu et al. 2022) on the EDM denoiser; NFE = len(sigmas) - 1."""
  def denoise(x, sigma):
    s = sigma.expand(x.shape[0])
    c_skip, c_out, c_in, c_noise = edm_precond(s, sigma_data)
    bc = lambda a: a[:, None, None, None]
    return bc(c_skip) * x + bc(c_out) * model(bc(c_in) * x, c_noise)

  old = None
  for i in range(len(sigmas) - 1):
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    x0 = denoise(x, sigma)
    if sigma_next == 0:
      x = x0
      break
    h = torch.log(sigma / sigma_next)
    phi1 = torch.expm1(-h)
    if old is None:
      x = (sigma_next / sigma) * x - phi1 * x0
    else:
      r = h_prev / h
      x = (sigma_next / sigma) * x - phi1 * ((1 + 1 / (2 * r)) * x0 - old / (2 * r))
    old, h_prev = x0, h
  return x.clamp(-1.0, 1.0)
