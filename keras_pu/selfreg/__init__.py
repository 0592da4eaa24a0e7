"""SelfReg self-distillation (Zhu et al., MICCAI 2024), all in one package:
the SCR and IFD losses (`losses`), the feature loss a model carries while
training (`feature_loss`), the callback that attaches it
(`distillation.SelfRegDistillation`, also `keras_pu.callbacks`) and its
default settings (`defaults`).

Switch it on for training with `keras_pu.selfreg.SelfRegDistillation`.
"""

from keras_pu.selfreg import defaults
from keras_pu.selfreg.distillation import SelfRegDistillation
from keras_pu.selfreg.feature_loss import SelfRegLoss
from keras_pu.selfreg.feature_loss import SelfRegState
from keras_pu.selfreg.losses import ifd_loss
from keras_pu.selfreg.losses import scr_loss

__all__ = [
    "scr_loss",
    "ifd_loss",
    "SelfRegLoss",
    "SelfRegState",
    "SelfRegDistillation",
    "defaults",
]
