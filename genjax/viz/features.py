"""The article's pictures of a classifier: learned filters, feature maps, feature space."""
from __future__ import annotations

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def plot_filters(kernel: np.ndarray, path: str, title: str = 'First-layer filters') -> str:
  """Draws every 3x3 (or kxk) filter of a first conv layer.

  Args:
    kernel: [kh, kw, C_in, C_out]; input channels are averaged for display.
    path: PNG path.
  """
  k = np.asarray(kernel).mean(axis=2)  # [kh, kw, C_out]
  n = k.shape[-1]
  ncol = int(np.ceil(np.sqrt(n)))
  nrow = int(np.ceil(n / ncol))
  fig, axes = plt.subplots(nrow, ncol, figsize=(1.1 * ncol, 1.1 * nrow + 0.4))
  lim = np.abs(k).max()
  for i, ax in enumerate(np.ravel(axes)):
    ax.axis('off')
    if i < n:
      ax.imshow(k[..., i], cmap='RdBu_r', vmin=-lim, vmax=lim)
  fig.suptitle(f'{title} (red +, blue -)')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def plot_feature_maps(image: np.ndarray, maps: list[np.ndarray], path: str,
                      per_layer: int = 8) -> str:
  """One digit and its feature maps, one row per conv layer.

  Args:
    image: [H, W, C] in [-1, 1].
    maps: per layer, [h, w, c] activations of that image.
    path: PNG path.
    per_layer: how many channels to show per layer (the most active ones).
  """
  fig, axes = plt.subplots(len(maps), per_layer + 1,
                           figsize=(1.2 * (per_layer + 1), 1.3 * len(maps) + 0.4))
  axes = np.atleast_2d(axes)
  for row, fmap in enumerate(maps):
    ax = axes[row, 0]
    ax.imshow(np.asarray(image)[..., 0] if image.shape[-1] == 1 else (image + 1) / 2, cmap='gray')
    ax.set_title('input' if row == 0 else '', fontsize=8)
    ax.set_ylabel(f'layer {row + 1}\n{fmap.shape[0]}x{fmap.shape[1]}', fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    order = np.argsort(fmap.reshape(-1, fmap.shape[-1]).mean(0))[::-1][:per_layer]
    for j, ch in enumerate(order):
      ax = axes[row, j + 1]
      ax.imshow(fmap[..., ch], cmap='viridis')
      ax.set_title(f'ch {ch}', fontsize=7)
      ax.axis('off')
  fig.suptitle('Feature maps, layer by layer (most active channels)')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def embed_2d(features: np.ndarray, method: str = 'pca', seed: int = 0) -> np.ndarray:
  """Projects features [N, D] to [N, 2] by PCA or t-SNE (scikit-learn)."""
  from sklearn.decomposition import PCA  # pylint: disable=g-import-not-at-top
  from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top

  if method == 'pca':
    return PCA(2, random_state=seed).fit_transform(features)
  if method == 'tsne':
    return TSNE(2, init='pca', random_state=seed, perplexity=30).fit_transform(features)
  raise ValueError(f'Unknown embedding {method!r}; accepted: pca, tsne.')


def plot_feature_space(features: np.ndarray, labels: np.ndarray, path: str,
                       methods: tuple[str, ...] = ('pca', 'tsne')) -> str:
  """2-D maps of the feature space, points coloured by label, one panel per method.

  Args:
    features: [N, D].
    labels: [N] ints.
    path: PNG path.
  """
  fig, axes = plt.subplots(1, len(methods), figsize=(5.5 * len(methods), 5), layout='constrained')
  for ax, method in zip(np.atleast_1d(axes), methods):
    xy = embed_2d(np.asarray(features, np.float64), method)
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap='tab10', s=6, vmin=-0.5, vmax=9.5)
    ax.set_title(f'Feature space ({method.upper()}), {len(labels)} test digits')
    ax.set_xticks([])
    ax.set_yticks([])
  fig.colorbar(sc, ax=axes, ticks=range(10), label='label')
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
