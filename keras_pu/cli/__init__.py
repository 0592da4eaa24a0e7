"""The `keras-pu` command line. See `keras-pu --help`."""

from keras_pu.cli.main import main

__all__ = ["main"]
