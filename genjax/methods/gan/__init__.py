"""GANs: the seed's MLP GAN, DCGAN and StyleGAN(2), unconditional or label-conditional.

`spec` (the config groups), `networks` (the `Gan`: specs and modules),
`inputs` (latents, G(z), D(x)), `d_update`, `g_update`, `penalties` (R1 and
path length), `stylegan_extras` (w, mixing, truncation, w_avg) and `method`
(init, train_step, sample, evaluate, write_images, make); `losses` and
`augment` (DiffAugment) are pure functions of arrays.
"""
from genjax.methods.gan.method import GanTx, decode, make, make_optimizers
from genjax.methods.gan.networks import Gan, pack_for_discriminator
from genjax.methods.gan.spec import GanSpec, StyleGANSpec
