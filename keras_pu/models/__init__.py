"""Segmentation models of keras-pu."""

from keras_pu.models.residual_unet import PUUNet
from keras_pu.models.residual_unet import ResidualUNet
from keras_pu.models.residual_unet import ResUNet
from keras_pu.models.segmentation_model import SegmentationModel

__all__ = ["SegmentationModel", "ResidualUNet", "ResUNet", "PUUNet"]
