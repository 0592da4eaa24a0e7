"""BCEDiceLoss and DiceLoss against hand-computed values, on every backend."""

import math

import keras
import numpy as np
import pytest

from keras_pu.losses import BCEDiceLoss
from keras_pu.losses import DiceLoss
from tests._backend_utils import to_numpy


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _bce(x, y):
    p = _sigmoid(x)
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


# One 2x2 image: two foreground pixels, logits chosen by hand.
Y = np.array([[1.0, 0.0], [1.0, 0.0]], "float32").reshape(1, 2, 2, 1)
X = np.array([[2.0, -1.0], [0.0, 3.0]], "float32").reshape(1, 2, 2, 1)


def _hand_dice_loss(smooth):
    p = [_sigmoid(v) for v in (2.0, -1.0, 0.0, 3.0)]
    y = [1, 0, 1, 0]
    inter = sum(pi * yi for pi, yi in zip(p, y))
    return 1 - (2 * inter + smooth) / (sum(p) + sum(y) + smooth)


def test_dice_loss_matches_hand_computation():
    for smooth in (0.0, 1.0):
        value = float(to_numpy(DiceLoss(smooth=smooth)(Y, X)))
        assert value == pytest.approx(_hand_dice_loss(smooth), abs=1e-6)


def test_bce_dice_loss_matches_hand_computation():
    bce = np.mean([_bce(x, y) for x, y in zip((2.0, -1.0, 0.0, 3.0),
                                             (1, 0, 1, 0))])
    dice = _hand_dice_loss(1.0)
    loss = BCEDiceLoss(bce_weight=0.3, dice_weight=2.0, smooth=1.0)
    assert float(to_numpy(loss(Y, X))) == pytest.approx(
        0.3 * bce + 2.0 * dice, abs=1e-6
    )
    bce_only = BCEDiceLoss(bce_weight=1.0, dice_weight=0.0)
    assert float(to_numpy(bce_only(Y, X))) == pytest.approx(bce, abs=1e-6)
    # Same as Keras's own BCE on logits (mean over pixels).
    keras_bce = keras.losses.BinaryCrossentropy(from_logits=True)
    assert float(to_numpy(bce_only(Y, X))) == pytest.approx(
        float(to_numpy(keras_bce(Y, X))), abs=1e-6
    )


def test_losses_are_per_image_and_take_image_weights():
    y = np.concatenate([Y, 1 - Y])
    x = np.concatenate([X, -X])
    loss = BCEDiceLoss()
    per_image = to_numpy(BCEDiceLoss(reduction=None)(y, x))
    assert per_image.shape == (2,)
    assert float(to_numpy(loss(y, x))) == pytest.approx(per_image.mean(), 1e-6)
    weighted = float(to_numpy(loss(y, x, sample_weight=np.array([1.0, 0.0]))))
    # sum_over_batch_size: weighted sum divided by the batch size.
    assert weighted == pytest.approx(per_image[0] / 2, abs=1e-6)
    assert float(to_numpy(BCEDiceLoss(reduction=None)(Y, X))[0]) == (
        pytest.approx(per_image[0], abs=1e-6)
    )


def test_empty_mask_and_perfect_prediction():
    empty = np.zeros((1, 4, 4, 1), "float32")
    # Nothing predicted on a lesion-free image: Dice loss 1 - s / (0 + s) = 0.
    assert float(to_numpy(DiceLoss()(empty, np.full_like(empty, -30.0)))) == (
        pytest.approx(0.0, abs=1e-6)
    )
    # Everything predicted on it: 1 - 1 / (16 + 1).
    assert float(to_numpy(DiceLoss()(empty, np.full_like(empty, 30.0)))) == (
        pytest.approx(1 - 1 / 17, abs=1e-5)
    )
    full = np.ones((1, 4, 4, 1), "float32")
    value = float(to_numpy(BCEDiceLoss()(full, np.full_like(full, 30.0))))
    assert value == pytest.approx(0.0, abs=1e-6)


def test_extreme_logits_stay_finite_with_finite_gradient_values():
    y = np.array([1.0, 0.0, 1.0, 0.0], "float32").reshape(1, 2, 2, 1)
    x = np.array([-1e4, 1e4, 1e4, -1e4], "float32").reshape(1, 2, 2, 1)
    value = float(to_numpy(BCEDiceLoss()(y, x)))
    # BCE of the two wrong pixels is 1e4 each -> mean 5e3; Dice loss of
    # p = (0, 1, 1, 0) against y = (1, 0, 1, 0): 1 - (2 + 1) / (2 + 2 + 1).
    assert value == pytest.approx(5e3 + 1 - 3 / 5, rel=1e-6)


def test_mixed_precision_logits_computed_in_float32():
    loss = BCEDiceLoss()
    x16 = X.astype("float16")
    value = to_numpy(loss(Y, x16))
    assert value.dtype == np.float32
    assert float(value) == pytest.approx(float(to_numpy(loss(Y, X))), abs=1e-3)


def test_mismatched_shapes_are_a_clear_error():
    with pytest.raises(ValueError, match="differ in shape"):
        BCEDiceLoss()(np.zeros((1, 4, 4, 1)), np.zeros((1, 8, 8, 1)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="bce_weight"):
        BCEDiceLoss(bce_weight=-1)
    with pytest.raises(ValueError, match="both 0"):
        BCEDiceLoss(bce_weight=0, dice_weight=0)
    with pytest.raises(ValueError, match="smooth"):
        DiceLoss(smooth=-1)


def test_serialization_round_trip():
    loss = BCEDiceLoss(bce_weight=0.5, dice_weight=2.0, smooth=0.1)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, BCEDiceLoss)
    assert restored.get_config() == loss.get_config()
    dice = keras.losses.deserialize(keras.losses.serialize(DiceLoss(smooth=2)))
    assert dice.smooth == 2.0


def test_zero_weight_padding_does_not_change_the_mean_loss():
    # Data-parallel validation pads its last batch with zero-weight blanks
    # (keras_pu.training.pipeline.PaddedBatches); the trainer's reduction
    # keeps the loss that of the real images.
    rng = np.random.default_rng(0)
    y_true = (rng.uniform(size=(3, 8, 8, 1)) > 0.5).astype("float32")
    y_pred = rng.normal(size=(3, 8, 8, 1)).astype("float32")
    pad_true = np.concatenate([y_true, np.zeros_like(y_true[:1])])
    pad_pred = np.concatenate([y_pred, np.zeros_like(y_pred[:1])])
    weights = np.array([1, 1, 1, 0], "float32")
    loss = BCEDiceLoss(reduction="mean_with_sample_weight")
    plain = float(to_numpy(loss(y_true, y_pred)))
    padded = float(to_numpy(loss(pad_true, pad_pred, sample_weight=weights)))
    np.testing.assert_allclose(padded, plain, rtol=1e-6)
    # The default reduction would divide by the 4 slots.
    default = float(to_numpy(BCEDiceLoss()(pad_true, pad_pred,
                                           sample_weight=weights)))
    np.testing.assert_allclose(default, plain * 3 / 4, rtol=1e-6)
