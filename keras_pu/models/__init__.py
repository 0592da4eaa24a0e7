"""Segmentation models of keras-pu."""

from keras_pu.models.residual_unet import PUUNet
from keras_pu.models.residual_unet import ResidualUNet
from keras_pu.models.residual_unet import ResUNet
from keras_pu.models.segmentation_model import SegmentationModel

# Registers EfficientNetLite0 and the encoder U-Nets (EncoderPUUNet,
# EncoderResUNet) for load_model; use them from their module.
from keras_pu.models import efficientnet_lite  # noqa: E402,F401

__all__ = ["SegmentationModel", "ResidualUNet", "ResUNet", "PUUNet"]
