"""The paper setting: the seed's VAE on all 60,000 binarized MNIST training digits (TFDS).

Launch on a machine with network (TFDS downloads and prepares MNIST once;
preparing image data sets needs `pip install tensorflow` for TFDS's decoding):
  genjax train --config=configs/vae_mnist_full.py --workdir=runs/vae_full
  genjax eval --config=configs/vae_mnist_full.py --config.vae.iwae_k=5000 --workdir=runs/vae_full

Reference: Burda et al. 2015 report 86.76 nats (k=5000) for a 1-layer VAE on
the 10,000 test digits. Test digits are binarized once with a fixed seed.
300 epochs of 60,000 at batch 128.
"""
from configs import base
from configs import vae_mnist


def get_config(variant=None):
  c = vae_mnist.get_config()
  c.unlock()
  c.data.name = 'mnist'
  c.data.download = True
  c.data.cache = True
  c.train.num_steps = 140_000
  c.train.eval_every_steps = 20_000
  c.train.checkpoint_every_steps = 5_000
  c.train.images_every_steps = 20_000
  c.eval.num_samples = 10_000
  c.vae.iwae_k = 1000
  return base.with_variant(c, variant, {'smoke': vae_mnist.smoke})
