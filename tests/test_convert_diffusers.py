"""diffusers UNet2DModel -> genjax U-Net: same eps as diffusers' PyTorch model, then samplers run.

diffusers and torch are test extras: the test is skipped without them.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip('torch')
diffusers = pytest.importorskip('diffusers')

from genjax.core.checkpoint import Checkpointer  # noqa: E402
from genjax.methods import diffusion, make_method  # noqa: E402
from genjax.tools import convert_diffusers  # noqa: E402

# One worker runs the module; its session-scoped fixture is then built once (a module-scoped
# one is torn down whenever xdist interleaves another module's tests on that worker).
pytestmark = pytest.mark.xdist_group('convert_diffusers')

# google/ddpm-cifar10-32's layout (attention on the second level, diffusers' embedding), small.
DDPM_LIKE = dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(32, 64),
                 layers_per_block=1, down_block_types=('DownBlock2D', 'AttnDownBlock2D'),
                 up_block_types=('AttnUpBlock2D', 'UpBlock2D'), attention_head_dim=None,
                 downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_num_groups=32,
                 norm_eps=1e-6)


@pytest.fixture(scope='session')  # Its group's one worker builds it once.
def converted(tmp_path_factory):
  """A randomly initialised diffusers model (saved as safetensors) and its genjax conversion."""
  torch.manual_seed(0)
  model = diffusers.UNet2DModel(**DDPM_LIKE).eval()
  with torch.no_grad():  # diffusers zero-initialises nothing here, but make every weight count.
    for p in model.parameters():
      p.add_(0.05 * torch.randn_like(p))
  folder = str(tmp_path_factory.mktemp('ddpm') / 'unet')
  model.save_pretrained(folder)
  return model, folder


def test_converted_unet_predicts_diffusers_eps(converted, load):
  model, folder = converted
  dc = convert_diffusers.read_config(folder)
  params = convert_diffusers.convert_params(convert_diffusers.load_weights(folder), dc)
  config = convert_diffusers.converted_config(load('ddpm_cifar10.py:smoke'), dc)
  spec, _ = diffusion.decode_specs(config, (8, 8, 3))
  x = np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype(np.float32)
  t = np.array([0, 417, 999])
  with torch.no_grad():
    want = model(torch.from_numpy(x.transpose(0, 3, 1, 2)), torch.from_numpy(t)).sample.numpy()
  got = np.asarray(spec.network.apply({'params': params}, jnp.asarray(x), jnp.asarray(t, jnp.float32)))
  np.testing.assert_allclose(got, want.transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
  assert np.abs(want).max() > 0.1  # A real output, so the comparison can fail.


def test_conversion_writes_a_run_that_samples(converted, load, tmp_path):
  _, folder = converted
  workdir = str(tmp_path / 'run')
  convert_diffusers.convert(folder, workdir, load('ddpm_cifar10.py:smoke'))
  saved = json.load(open(os.path.join(workdir, 'config.json')))
  assert saved['diffusion']['attention_down_levels'] == [1]
  assert saved['diffusion']['parameterization'] == 'eps'
  from genjax.train import trained
  config = trained.workdir_config(workdir)
  method = make_method(config, (8, 8, 3))
  abstract = jax.eval_shape(method.init, jax.random.key(0),
                            {'image': jnp.zeros((1, 8, 8, 3)), 'label': jnp.zeros((1,), jnp.int32)})
  state = Checkpointer(workdir, 1).restore(abstract, 0)
  spec, sample_spec = diffusion.decode_specs(config, (8, 8, 3))
  # One sampler here (samplers only see the denoiser D; each is tested on bf16 and closed forms).
  images = diffusion.sample(spec, sample_spec.replace(sampler='ddim', num_steps=2), state,
                            jax.random.split(jax.random.key(0), 2))
  assert images.shape == (2, 8, 8, 3) and np.all(np.isfinite(images))
  with pytest.raises(convert_diffusers.ConversionError, match='fresh'):
    convert_diffusers.convert(folder, workdir, load('ddpm_cifar10.py:smoke'))


def test_unsupported_architectures_are_refused():
  with pytest.raises(convert_diffusers.ConversionError, match='downsample_padding'):
    convert_diffusers.unet_fields({**DDPM_LIKE, 'downsample_padding': 1})
  with pytest.raises(convert_diffusers.ConversionError, match='config.json'):
    convert_diffusers.read_config('/nonexistent')
