"""Super-resolution x4 (the 'sr' family): RRDB-PSNR, ESRGAN and SR3-style diffusion.

Pairs are made as SR papers make them: MATLAB-bicubic (antialiased) 1/4 of HR
images or crops, rounded to 8 bits (`genjax.data.resize`). `config.sr.arch`:

- rrdb_psnr: ESRGAN's RRDB generator (`genjax.models.rrdb`) trained with L1.
- esrgan: the same generator started from an RRDB-PSNR run (`sr.init_from`), with
  the relativistic average GAN, a perceptual loss on pre-activation features and
  L1 (weights 1, 5e-3, 1e-2); network interpolation with the PSNR run:
  `upscale.interpolate`.
- diffusion: SR3, the U-Net (genjax.models.unet) on concat(x_t, bicubic(LR)), EDM's
  loss and preconditioning (genjax.diffusion), sampled with `config.sample.sampler`.

Modules: `spec` (SRSpec, networks, perceptual features), `losses`, `steps` (pairs,
init, train steps), `upscale` (inference, interpolation, tiles), `evaluate`
(PSNR/SSIM/FID/label accuracy with the bicubic and nearest baselines), `method` (make).
"""
from genjax.methods.sr.method import decode, load_psnr_generator, make
from genjax.methods.sr.spec import ARCHS, SRSpec, make_perceptual_fn
from genjax.methods.sr.upscale import interpolate, load_run_params, upscale_tiled
