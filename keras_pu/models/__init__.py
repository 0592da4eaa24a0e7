"""Segmentation models of keras-pu.

Every architecture registers itself with `register_model` (see
`keras_pu.models.registry`); `list_models()` and `get_model_class(name)`
find them by name. `keras_pu.models.unet_builder` holds the reusable U-Net
parts (encoder, decoder, head, SelfReg feature names).
"""

from keras_pu.models.registry import ModelSpec
from keras_pu.models.registry import UnknownModelError
from keras_pu.models.registry import get_model_class
from keras_pu.models.registry import get_model_spec
from keras_pu.models.registry import list_models
from keras_pu.models.registry import register_model
from keras_pu.models.residual_unet import PUUNet
from keras_pu.models.residual_unet import ResidualUNet
from keras_pu.models.residual_unet import ResUNet
from keras_pu.models.segmentation_model import SegmentationModel

# Registers EfficientNetLite0 and the encoder U-Nets (EncoderPUUNet,
# EncoderResUNet) for load_model; use them from their module.
from keras_pu.models import efficientnet_lite  # noqa: E402,F401

__all__ = [
    "SegmentationModel",
    "ResidualUNet",
    "ResUNet",
    "PUUNet",
    "ModelSpec",
    "UnknownModelError",
    "get_model_class",
    "get_model_spec",
    "list_models",
    "register_model",
]
