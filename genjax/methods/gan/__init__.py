"""GANs: the seed's MLP GAN, DCGAN and StyleGAN(2), unconditional or label-conditional."""
from genjax.methods.gan.method import make
from genjax.methods.gan.spec import GanSpec, StyleGANSpec
