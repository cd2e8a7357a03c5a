"""The config fields of a diffusion's training loss and noise, shared by the families that train
one: `config.diffusion` (genjax.methods.diffusion.DiffusionSpec), `config.ldm`
(genjax.methods.ldm.LDMSpec) and `config.sr` (genjax.methods.sr.SRSpec, EDM only).

The families' specs inherit these frozen dataclasses, so the fields stay flat in each
family's own group (`config.ldm.parameterization`, `config.sr.sigma_data`); a family whose
default differs redeclares the field (LDMSpec: sigma_data 1.0). Each spec's `__post_init__`
calls `check_diffusion_fields(group)`, whose errors name `config.<group>.<field>`.
"""
from __future__ import annotations

import dataclasses

from genjax import config as config_lib
from genjax.diffusion import losses, schedules


@dataclasses.dataclass(frozen=True)
class EDMFields:
  """EDM's training noise and sampling range (Karras et al. 2022).

  Attributes:
    sigma_data: the data's standard deviation (preconditioning and loss weight).
    p_mean, p_std: the training noise: ln(sigma) ~ N(p_mean, p_std^2).
    sigma_min, sigma_max: the sampling range, 0 < sigma_min < sigma_max.
  """
  sigma_data: float = 0.5
  p_mean: float = -1.2
  p_std: float = 1.2
  sigma_min: float = 0.002
  sigma_max: float = 80.0

  def check_diffusion_fields(self, group: str) -> None:
    """Raises ConfigError naming `config.<group>.<field>` for a value out of range."""
    config_lib.check_range(f'{group}.sigma_min', self.sigma_min, low=0.0, low_open=True)
    config_lib.check_range(f'{group}.sigma_max', self.sigma_max, low=self.sigma_min,
                           low_open=True)


@dataclasses.dataclass(frozen=True)
class DiffusionLossFields(EDMFields):
  """The loss of a diffusion that trains either way: VP-discrete (DDPM) or EDM.

  Attributes:
    parameterization: eps | x0 | v (VP-discrete, DDPM) | edm (Karras et al. 2022).
    loss_weighting: simple | min_snr (VP) | edm (with parameterization='edm').
    beta_schedule: VP schedule: linear | cosine | sigmoid (also the grid of the bits/dim
      bound and of 'vp_uniform' sampling, and the VP sigma range).
    num_timesteps: T of the VP chain.
    min_snr_gamma: min-SNR weighting's gamma.
    (and EDMFields' sigma_data, p_mean, p_std, sigma_min, sigma_max)
  """
  parameterization: str = 'edm'
  loss_weighting: str = 'edm'
  beta_schedule: str = 'linear'
  num_timesteps: int = 1000
  min_snr_gamma: float = 5.0

  def check_diffusion_fields(self, group: str) -> None:
    """Raises ConfigError naming `config.<group>.<field>`: an unknown parameterization,
    weighting or beta schedule, EDM's weighting without its parameterization (or the
    reverse), fewer than 2 timesteps, or EDM's range out of order."""
    config_lib.check_choice(f'{group}.parameterization', self.parameterization,
                            schedules.PARAMETERIZATIONS)
    config_lib.check_choice(f'{group}.loss_weighting', self.loss_weighting, losses.WEIGHTINGS)
    config_lib.check_choice(f'{group}.beta_schedule', self.beta_schedule,
                            sorted(schedules.BETA_SCHEDULES))
    if (self.loss_weighting == 'edm') != (self.parameterization == 'edm'):
      raise config_lib.ConfigError(
          f"config.{group}.loss_weighting='edm' goes with {group}.parameterization='edm' and "
          f'only with it; got {self.loss_weighting!r} with {self.parameterization!r}.')
    config_lib.check_range(f'{group}.num_timesteps', self.num_timesteps, low=2)
    super().check_diffusion_fields(group)

  @property
  def edm(self) -> bool:
    """Whether the model is EDM's (else VP-discrete)."""
    return self.parameterization == 'edm'
