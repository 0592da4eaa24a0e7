"""Keras callbacks of keras-pu. SelfRegDistillation lives with the rest of
SelfReg in `keras_pu.selfreg`; it is offered here too, where Keras users
look for callbacks."""

from keras_pu.selfreg.distillation import SelfRegDistillation

__all__ = ["SelfRegDistillation"]
