"""Segmentation losses of keras-pu (keras.ops only, registered serializable)."""

from keras_pu.losses.dice import BCEDiceLoss
from keras_pu.losses.dice import DiceLoss

__all__ = ["BCEDiceLoss", "DiceLoss"]
