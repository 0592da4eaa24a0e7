"""The callback that switches SelfReg on for the model being trained."""

import warnings

import keras
import numpy as np

from keras_pu.models.segmentation_model import SegmentationModel
from keras_pu.selfreg import defaults
from keras_pu.selfreg.feature_loss import SelfRegLoss


class SelfRegDistillation(keras.callbacks.Callback):
    """Trains with SelfReg self-distillation: `fit(..., callbacks=[this])`.

    At the start of `fit()` it attaches SelfReg's auxiliary loss to the model
    (a `keras_pu.models.SegmentationModel`: every keras-pu U-Net is one) and
    detaches it at the end. Meanwhile each training step adds

        lambda_scr * L_SCR + lambda_ifd * L_IFD

    to the compiled loss, and the logs and `History` gain `scr_loss` and
    `ifd_loss` (the unweighted epoch means). Validation, `predict()` and the
    saved model are untouched. It works with a model that is already
    compiled and with `jit_compile=True` on every backend.

    Defaults follow the paper's best setting (`keras_pu.selfreg.defaults`).

    Layer roles: by default they come from `model.feature_layers` (the
    encoder and decoder block outputs of a keras-pu U-Net, and its last
    decoder feature as the teacher). For any other functional model, wrap it
    as `keras_pu.models.SegmentationModel(model.inputs, model.outputs)` and
    name the layers here.

    Args:
        lambda_scr: weight of semantic consistency regularisation. Defaults
            to `defaults.LAMBDA_SCR` (0.015).
        lambda_ifd: weight of internal feature distillation. Defaults to
            `defaults.LAMBDA_IFD` (0.015).
        warmup_epochs: number of epochs over which both weights ramp up
            linearly from 0 (epoch 0 trains on the segmentation loss only).
            Defaults to `defaults.WARMUP_EPOCHS` (0: full weights from the
            start).
        schedule: optional function `epoch -> factor` in `[0, inf)`
            multiplying both weights; replaces the linear warm-up.
        encoder_layers: names of encoder block-output layers (students).
        decoder_layers: names of decoder block-output layers, except the
            last decoder feature (students).
        teacher_layer: name of the last decoder feature before the head.
        seed: seed of the random channel pairing. Defaults to `None`.
        initial_state: `state()` of an interrupted run being resumed (the
            random state of the channel pairing), or `None`: a resumed run
            then draws the pairings the uninterrupted run would have.

    Example:

    ```python
    import keras
    import keras_pu

    model = keras_pu.models.PUUNet(input_shape=(256, 256, 3))
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    history = model.fit(
        images, masks, epochs=50,
        callbacks=[keras_pu.selfreg.SelfRegDistillation()],
    )
    history.history["scr_loss"], history.history["ifd_loss"]
    ```
    """

    def __init__(
        self,
        lambda_scr=defaults.LAMBDA_SCR,
        lambda_ifd=defaults.LAMBDA_IFD,
        warmup_epochs=defaults.WARMUP_EPOCHS,
        schedule=None,
        encoder_layers=None,
        decoder_layers=None,
        teacher_layer=None,
        seed=None,
        initial_state=None,
    ):
        super().__init__()
        for name, value in (("lambda_scr", lambda_scr),
                            ("lambda_ifd", lambda_ifd)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(
                    f"`{name}` must be a number >= 0; received {value!r}."
                )
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(
                "`warmup_epochs` must be an integer >= 0; received "
                f"{warmup_epochs!r}."
            )
        if schedule is not None and not callable(schedule):
            raise ValueError("`schedule` must be a function epoch -> factor.")
        self.lambda_scr = float(lambda_scr)
        self.lambda_ifd = float(lambda_ifd)
        self.warmup_epochs = warmup_epochs
        self.schedule = schedule
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.teacher_layer = teacher_layer
        self.seed = seed
        self.initial_state = initial_state
        self.selfreg_loss = None

    def weight_factor(self, epoch):
        """The factor applied to both lambdas during `epoch` (0-based)."""
        if self.schedule is not None:
            factor = float(self.schedule(epoch))
            if not factor >= 0:
                raise ValueError(
                    f"`schedule({epoch})` returned {factor!r}; it must be "
                    ">= 0."
                )
            return factor
        if self.warmup_epochs == 0:
            return 1.0
        return min(1.0, epoch / self.warmup_epochs)

    def _roles(self, model):
        defaults = model.feature_layers or {}
        roles = {
            "encoder": self.encoder_layers,
            "decoder": self.decoder_layers,
            "teacher": self.teacher_layer,
        }
        for role, value in roles.items():
            if value is None:
                if role not in defaults:
                    raise ValueError(
                        f"SelfRegDistillation: model '{model.name}' declares "
                        "no default SelfReg layers; pass `encoder_layers`, "
                        "`decoder_layers` and `teacher_layer`."
                    )
                roles[role] = defaults[role]
        return roles

    def on_train_begin(self, logs=None):
        model = self.model
        if not isinstance(model, SegmentationModel):
            raise TypeError(
                "SelfRegDistillation needs a keras_pu.models."
                f"SegmentationModel; got {type(model).__name__}. Wrap a "
                "functional model as keras_pu.models.SegmentationModel("
                "model.inputs, model.outputs) (it shares the layers and "
                "weights) and name its layers in SelfRegDistillation(...)."
            )
        if model.feature_loss is not None:
            # Left over by a fit() that raised before on_train_end.
            warnings.warn(
                f"Model '{model.name}' still had a feature loss attached; "
                "replacing it.",
                stacklevel=2,
            )
            model.detach_feature_loss()
        roles = self._roles(model)
        self.selfreg_loss = SelfRegLoss(
            encoder_layers=roles["encoder"],
            decoder_layers=roles["decoder"],
            teacher_layer=roles["teacher"],
            lambda_scr=self.lambda_scr,
            lambda_ifd=self.lambda_ifd,
            seed=self.seed,
            data_format=_feature_layout(model),
        )
        model.attach_feature_loss(self.selfreg_loss)
        pairing = (self.initial_state or {}).get("pairing_state")
        if pairing is not None:
            variable = self.selfreg_loss.state.seed_generator.state
            variable.assign(np.asarray(pairing, dtype=variable.dtype))

    def state(self):
        """The state a resumed run needs (JSON): the random state of the
        channel pairing. `None` before training starts."""
        if self.selfreg_loss is None:
            return None
        value = self.selfreg_loss.state.seed_generator.state.value
        return {"pairing_state": [
            int(v) for v in np.asarray(keras.ops.convert_to_numpy(value))
            .reshape(-1)]}

    def on_epoch_begin(self, epoch, logs=None):
        factor = self.weight_factor(epoch)
        self.selfreg_loss.set_weights(
            self.lambda_scr * factor, self.lambda_ifd * factor
        )

    def on_train_end(self, logs=None):
        if self.model.feature_loss is self.selfreg_loss:
            self.model.detach_feature_loss()


def _feature_layout(model):
    """The layout of the model's intermediate features: keras-pu U-Nets may
    compute in another layout than their input's (`compute_data_format`,
    channels-first under PyTorch for speed); other models use their
    `data_format` or Keras's image data format."""
    for attribute in ("compute_data_format", "data_format"):
        layout = getattr(model, attribute, None)
        if layout in ("channels_last", "channels_first"):
            return layout
    return keras.config.image_data_format()
