"""Tools the command line runs besides training: one module per `genjax` verb.

The top layer, beside `genjax/main.py`: a tool may use any part of genjax, and
nothing in genjax imports a tool.

- `convert_inception`: `genjax convert-inception`, pytorch-fid's InceptionV3
  weights (.pth) to the .npz that `genjax.metrics.inception_weights` loads.
- `export_extractor`: `genjax export-extractor`, a trained mnist5k classifier
  run to the bundled feature extractor (genjax/assets/mnist5k_classifier_v1.npz).
"""
