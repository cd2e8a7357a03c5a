"""Every config field of genjax, with its default.

An experiment file (`configs/<name>.py`) starts from `get_config()` here and
overrides only what differs. Fields that may be unset are typed placeholders,
so a command-line override such as `--config.data.pad_to=32` is type-checked.
Durations carry their unit in the name (`num_steps`, `log_every_steps`).
"""
import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0  # One seed: parameters, data order and step rngs all derive from it.

  c.data = dict(
      name='mnist5k',  # Bundled: mnist5k, digits8x8, photos; or any TFDS name.
      data_dir=config_dict.placeholder(str),  # None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
      download=False,  # Let TFDS download and prepare a non-bundled data set.
      train_split='train',
      eval_split='test',
      batch_size=128,  # Global, over all devices and processes.
      eval_batch_size=500,
      pad_to=config_dict.placeholder(int),  # Zero-pad (in [-1, 1]: -1) to a square side, 28 -> 32.
      resize_to=config_dict.placeholder(int),  # Bilinear resize to a square side.
      cache=True,  # Keep the preprocessed train split in host memory (small data sets).
      num_threads=2,  # Host threads that assemble batches ahead of the step.
      prefetch_batches=4,
  )

  c.model = dict(
      name='cnn_classifier',
      num_classes=10,
      channels=(32, 64, 128),  # Per resolution level.
      feature_dim=128,  # The classifier's feature vector (the article's 128 numbers).
      dropout=0.0,
      # Classifier: genjax.nn.conv formulation of every conv (gemm | im2col | lax | split);
      # None: its per-layer rule. Speed only (experiments/benchmarks/ynn_ab.py --b_lax).
      conv_method=config_dict.placeholder(str),
      latent_dim=32,  # VAE latent size.
      hidden_dim=256,  # Dense width between the convs and the latent (VAE).
      conditional=False,  # Condition on labels (cVAE, conditional GANs and diffusion).
      # GAN family.
      gen_channels=(256, 128, 64),  # MLP: hidden widths; DCGAN/StyleGAN: maps from 4x4 up.
      disc_channels=(64, 128, 256),  # MLP: hidden widths; DCGAN/StyleGAN: maps from full size down.
      bn_momentum=0.9,  # BatchNorm running-average momentum (MLP GAN, DCGAN).
      w_dim=128,  # StyleGAN: size of w (and of the mapping network's layers).
      mapping_layers=8,  # StyleGAN mapping network depth.
      mapping_lr_mult=0.01,  # StyleGAN mapping network learning-rate multiplier.
      affine_lr_mult=1.0,  # StyleGAN style affines' learning-rate multiplier (1 in the papers).
      style_mode='modulated',  # StyleGAN: modulated (StyleGAN2, demodulation) | adain (StyleGAN).
      mbstd_group=4,  # StyleGAN discriminator: minibatch-stddev group size.
      # StyleGAN's discriminator: stylegan (residual, minibatch stddev) | dcgan (DCGAN's, with
      # BatchNorm over the batch, which a collapsed batch of fakes cannot pass; RESULTS.md).
      stylegan_discriminator='stylegan',
      stylegan_output='linear',  # StyleGAN generator's last activation: linear (papers) | tanh.
      # Diffusion U-Net (model.channels: width per resolution level).
      num_res_blocks=2,
      attention_resolutions=(7,),  # Sides H at which self-attention follows the blocks.
      num_heads=1,
      patch_size=1,  # > 1: fold p x p patches into channels (space to depth) first.
  )

  c.method = dict(
      name='classifier',
      augment_shift=0,  # Random translation in pixels (classifier).
      label_smoothing=0.0,
      # VAE family.
      beta=1.0,  # KL weight: 1 is the VAE, > 1 the beta-VAE.
      likelihood='bernoulli',  # bernoulli (dynamically binarized digits) | gaussian.
      gaussian_sigma=0.1,  # Fixed decoder std of the gaussian likelihood.
      iwae_k=0,  # Importance samples of the IWAE test NLL; 0: not computed.
      iwae_chunk=100,  # Importance samples per decoder call (memory).
      iwae_batch_size=100,  # Test digits per IWAE call.
      # GAN family.
      gan_loss='non_saturating',  # non_saturating (the seed's BCE, on logits) | hinge.
      d_lr=config_dict.placeholder(float),  # Discriminator's lr (optim's optimizer); None: optim.lr.
      d_b1=config_dict.placeholder(float),  # None: optim.b1.
      d_b2=config_dict.placeholder(float),  # None: optim.b2.
      r1_gamma=0.0,  # R1 weight gamma (penalty gamma / 2 E||grad D(x)||^2); 0: off.
      g_first=False,  # G's update first, then D's on fresh fakes (StyleGAN2); False: D first.
      diff_augment='',  # DiffAugment policy for D's inputs: e.g. 'translation,cutout'; '': off.
      d_pack=1,  # PacGAN: D judges packs of this many samples (channel-concatenated); 1: off.
      mode_seeking=0.0,  # Weight of MSGAN's mode-seeking term in G's loss; 0: off.
      r1_every=16,  # Lazy R1: every k steps, weighted by k (StyleGAN2).
      pl_weight=0.0,  # StyleGAN2's path-length regularization weight (2 in the paper); 0: off.
      pl_every=4,  # Lazy path-length regularization: every k steps, weighted by k.
      pl_batch_shrink=2,  # Its batch is the step's divided by this.
      pl_decay=0.01,  # Decay of the running mean of path lengths it pulls towards.
      style_mixing_prob=0.9,  # StyleGAN: fraction of fakes with two ws and a crossover.
      w_avg_beta=0.995,  # StyleGAN: decay of the tracked average of w.
      truncation_psi=1.0,  # StyleGAN sampling (and metrics): 1 = no truncation.
      monitor_classifier='mnist5k_classifier',  # Class entropy of fakes in the step; None: off.
      standing_stats_size=0,  # BatchNorm generators sample with the batch statistics of this
      # many fixed latents (BigGAN's standing stats); 0: the running averages.
      # Diffusion.
      parameterization='edm',  # eps | x0 | v (VP-discrete, DDPM) | edm (Karras et al. 2022).
      loss_weighting='edm',  # simple | min_snr (VP) | edm (with parameterization='edm').
      beta_schedule='linear',  # VP schedule: linear | cosine | sigmoid (also the bits/dim grid).
      num_timesteps=1000,
      min_snr_gamma=5.0,
      sigma_data=0.5,  # EDM.
      p_mean=-1.2,  # EDM training noise: ln(sigma) ~ N(p_mean, p_std^2).
      p_std=1.2,
      sigma_min=0.002,  # EDM sampling range.
      sigma_max=80.0,
      label_dropout=0.1,  # Conditional models: fraction of null labels (classifier-free guidance).
      random_flip=False,  # Diffusion: random horizontal flips (natural images, not digits).
  )

  c.optim = dict(
      name='adam',
      lr=1e-3,
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      momentum=0.9,  # sgd only.
      weight_decay=0.0,  # Decoupled (adamw) or added to the gradient (sgd).
      schedule='constant',
      warmup_steps=0,
      end_lr_factor=0.0,  # Final lr as a fraction of `lr` for decaying schedules.
      grad_clip_norm=config_dict.placeholder(float),
  )

  c.train = dict(
      num_steps=1000,
      log_every_steps=50,
      eval_every_steps=500,
      checkpoint_every_steps=500,
      keep_checkpoints=3,
      images_every_steps=500,
      ema_decay=config_dict.placeholder(float),  # None: no EMA of parameters.
      ema_warmup=True,  # Ramp the EMA decay up as min(decay, (1 + n) / (10 + n)).
      # XLA:CPU's convolution library, 'ynnpack' (XLA's default) or 'eigen': process-wide,
      # set by genjax commands; faster per model (genjax/train/xla_cpu.py).
      xla_cpu_convolutions='ynnpack',
  )

  c.eval = dict(
      split='test',
      num_examples=config_dict.placeholder(int),  # None: the whole split.
      # Sample quality (generative methods): N samples against the split, floor = N train images.
      num_samples=1000,
      sample_batch_size=250,
      feature_extractor='mnist5k_classifier',  # None: no sample-quality metrics.
      feature_extractor_path=config_dict.placeholder(str),  # None: the extractor's default weights.
      kid_subset_size=500,
      kid_num_subsets=50,
      bpd_num_examples=0,  # Diffusion: test images for the bits/dim bound (all T terms); 0: off.
      bpd_batch_size=50,
      bpd_chunk=10,  # Timesteps evaluated together.
  )

  c.sample = dict(  # Diffusion sampling, for evaluation, pictures and `genjax sample`.
      sampler='dpmpp_2m',  # A key of genjax.diffusion.SAMPLERS.
      num_steps=20,
      sigma_schedule='karras',  # karras | logsnr | vp_uniform | polyexponential.
      rho=7.0,  # Karras schedule.
      guidance_scale=config_dict.placeholder(float),  # CFG weight w (1: plain conditional); None: off.
      eta=config_dict.placeholder(float),  # ddim / ancestral samplers' noise; None: their default.
      s_churn=config_dict.placeholder(float),  # heun (EDM Algorithm 2); None: its default.
  )

  c.mesh = dict(
      data=-1,  # -1: every device not used by the other axes.
      fsdp=1,  # >1 shards parameters and optimizer state over this axis too.
      num_devices=config_dict.placeholder(int),  # None: all devices.
  )
  return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks any config to a 2-step run that still trains, evaluates and writes pictures."""
  c.data.batch_size = 16
  c.data.eval_batch_size = 100
  c.train.num_steps = 2
  c.train.log_every_steps = 1
  c.train.eval_every_steps = 2
  c.train.checkpoint_every_steps = 2
  c.train.images_every_steps = 2
  c.eval.num_examples = 200
  c.eval.num_samples = 64  # = the picture grid's 64: one compiled sampling shape.
  c.eval.sample_batch_size = 64
  c.eval.kid_subset_size = 50
  c.eval.kid_num_subsets = 5
  return c


def with_variant(c: ml_collections.ConfigDict, variant, variants: dict):
  """Applies the named variant (`configs/x.py:smoke`) and locks the config.

  Args:
    c: the experiment's config.
    variant: None or a key of `variants`.
    variants: name -> function(config) -> config.

  Returns:
    The locked config.
  """
  if variant:
    if variant not in variants:
      raise ValueError(f'Unknown config variant {variant!r}; accepted: {sorted(variants)}.')
    c = variants[variant](c)
  c.lock()
  return c
