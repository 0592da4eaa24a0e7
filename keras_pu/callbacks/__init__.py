"""Keras callbacks of keras-pu."""

from keras_pu.callbacks.selfreg_distillation import SelfRegDistillation

__all__ = ["SelfRegDistillation"]
