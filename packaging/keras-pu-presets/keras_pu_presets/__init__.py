"""Pretrained weights of the keras-pu presets: one folder per preset
(`<preset>/config.json`, `model.weights.h5`, ...), built from keras-pu's
zoo/.

Nothing to import: `keras_pu.zoo.load("<preset>")` locates this package
(without importing it) and verifies each file against keras-pu's registry.
"""

import pathlib

PRESETS_DIR = pathlib.Path(__file__).resolve().parent
