"""The seed's DCGAN at its own 64x64x3 layout, on CelebA (TFDS `celeb_a`), for online machines.

Launch (once online, to download and prepare CelebA; TFDS needs tensorflow for the images):
  genjax train --config=configs/dcgan_celeba64.py --workdir=runs/dcgan_celeba --config.data.download=True
  genjax train --config=configs/dcgan_celeba64.py --workdir=runs/dcgan_celeba \
      --config.eval.feature_extractor=inception_v3 --config.eval.feature_extractor_path=/path/to/inception.npz

Generator z (100) -> 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 ->
64x64x3; discriminator 64, 128, 256, 512 maps down to 4x4, one logit (the
seed's `DCGAN`, 12.7M + 2.8M parameters). Images are resized (squashed) from
218x178 to 64x64. The bundled MNIST classifier cannot score RGB faces, so no
sample metrics are computed unless an InceptionV3 weights file is given
(FID then compares with the published DCGAN-on-CelebA figures only roughly;
note that the metrics suite loads the whole train split for its floor and
memorization report, about 8 GB of float32 at 64x64x3).
Not measured here: this machine is offline. The `smoke` variant (narrowed
widths, same 64x64x3 layout) is run by tests/test_train.py on TFDS's mock
CelebA data.
"""
from configs import base


def get_config(variant=None):
  c = base.get_config('gan')
  c.gan.arch = 'dcgan'
  c.data.name = 'celeb_a'
  c.data.resize_to = 64
  c.data.cache = False  # 162,770 training images: read them from disk.
  c.data.batch_size = 128
  c.gan.latent_dim = 100
  c.gan.gen_channels = (1024, 512, 256, 128)
  c.gan.disc_channels = (64, 128, 256, 512)
  c.gan.monitor_classifier = None  # The MNIST classifier reads digits only.
  c.eval.feature_extractor = None
  c.optim.lr = 2e-4
  c.optim.b1 = 0.5
  c.train.num_steps = 20000
  c.train.log_every_steps = 100
  c.train.eval_every_steps = 5000
  c.train.checkpoint_every_steps = 1000
  c.train.images_every_steps = 1000
  return base.with_variant(c, variant, {'smoke': smoke})


def smoke(c):
  c = base.smoke(c)
  c.gan.gen_channels = (16, 16, 8, 8)
  c.gan.disc_channels = (8, 8, 16, 16)
  return c
