"""Feature extractors for sample-quality metrics: the bundled MNIST classifier, or InceptionV3.

`mnist5k_classifier` ships inside the package (genjax/assets/): the article's
CNN trained on the mnist5k train split, exported by `genjax export-extractor`
(the study: experiments/feature_extractor/README.md). Its 128-d feature layer
plays the role of Inception's pool3 and its softmax that of Inception's
logits, so FID, IS, KID and precision/recall work offline. Its figures are
comparable with other runs of the same extractor (same hash), not with
Inception-based figures.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import jax
import numpy as np

from genjax import config as config_lib
from genjax.metrics import weights_file
from genjax.models.classifier import CNNClassifier

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'assets')
MNIST_CLASSIFIER = os.path.join(ASSETS, 'mnist5k_classifier_v1.npz')


@dataclasses.dataclass(frozen=True)
class FeatureExtractor:
  """Images -> (features, class probabilities), with the identity of the weights.

  Attributes:
    name: registry name.
    sha256: hash of the weights file, for provenance.
    info: metadata shipped with the weights (accuracy, training command, ...).
    apply: images [B, H, W, C] in [-1, 1] -> (features [B, D], probs [B, K]); jitted.
  """
  name: str
  sha256: str
  info: dict
  apply: Callable[[jax.Array], tuple[jax.Array, jax.Array]]

  def __call__(self, images: np.ndarray, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Features [N, D] and probabilities [N, K] of images [N, H, W, C], in fixed-size batches."""
    from genjax.core.batching import batched_apply  # pylint: disable=g-import-not-at-top

    return batched_apply(self.apply, np.asarray(images, np.float32), batch_size)


def to_digit_frame(images: jax.Array) -> jax.Array:
  """Brings [B, H, W, 1] images to the classifier's 28x28 frame.

  32x32 images are taken as mnist padded by 2 (data.pad_to=32) and cropped
  back; other sizes are resized bilinearly.
  """
  b, h, w, c = images.shape
  if c != 1:
    raise ValueError(f'The mnist5k classifier reads 1-channel digits; got {c} channels. For RGB '
                     "data use eval.feature_extractor='inception_v3'.")
  if (h, w) == (28, 28):
    return images
  if (h, w) == (32, 32):
    return images[:, 2:30, 2:30]
  return jax.image.resize(images, (b, 28, 28, 1), 'bilinear')


def mnist5k_classifier(path: str = MNIST_CLASSIFIER) -> FeatureExtractor:
  """The bundled classifier as a feature extractor (128-d features, 10-way softmax)."""
  if not os.path.exists(path):
    raise FileNotFoundError(
        f'{path} is missing. Rebuild it: genjax train --config=configs/classifier_mnist.py '
        f'--workdir=runs/feature_extractor, then genjax export-extractor '
        f'--workdir=runs/feature_extractor --out={path}')
  params, info = weights_file.load(path)
  model = CNNClassifier(**info.get('model', {}))

  @jax.jit
  def apply(images):
    feats, logits = model.apply({'params': params}, to_digit_frame(images),
                                method=CNNClassifier.features_and_logits)
    return feats, jax.nn.softmax(logits)

  return FeatureExtractor(name='mnist5k_classifier', sha256=info.get('sha256') or weights_file.sha256(path),
                          info=info, apply=apply)


def inception_v3(path: str | None = None) -> FeatureExtractor:
  """InceptionV3 in the FID variant (pool3 features [B, 2048], 1008-way softmax).

  The weights are pytorch-fid's pt_inception-2015-12-05, converted once by
  `genjax convert-inception` into a local file that
  `eval.feature_extractor_path` names; nothing is downloaded at run time.
  """
  from genjax.metrics import inception_weights  # pylint: disable=g-import-not-at-top

  if path is None:
    raise FileNotFoundError(
        "eval.feature_extractor='inception_v3' needs eval.feature_extractor_path, the converted "
        f'weights file. {inception_weights.CONVERT_COMMAND!r} makes it. Offline, use the bundled '
        "eval.feature_extractor='mnist5k_classifier'.")
  variables = inception_weights.load_inception_variables(path)
  apply = inception_weights.make_inception_apply(variables, input_range=(-1.0, 1.0))
  return FeatureExtractor(name='inception_v3', sha256=weights_file.sha256(path),
                          info={'weights': os.path.basename(path)},
                          apply=apply)


EXTRACTORS = {'mnist5k_classifier': mnist5k_classifier, 'inception_v3': inception_v3}


def get_extractor(name: str, path: str | None = None) -> FeatureExtractor:
  """The extractor `name`, from its default weights or from `path`."""
  if name not in EXTRACTORS:
    raise config_lib.ConfigError(
        f'Unknown feature extractor {name!r} (config.eval.feature_extractor or '
        f'gan.monitor_classifier); accepted: {sorted(EXTRACTORS)} or None.')
  return EXTRACTORS[name]() if path is None else EXTRACTORS[name](path)
