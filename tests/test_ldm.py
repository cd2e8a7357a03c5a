"""Latent diffusion text-to-image: the networks' maths (padding never matters, the contrastive
loss and the KL against hand computations) and the three-stage pipeline end to end (train 2
steps each, skip finished stages, generate from a prompt, refuse a changed autoencoder)."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import config as config_lib
from genjax.data import captions
from genjax.methods.ldm import clip as clip_stage
from genjax.models.autoencoder import kl_to_standard_normal
from genjax.models.ldm_unet import SpatialTransformer
from genjax.models.text import TextEncoder

# One worker runs the module; its session-scoped fixture is then built once (a module-scoped
# one is torn down whenever xdist interleaves another module's tests on that worker).
pytestmark = pytest.mark.xdist_group('ldm')


def test_xdist_keeps_this_module_on_one_worker(request):
  # pytest 9.2's structured node ids broke xdist 3.8's --dist loadgroup (pytest-xdist#1386):
  # groups were silently ignored and this module's pipeline was trained on both workers.
  if getattr(request.config.option, 'loadgroup', False):
    assert request.node.nodeid.endswith('@ldm'), request.node.nodeid


def test_cross_attention_ignores_padding_tokens():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 4, 4, 8)), jnp.float32)
  context = jnp.asarray(rng.normal(size=(2, 5, 6)), jnp.float32)
  mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], bool)
  block = SpatialTransformer(num_heads=2)
  params = block.init(jax.random.key(0), x, context, mask)
  # Non-zero output projection, or the block would be the identity at init.
  params = jax.tree.map(lambda p: p + 0.1, params)
  out = block.apply(params, x, context, mask)
  # More padding, with garbage embeddings at every padded position: the same output.
  garbage = jnp.asarray(rng.normal(size=(2, 9, 6)) * 100, jnp.float32)
  longer = garbage.at[:, :5].set(jnp.where(mask[..., None], context, garbage[:, :5]))
  long_mask = jnp.pad(mask, ((0, 0), (0, 4)))
  np.testing.assert_allclose(block.apply(params, x, longer, long_mask), out, atol=1e-5)
  assert not np.allclose(out, x, atol=1e-3)
  # ...while a real token does change it.
  changed = context.at[0, 1].add(1.0)
  assert not np.allclose(block.apply(params, x, changed, mask)[0], out[0], atol=1e-4)


def test_text_encoder_output_does_not_depend_on_padded_length():
  ids, _ = captions.tokenize(['a thick seven leaning right', 'small 5'], max_tokens=12)
  encoder = TextEncoder(vocab_size=len(captions.VOCAB), width=16, depth=1, num_heads=2,
                        max_tokens=16)
  params = encoder.init(jax.random.key(1), jnp.asarray(ids))
  tokens, pooled = encoder.apply(params, jnp.asarray(ids))
  tokens16, pooled16 = encoder.apply(params, jnp.pad(jnp.asarray(ids), ((0, 0), (0, 4))))
  np.testing.assert_allclose(pooled16, pooled, atol=1e-5)
  real = ids != captions.PAD
  np.testing.assert_allclose(np.asarray(tokens16)[:, :12][real], np.asarray(tokens)[real], atol=1e-5)
  assert not np.allclose(pooled[0], pooled[1], atol=1e-3)


def test_contrastive_loss_of_a_2x2_batch_by_hand():
  image = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  text = jnp.array([[1.0, 0.0], [0.6, 0.8]])
  # Inverse temperature 2: logits 2 * image @ text.T = [[2, 1.2], [0, 1.6]].
  image_to_text = (-2 + math.log(math.exp(2) + math.exp(1.2))) + (-1.6 + math.log(1 + math.exp(1.6)))
  text_to_image = (-2 + math.log(math.exp(2) + 1)) + (-1.6 + math.log(math.exp(1.2) + math.exp(1.6)))
  expected = 0.5 * (image_to_text / 2 + text_to_image / 2)
  got = clip_stage.contrastive_loss(image, text, jnp.log(2.0))
  assert float(got) == pytest.approx(expected, rel=1e-6)


def test_kl_to_a_standard_normal_by_hand():
  mean = jnp.ones((1, 2, 2, 1))
  logvar = jnp.full((1, 2, 2, 1), math.log(2.0))
  # Per dimension: 0.5 (m^2 + s^2 - 1 - log s^2) = 0.5 (1 + 2 - 1 - log 2).
  assert float(kl_to_standard_normal(mean, logvar)[0]) == pytest.approx(4 * 0.5 * (2 - math.log(2)))


@pytest.fixture(scope='session')  # Its group's one worker builds it once.
def pipeline_run(tmp_path_factory):
  """The three-stage smoke pipeline, trained once: (workdir, ldm config)."""
  from genjax.train import loop, pipeline

  workdir = str(tmp_path_factory.mktemp('ldm_pipeline'))
  config = config_lib.load_config(os.path.join('configs', 'ldm_mnist.py') + ':smoke')
  pipeline.train(config, workdir, loop.train)
  return workdir, config


def test_the_pipeline_trains_three_stages_and_evaluates(pipeline_run, capsys):
  from genjax.train import loop, pipeline

  workdir, config = pipeline_run
  results = {}
  for stage in ('autoencoder', 'clip', 'ldm'):
    with open(os.path.join(workdir, stage, 'eval.json')) as f:
      results[stage] = json.load(f)
    assert results[stage]['step'] == 2
  assert results['autoencoder']['latent_shape'] == [7, 7, 4]
  assert {'psnr', 'ssim', 'latent_scale'} <= set(results['autoencoder'])
  assert {'zero_shot_digit_accuracy', 'clip_score'} <= set(results['clip'])
  ldm = results['ldm']
  assert {'prompt_accuracy', 'adherence_thickness', 'adherence_slant', 'adherence_size',
          'clip_score', 'clip_score_real', 'fid_ratio', 'precision', 'recall'} <= set(ldm)
  saved = json.load(open(os.path.join(workdir, 'ldm', 'config.json')))['ldm']
  assert saved['autoencoder_sha256'] == results['autoencoder']['export_sha256']
  assert saved['clip_workdir'] == os.path.join(workdir, 'clip')
  capsys.readouterr()
  pipeline.train(config, workdir, lambda c, w: None)  # Again: the finished stages are skipped.
  out = capsys.readouterr().out
  assert 'Stage autoencoder: finished' in out and 'Stage clip: finished' in out
  del loop


def test_generate_writes_a_grid_and_an_npz_from_a_prompt(pipeline_run, tmp_path):
  from PIL import Image
  from genjax.tools import generate

  workdir, _ = pipeline_run
  messages = []
  images = generate.run(workdir, 'a thick seven leaning sideways', str(tmp_path / 'x.npz'), num=5,
                        guidance=2.0, seed=3, log=messages.append)
  assert 'sideways' in messages[0]  # The unknown word, named once.
  with np.load(tmp_path / 'x.npz') as z:
    assert z['images'].shape == (5, 28, 28, 1) and z['images'].dtype == np.uint8
    assert list(z['prompts']) == ['a thick seven leaning sideways'] * 5
    np.testing.assert_array_equal(z['images'], images)
  again = generate.run(workdir, 'a thick seven leaning sideways', str(tmp_path / 'g.png'), num=5,
                       guidance=2.0, seed=3, log=messages.append)
  np.testing.assert_array_equal(again, images)  # The same seeds, the same images.
  assert Image.open(tmp_path / 'g.png').size[0] > 28
  with pytest.raises(captions.PromptError, match='no word of the vocabulary'):
    generate.run(workdir, 'purple elephant', str(tmp_path / 'y.png'), num=1)


def test_an_ldm_on_another_autoencoder_is_refused(pipeline_run, tmp_path):
  from genjax.metrics import weights_file
  from genjax.train import pipeline, trained

  workdir, config = pipeline_run
  path = os.path.join(workdir, 'autoencoder', 'autoencoder.npz')
  params, info = weights_file.load(path)
  original = open(path, 'rb').read(), open(path + '.json').read()
  try:  # Another autoencoder of the same shapes, in the stage's place.
    weights_file.save(jax.tree.map(lambda p: p * 1.5, params), path, info)
    with pytest.raises(config_lib.ConfigError, match='trained on the autoencoder export'):
      trained.load_trained(os.path.join(workdir, 'ldm'))
    with pytest.raises(config_lib.ConfigError, match='fresh --workdir'):
      pipeline.train(config, workdir, lambda c, w: None)
  finally:
    open(path, 'wb').write(original[0])
    open(path + '.json', 'w').write(original[1])
