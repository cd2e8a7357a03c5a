"""Diffusion core: noise schedules, denoiser wrappers, training losses, samplers and the
likelihood bound.

The sampler contract: `sample_NAME(denoise, x, sigmas, *, rng=None, **knobs) -> x` with
`denoise(x, sigma) -> x0_hat` in sigma form (x = x0 + sigma * eps); see `samplers`.
"""
from genjax.diffusion.denoisers import (gaussian_pf_ode_solution, make_edm_denoiser,
                                        make_gaussian_denoiser, make_gaussian_mixture_denoiser,
                                        make_vp_denoiser)
from genjax.diffusion.likelihood import (discretized_gaussian_log_likelihood, normal_kl, prior_bpd,
                                         vlb_estimate, vlb_term, vlb_terms)
from genjax.diffusion.losses import VP_WEIGHTINGS, WEIGHTINGS, edm_loss, vp_loss
from genjax.diffusion.samplers import (NFE, SAMPLERS, count_nfe, nfe, nfe_with, sample_ddim,
                                       sample_ddpm, sample_dpmpp_2m, sample_dpmpp_2m_sde,
                                       sample_dpmpp_2s, sample_dpmpp_3m, sample_euler,
                                       sample_euler_ancestral, sample_heun, sample_ipndm,
                                       sample_pc_langevin, sample_unipc, samplers_with)
from genjax.diffusion.schedules import (BETA_SCHEDULES, DDPM_VARIANCES, PARAMETERIZATIONS,
                                        SIGMA_SCHEDULES, VP_PARAMETERIZATIONS, VPSchedule,
                                        cosine_beta_schedule, edm_loss_weight, edm_precond,
                                        edm_sample_sigma, get_sigmas, karras_sigmas,
                                        linear_beta_schedule, logsnr_uniform_sigmas,
                                        min_snr_weight, polyexponential_sigmas,
                                        sigmoid_beta_schedule, snr, vp_uniform_time_sigmas)
