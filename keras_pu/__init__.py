"""keras-pu: stable product-unit U-Nets and a model zoo for medical image
segmentation, on TensorFlow, PyTorch and JAX (Keras 3)."""

from keras_pu import callbacks
from keras_pu import data
from keras_pu import layers
from keras_pu import losses
from keras_pu import metrics
from keras_pu import models
from keras_pu import selfreg
from keras_pu import zoo
from keras_pu.version import __version__

__all__ = [
    "callbacks",
    "data",
    "layers",
    "losses",
    "metrics",
    "models",
    "selfreg",
    "zoo",
    "__version__",
]
