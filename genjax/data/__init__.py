"""Data: bundled offline TFDS data sets, any TFDS data set, and the input pipeline."""
from genjax.data.pipeline import (InputPipeline, Preprocess, Tiles, batch_spec, load_split,
                                   make_train_pipeline)
from genjax.data.sources import DataError, get_builder, get_source, resolve_data_dir
