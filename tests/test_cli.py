"""The command line as users run it: help, refused keys, and the verbs on trained runs."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from genjax import main as cli
from genjax.train import loop
from tests.conftest import REPO
from tests import subprocesses

pytestmark = pytest.mark.xdist_group('cli')

VERBS = ('train', 'eval', 'sample', 'demo', 'convert-inception', 'convert-vgg',
         'convert-diffusers', 'export-extractor', 'stylize', 'inpaint', 'generate', 'upscale')


def _genjax(*args, timeout=300):
  env = subprocesses.env(1)
  done = subprocess.run([sys.executable, '-m', 'genjax.main', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)
  return done


def _assert_one_line_error(done, *parts):
  """Exit 2, one line on stderr naming every part, no traceback."""
  assert done.returncode == 2, (done.returncode, done.stderr)
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('genjax: '), done.stderr
  assert 'Traceback' not in done.stderr
  for part in parts:
    assert part in lines[0], (part, lines[0])
  return lines[0]


@pytest.mark.parametrize('args', [('--help',), (), ('help',), ('-h',)])
def test_help_lists_every_verb_on_one_line(args):
  done = _genjax(*args, timeout=60)
  assert done.returncode == 0, done.stderr
  lines = done.stdout.splitlines()
  for verb in VERBS:
    about = [line for line in lines if line.split()[:1] == [verb]]
    assert len(about) == 1, (verb, done.stdout)
    assert len(about[0].split()) > 3, about  # The verb and what it does, on that line.
  assert set(cli.VERBS) == set(VERBS)


def test_verb_help_shows_its_flags_and_an_example():
  done = _genjax('sample', '--help', timeout=60)
  assert done.returncode == 0, done.stderr
  for flag in ('--workdir', '--out', '--num', '--labels', '--seed', '--config'):
    assert f'  {flag} ' in done.stdout, (flag, done.stdout)
  assert '--input' not in done.stdout and '--no_check_hash' not in done.stdout  # Other verbs'.
  assert 'examples:' in done.stdout and '\n  genjax sample --workdir=' in done.stdout
  assert _genjax('help', 'sample', timeout=60).stdout == done.stdout


def test_convert_inception_help():
  done = _genjax('convert-inception', '--help', timeout=60)
  assert done.returncode == 0, done.stderr
  for flag in ('--input', '--output', '--no_check_hash'):
    assert f'  {flag} ' in done.stdout, (flag, done.stdout)
  assert '--workdir' not in done.stdout
  assert 'genjax convert-inception --input=' in done.stdout


def test_convert_vgg_help_and_a_missing_input(tmp_path):
  done = _genjax('convert-vgg', '--help', timeout=60)
  assert done.returncode == 0, done.stderr
  for flag in ('--input', '--output', '--arch'):
    assert f'  {flag} ' in done.stdout, (flag, done.stdout)
  assert '--workdir' not in done.stdout and '--no_check_hash' not in done.stdout
  assert 'genjax convert-vgg --input=' in done.stdout
  done = _genjax('convert-vgg', f'--input={tmp_path}/none.h5', f'--output={tmp_path}/o.npz',
                 timeout=60)
  _assert_one_line_error(done, 'FileNotFoundError', 'none.h5')
  assert not os.path.exists(tmp_path / 'o.npz')
  done = _genjax('convert-vgg', f'--input={tmp_path}/none.h5', f'--output={tmp_path}/o.npz',
                 '--arch=vgg11', timeout=60)
  _assert_one_line_error(done, 'vgg11')


def test_convert_vgg_converts_a_torch_state_dict_of_the_arch_asked_for(tmp_path):
  torch = pytest.importorskip('torch')
  from genjax.models import vgg
  from genjax.tools import convert_vgg
  params = vgg.random_params(0, 'vgg16')['params']
  state = {}
  for name, index in convert_vgg.torch_conv_indices('vgg16').items():
    state[f'features.{index}.weight'] = torch.from_numpy(
        params[name]['kernel'].transpose(3, 2, 0, 1).copy())
    state[f'features.{index}.bias'] = torch.from_numpy(params[name]['bias'])
  torch.save(state, tmp_path / 'w.pth')
  out = str(tmp_path / 'w16.npz')
  done = _genjax('convert-vgg', f'--input={tmp_path}/w.pth', f'--output={out}', '--arch=vgg16',
                 timeout=120)
  assert done.returncode == 0, done.stderr
  assert 'VGG16, torch preprocessing' in done.stdout
  loaded, arch, mode = vgg.load_weights(out)
  assert (arch, mode) == ('vgg16', 'torch')
  np.testing.assert_array_equal(loaded['params']['block5_conv3']['kernel'],
                                params['block5_conv3']['kernel'])
  # The default arch (vgg19) refuses VGG16 weights: one line naming what is missing.
  done = _genjax('convert-vgg', f'--input={tmp_path}/w.pth', f'--output={tmp_path}/w19.npz',
                 timeout=120)
  _assert_one_line_error(done, 'WeightsError', 'VGG19')


def test_a_field_of_another_family_is_refused_naming_its_family(tmp_path):
  done = _genjax('train', '--config=configs/vae_mnist.py:smoke', f'--workdir={tmp_path}',
                 '--config.stylegan.w_dim=64', timeout=120)
  _assert_one_line_error(done, 'ConfigError', 'config.stylegan', "'gan' family")
  assert not os.listdir(tmp_path)  # Refused before any work.


def test_a_key_of_the_old_layout_names_its_new_place(tmp_path):
  done = _genjax('train', '--config=configs/dcgan_mnist.py:smoke', f'--workdir={tmp_path}',
                 '--config.method.gan_loss=hinge', timeout=120)
  _assert_one_line_error(done, 'ConfigError', 'config.gan.loss')


def test_usage_errors_are_one_line(tmp_path):
  _assert_one_line_error(_genjax('trian', timeout=60), "unknown verb 'trian'", "'train'")
  _assert_one_line_error(_genjax('train', f'--workdir={tmp_path}', timeout=60), '--config')
  # A verb refuses the flags it does not read, rather than ignoring them.
  done = _genjax('convert-inception', '--input=a.pth', '--output=b.npz', '--num=3', timeout=60)
  _assert_one_line_error(done, 'convert-inception does not read --num')
  done = _genjax('convert-inception', f'--input={tmp_path}/none.pth', '--output=b.npz', timeout=60)
  _assert_one_line_error(done, 'FileNotFoundError', 'none.pth')


def test_labels_are_refused_by_an_unconditional_method():
  with pytest.raises(cli.app.UsageError, match='only for label-conditional'):
    cli.parse_labels('3', 4, num_classes=0)
  assert cli.parse_labels(None, 4, num_classes=0) is None
  np.testing.assert_array_equal(cli.parse_labels('1,2', 5, num_classes=3), [1, 2, 1, 2, 1])
  with pytest.raises(cli.app.UsageError, match=r'outside 0\.\.2'):
    cli.parse_labels('3', 4, num_classes=3)


@pytest.fixture(scope='session')  # Its group's one worker builds it once.
def cvae_run(tmp_path_factory):
  """A conditional VAE trained 2 steps: a conditional generator that samples fast."""
  from genjax.config import load_config
  workdir = str(tmp_path_factory.mktemp('cvae'))
  config = load_config(os.path.join(REPO, 'configs', 'cvae_mnist.py:smoke'))
  loop.train(config, workdir)
  return workdir


def test_sample_writes_uint8_images_and_labels_independent_of_the_batch_size(cvae_run, tmp_path):
  out_a, out_b, out_c = (str(tmp_path / f'{n}.npz') for n in 'abc')
  a = _genjax('sample', f'--workdir={cvae_run}', '--num=12', '--labels=3', f'--out={out_a}')
  assert a.returncode == 0, a.stderr
  # The same run with another sampling batch: per-sample seeds give the same images.
  b = _genjax('sample', '--config=configs/cvae_mnist.py:smoke', '--config.eval.sample_batch_size=5',
              f'--workdir={cvae_run}', '--num=12', '--labels=3', f'--out={out_b}')
  assert b.returncode == 0, b.stderr
  ra, rb = np.load(out_a), np.load(out_b)
  assert ra['images'].dtype == np.uint8 and ra['images'].shape == (12, 28, 28, 1)
  np.testing.assert_array_equal(ra['labels'], np.full(12, 3))
  np.testing.assert_array_equal(ra['images'], rb['images'])
  # No labels given: balanced classes; bad labels: one line, exit 2.
  c = _genjax('sample', f'--workdir={cvae_run}', '--num=20', f'--out={out_c}')
  assert c.returncode == 0, c.stderr
  np.testing.assert_array_equal(np.load(out_c)['labels'], np.arange(20) % 10)
  bad = _genjax('sample', f'--workdir={cvae_run}', '--num=4', '--labels=12', f'--out={out_c}')
  _assert_one_line_error(bad, 'outside 0..9')


def test_eval_writes_metrics_with_their_provenance(cvae_run):
  done = _genjax('eval', f'--workdir={cvae_run}')
  assert done.returncode == 0, done.stderr
  result = json.load(open(os.path.join(cvae_run, 'eval.json')))
  for key in ('fid', 'fid_floor', 'is', 'is_real', 'kid', 'kid_floor', 'precision', 'recall',
              'precision_floor', 'recall_floor', 'label_accuracy', 'num_samples', 'sample_seed',
              'feature_extractor', 'feature_extractor_sha256', 'split', 'reference_split',
              'floor_split', 'step'):
    assert key in result, key
  assert result['feature_extractor_sha256'].startswith('fb547d0e')


def test_export_extractor_writes_a_loadable_extractor(cvae_run, tmp_path):
  from genjax.config import load_config
  from genjax.metrics import extractors
  workdir = str(tmp_path / 'clf')
  loop.train(load_config(os.path.join(REPO, 'configs', 'classifier_mnist.py:smoke')), workdir)
  out = str(tmp_path / 'extractor.npz')
  done = _genjax('export-extractor', f'--workdir={workdir}', f'--out={out}')
  assert done.returncode == 0, done.stderr
  info = json.load(open(out + '.json'))
  assert info['step'] == 2 and info['model'] == {'num_classes': 10, 'channels': [32, 64, 128],
                                                  'feature_dim': 128}
  assert 0.0 <= info['test_accuracy'] <= 1.0 and json.loads(done.stdout)['sha256'] == info['sha256']
  features, probs = extractors.mnist5k_classifier(out)(np.zeros((3, 28, 28, 1), np.float32))
  assert features.shape == (3, 128) and probs.shape == (3, 10)
  # Another family's run is refused.
  done = _genjax('export-extractor', f'--workdir={cvae_run}', f'--out={tmp_path}/x.npz')
  _assert_one_line_error(done, 'ConfigError', "'vae' run")


def test_a_run_written_before_a_config_key_existed_still_loads(tmp_path):
  from genjax.train.trained import workdir_config
  saved = {'seed': 3, 'model': {'name': 'stylegan', 'disc_channels': [8, 8], 'w_dim': 64},
           'method': {'name': 'gan', 'r1_gamma': 0.5}}
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  config = workdir_config(str(tmp_path))
  assert config.seed == 3 and config.gan.r1_gamma == 0.5  # Saved values win, in their new place,
  assert config.gan.arch == 'stylegan' and list(config.gan.disc_channels) == [8, 8]
  assert config.stylegan.w_dim == 64
  assert config.stylegan.mbstd_group == 4 and config.gan.diff_augment == ''  # later keys default.
  with pytest.raises(AttributeError):
    config.gan.not_a_key  # pylint: disable=pointless-statement
