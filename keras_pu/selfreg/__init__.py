"""SelfReg self-distillation (Zhu et al., MICCAI 2024): SCR and IFD losses.

Switch it on for training with `keras_pu.callbacks.SelfRegDistillation`.
"""

from keras_pu.selfreg.feature_loss import SelfRegLoss
from keras_pu.selfreg.feature_loss import SelfRegState
from keras_pu.selfreg.losses import ifd_loss
from keras_pu.selfreg.losses import scr_loss

__all__ = ["scr_loss", "ifd_loss", "SelfRegLoss", "SelfRegState"]
