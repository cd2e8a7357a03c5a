"""Tools the command line runs besides training: one module per `genjax` verb.

The top layer, beside `genjax/main.py`: a tool may use any part of genjax, and
nothing in genjax imports a tool.

- `commands`: the work of every verb (`genjax/main.py` declares them) and their flags.
- `convert_inception`: `genjax convert-inception`, pytorch-fid's InceptionV3
  weights (.pth) to the .npz that `genjax.metrics.inception_weights` loads.
- `convert_vgg`: `genjax convert-vgg`, Keras (.h5) or torchvision (.pth) VGG19/VGG16
  weights to the .npz that `genjax.models.vgg` loads (`genjax stylize --weights=`).
- `export_extractor`: `genjax export-extractor`, a trained mnist5k classifier
  run to the bundled feature extractor (genjax/assets/mnist5k_classifier_v1.npz).
"""
