"""Soft Dice and BCE + soft Dice losses for binary (or multi-label) logits.

Both losses are per image: each image of the batch gets one loss value (the
mean BCE over its pixels, its own soft Dice), so `sample_weight` weighs
whole images and the batch reduction averages images. Everything is
computed in float32, whatever the dtype policy of the model.
"""

import keras
from keras import ops


def _prepare(y_true, y_pred):
    """Casts to float32 and checks that the two tensors have one shape."""
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, "float32")
    if len(y_true.shape) == len(y_pred.shape) - 1 and y_pred.shape[-1] == 1:
        # Masks given as (batch, height, width) for a one-logit model.
        y_true = ops.expand_dims(y_true, -1)
    if len(y_true.shape) != len(y_pred.shape):
        raise ValueError(
            "Segmentation loss: y_true and y_pred must have the same rank "
            f"(batch, height, width, channels). Received y_true.shape="
            f"{tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}."
        )
    for t, p in zip(y_true.shape[1:], y_pred.shape[1:]):
        if t is not None and p is not None and t != p:
            raise ValueError(
                "Segmentation loss: the mask and the logits differ in shape: "
                f"y_true.shape={tuple(y_true.shape)}, y_pred.shape="
                f"{tuple(y_pred.shape)}. Resize the masks to the model's "
                "output size (and use channels_last masks with a "
                "channels_last model)."
            )
    return y_true, y_pred


def _image_axes(x):
    return tuple(range(1, len(x.shape)))


def _check_smooth(cls_name, smooth):
    if not isinstance(smooth, (int, float)) or smooth < 0:
        raise ValueError(
            f"{cls_name}: `smooth` must be a number >= 0. "
            f"Received: smooth={smooth!r}"
        )


def soft_dice_per_image(y_true, probabilities, smooth):
    """1 - soft Dice of each image, float32 tensor of shape (batch,)."""
    axes = _image_axes(probabilities)
    intersection = ops.sum(y_true * probabilities, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(probabilities, axis=axes)
    return 1.0 - (2.0 * intersection + smooth) / (total + smooth)


def bce_per_image(y_true, y_pred, from_logits):
    """Mean binary cross-entropy over each image's pixels, shape (batch,)."""
    axes = _image_axes(y_pred)
    if from_logits:
        # max(x, 0) - x * y + log(1 + exp(-|x|)): exact, and finite for any
        # logit (no exp overflow, no log(0)).
        pixel = (
            ops.relu(y_pred)
            - y_pred * y_true
            + ops.log1p(ops.exp(-ops.abs(y_pred)))
        )
    else:
        eps = keras.config.epsilon()
        p = ops.clip(y_pred, eps, 1.0 - eps)
        pixel = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    return ops.mean(pixel, axis=axes)


@keras.saving.register_keras_serializable(package="keras_pu")
class DiceLoss(keras.losses.Loss):
    """Soft Dice loss, one value per image: `1 - (2 sum(p y) + s) / (sum(p)
    + sum(y) + s)` over each image's pixels and channels.

    `p` is `sigmoid(y_pred)` (binary / multi-label logits, the keras-pu
    convention: one logit per pixel and class). With `smooth > 0` an image
    whose mask is empty has loss `1 - s / (sum(p) + s)`: predicting nothing
    on it gives 0, so lesion-free images (BUSI "normal") are learnt too.
    Computed in float32 under any dtype policy.

    Args:
        smooth: additive smoothing `s` in numerator and denominator
            (>= 0). Defaults to `1.0`.
        from_logits: `True` if `y_pred` are logits (keras-pu models output
            logits), `False` for probabilities. Defaults to `True`.
        reduction: Keras loss reduction over the batch. Defaults to
            `"sum_over_batch_size"` (mean over images).
        name: loss name. Defaults to `"dice_loss"`.
        dtype: dtype of the loss computation. Defaults to `"float32"`.

    Example:

    ```python
    import numpy as np
    import keras_pu

    loss = keras_pu.losses.DiceLoss()
    y_true = np.zeros((2, 32, 32, 1), "float32")
    logits = np.full((2, 32, 32, 1), -5.0, "float32")
    value = loss(y_true, logits)
    ```
    """

    def __init__(
        self,
        smooth=1.0,
        from_logits=True,
        reduction="sum_over_batch_size",
        name="dice_loss",
        dtype="float32",
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _check_smooth(type(self).__name__, smooth)
        self.smooth = float(smooth)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_true, y_pred = _prepare(y_true, y_pred)
        p = ops.sigmoid(y_pred) if self.from_logits else y_pred
        return soft_dice_per_image(y_true, p, self.smooth)

    def get_config(self):
        config = super().get_config()
        config.update(
            smooth=self.smooth,
            from_logits=self.from_logits,
            dtype=self._dtype_policy.name,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_pu")
class BCEDiceLoss(keras.losses.Loss):
    """Weighted sum of binary cross-entropy and soft Dice, per image:
    `bce_weight * mean_pixels(BCE) + dice_weight * (1 - soft Dice)`.

    The usual loss for binary lesion segmentation: BCE gives every pixel a
    well-scaled gradient, Dice counters the foreground/background imbalance.
    BCE from logits uses the exact, overflow-free form `max(x, 0) - x y +
    log(1 + exp(-|x|))`; everything is float32 under any dtype policy.

    Args:
        bce_weight: weight of the BCE term (>= 0). Defaults to `1.0`.
        dice_weight: weight of the soft Dice term (>= 0). Defaults to `1.0`.
        smooth: Dice smoothing (see `DiceLoss`). Defaults to `1.0`.
        from_logits: `True` if `y_pred` are logits. Defaults to `True`.
        reduction: Keras loss reduction over the batch. Defaults to
            `"sum_over_batch_size"` (mean over images).
        name: loss name. Defaults to `"bce_dice_loss"`.
        dtype: dtype of the loss computation. Defaults to `"float32"`.

    Example:

    ```python
    import keras_pu

    model = keras_pu.models.PUUNet(input_shape=(128, 128, 3), widths=8)
    model.compile(
        optimizer="adamw",
        loss=keras_pu.losses.BCEDiceLoss(bce_weight=1.0, dice_weight=1.0),
        metrics=[keras_pu.metrics.Dice()],
    )
    ```
    """

    def __init__(
        self,
        bce_weight=1.0,
        dice_weight=1.0,
        smooth=1.0,
        from_logits=True,
        reduction="sum_over_batch_size",
        name="bce_dice_loss",
        dtype="float32",
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        cls_name = type(self).__name__
        for arg, value in (("bce_weight", bce_weight),
                           ("dice_weight", dice_weight)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(
                    f"{cls_name}: `{arg}` must be a number >= 0. "
                    f"Received: {arg}={value!r}"
                )
        if bce_weight == 0 and dice_weight == 0:
            raise ValueError(
                f"{cls_name}: `bce_weight` and `dice_weight` are both 0, so "
                "the loss would be constant. Give at least one a positive "
                "weight."
            )
        _check_smooth(cls_name, smooth)
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)
        self.smooth = float(smooth)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_true, y_pred = _prepare(y_true, y_pred)
        loss = 0.0
        if self.bce_weight:
            loss = loss + self.bce_weight * bce_per_image(
                y_true, y_pred, self.from_logits
            )
        if self.dice_weight:
            p = ops.sigmoid(y_pred) if self.from_logits else y_pred
            loss = loss + self.dice_weight * soft_dice_per_image(
                y_true, p, self.smooth
            )
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(
            bce_weight=self.bce_weight,
            dice_weight=self.dice_weight,
            smooth=self.smooth,
            from_logits=self.from_logits,
            dtype=self._dtype_policy.name,
        )
        return config
