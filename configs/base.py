"""The shared config groups of genjax, with their defaults, plus one family's own groups.

An experiment file (`configs/<name>.py`) starts from `get_config(method)` here
and overrides only what differs. The shared groups (data, optim, train, eval,
sample, mesh) are written out below; a family's group (`config.classifier`,
`config.vae`, `config.gan` and `config.stylegan`, `config.diffusion`) holds the
fields of that family's spec with their defaults (documented in the spec's
docstring, e.g. `genjax.methods.vae.VAESpec`), and a config holds no other
family's group: `--config.stylegan.w_dim=64` on a VAE config is refused,
naming the family that owns it. Fields that may be unset are typed
placeholders, so `--config.data.pad_to=32` is type-checked. Durations carry
their unit in the name (`num_steps`, `log_every_steps`).
"""
import ml_collections
from ml_collections import config_dict

from genjax import methods


def get_config(method: str = 'classifier', *groups: str) -> ml_collections.ConfigDict:
  """The shared groups with their defaults, `config.method`, and the family's groups.

  Args:
    method: a key of `genjax.methods.METHODS` (classifier | vae | gan | diffusion).
    *groups: further groups of the same family (e.g. 'stylegan' for gan.arch='stylegan').
  """
  c = ml_collections.ConfigDict()
  c.seed = 0  # One seed: parameters, data order and step rngs all derive from it.
  c.method = method  # The model family: what training means (genjax.methods.METHODS).

  c.data = dict(
      name='mnist5k',  # Bundled: mnist5k, digits8x8, photos; or any TFDS name.
      data_dir=config_dict.placeholder(str),  # None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
      download=False,  # Let TFDS download and prepare a non-bundled data set.
      train_split='train',
      eval_split='test',
      batch_size=128,  # Global, over all devices and processes.
      eval_batch_size=500,
      pad_to=config_dict.placeholder(int),  # Zero-pad (in [-1, 1]: -1) to a square side, 28 -> 32.
      tile_to=config_dict.placeholder(int),  # Cut each image into square tiles of this side.
      crop_to=config_dict.placeholder(int),  # Centre crop to a square side (before resize_to).
      resize_to=config_dict.placeholder(int),  # Bilinear resize to a square side.
      cache=True,  # Keep the preprocessed train split in host memory (small data sets).
      num_threads=2,  # Host threads that assemble batches ahead of the step.
      prefetch_batches=4,
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
      # set by genjax commands; faster per model (genjax/core/xla_cpu.py).
      xla_cpu_convolutions='ynnpack',
      # Mixed precision: 'bfloat16' computes in bf16, parameters, optimizer state, EMA, norm
      # statistics, softmax and losses float32 (genjax/core/precision.py); 'float32': all f32.
      compute_dtype='float32',
      # k > 1: each step splits data.batch_size into k micro-batches, accumulates their mean
      # gradient and makes one update: the step on the whole batch in 1/k of the activations.
      grad_accum_steps=1,
      # Compile the step ahead of time and log achieved FLOP/s and MFU from XLA's cost analysis.
      log_flops=True,
  )

  c.eval = dict(
      split='test',
      num_examples=config_dict.placeholder(int),  # None: the whole split.
      # Sample quality (generative methods): N samples against the split, floor = N train images.
      num_samples=1000,
      sample_batch_size=250,
      # None: no sample-quality metrics (a typed reference, so `--config.eval.feature_extractor=None`).
      feature_extractor=config_dict.FieldReference('mnist5k_classifier', field_type=str),
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
  for name, group in methods.config_groups(method, *groups).items():
    c[name] = group
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
