"""Deep supervision: auxiliary heads on the decoder, trained against
downsampled masks, absent from inference."""

import keras
import numpy as np
import pytest

from keras_pu.callbacks import SelfRegDistillation
from keras_pu.losses import BCEDiceLoss
from keras_pu.models import PUUNet
from keras_pu.models import ResUNet
from keras_pu.models.deep_supervision import auxiliary_weights
from keras_pu.models.deep_supervision import downsample_target
from keras_pu.models.deep_supervision import is_sparse_target
from keras_pu.models.efficientnet_lite import EncoderResUNet
from tests._backend_utils import NO_CHANNELS_FIRST_REASON
from tests._backend_utils import backend_runs_channels_first
from tests._backend_utils import to_numpy
from tests.test_models import disk_batch

# depth 4 is the smallest depth with two supervised levels (1 and 2).
SMALL = dict(input_shape=(32, 32, 3), widths=4, depth=4)


def np_average_pool(masks, factor):
    b, h, w, c = masks.shape
    return masks.reshape(b, h // factor, factor, w // factor, factor, c).mean(
        axis=(2, 4)
    )


def training_loss(model, images, masks):
    """The training step's loss (forward pass and `compute_loss`, as
    `train_step` does, without compiling a step function) and the reported
    auxiliary term."""
    model.reset_metrics()
    images = keras.ops.convert_to_tensor(images)
    y_pred = model(images, training=True)
    loss = model.compute_loss(x=images, y=keras.ops.convert_to_tensor(masks),
                              y_pred=y_pred, training=True)
    results = model.compute_metrics(images, masks, y_pred)
    return float(to_numpy(loss)), float(to_numpy(
        results["deep_supervision_loss"]))


# --- targets ------------------------------------------------------------------


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_binary_masks_are_averaged_per_cell(factor):
    _, masks = disk_batch(n=3, size=16)
    out = to_numpy(downsample_target(masks, factor))
    np.testing.assert_allclose(out, np_average_pool(masks, factor), atol=1e-6)
    # rank-3 masks keep their rank; channels-first gives the transposed result
    out3 = to_numpy(downsample_target(masks[..., 0], factor))
    np.testing.assert_allclose(out3, np_average_pool(masks, factor)[..., 0],
                               atol=1e-6)
    first = to_numpy(downsample_target(np.transpose(masks, (0, 3, 1, 2)),
                                       factor, "channels_first"))
    np.testing.assert_allclose(np.transpose(first, (0, 2, 3, 1)),
                               np_average_pool(masks, factor), atol=1e-6)


def test_class_index_masks_are_subsampled_not_averaged():
    labels = np.random.default_rng(0).integers(0, 3, (2, 8, 8, 1)).astype("int32")
    out = to_numpy(downsample_target(labels, 4, sparse=True))
    np.testing.assert_array_equal(out, labels[:, 2::4, 2::4, :])
    assert is_sparse_target(keras.ops.convert_to_tensor(labels), 3)
    floats = keras.ops.convert_to_tensor(labels.astype("float32"))
    assert is_sparse_target(floats, 3)  # one channel, three classes
    assert not is_sparse_target(floats, 1)  # a binary mask
    one_hot = keras.ops.one_hot(labels[..., 0], 3)
    assert not is_sparse_target(one_hot, 3)


def test_weights_halve_per_level():
    assert auxiliary_weights(3) == [0.5, 0.25, 0.125]
    assert auxiliary_weights(0) == []


# --- models -------------------------------------------------------------------


def test_heads_sit_between_the_coarsest_decoder_level_and_the_output():
    model = PUUNet(**SMALL, deep_supervision=True)
    assert [h.name for h in model.deep_supervision_heads] == [
        "deep_supervision_head_2", "deep_supervision_head_4"]
    plain = PUUNet(**SMALL)
    assert plain.deep_supervision_heads == []
    # Each head is a 1x1 convolution: decoder width + 1 bias per class.
    extra = model.count_params() - plain.count_params()
    assert extra == (8 + 1) + (16 + 1)
    encoder = EncoderResUNet(input_shape=(64, 64, 3), encoder_weights=None,
                             deep_supervision=True)
    assert [h.name for h in encoder.deep_supervision_heads] == [
        f"deep_supervision_head_{s}" for s in (2, 4, 8, 16)]


def test_clear_errors():
    with pytest.raises(ValueError, match="depth >= 3"):
        ResUNet(input_shape=(32, 32, 3), widths=4, depth=2,
                deep_supervision=True)
    with pytest.raises(ValueError, match="True or False"):
        ResUNet(**SMALL, deep_supervision="yes")
    model = ResUNet(**SMALL, deep_supervision=True)
    model.compile("adam", loss=[BCEDiceLoss()])
    images, masks = disk_batch(n=2)
    with pytest.raises(ValueError, match="one\\s+loss"):
        training_loss(model, images, masks)


def test_inference_is_the_model_without_heads():
    images, _ = disk_batch(n=2)
    model = PUUNet(**SMALL, deep_supervision=True)
    plain = PUUNet(**SMALL)
    for layer in plain.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    np.testing.assert_allclose(
        model.predict(images, verbose=0), plain.predict(images, verbose=0),
        atol=1e-6,
    )


def test_loss_is_main_plus_weighted_auxiliary_losses():
    images, masks = disk_batch(n=4)
    model = ResUNet(**SMALL, deep_supervision=True)
    loss = BCEDiceLoss()
    model.compile(optimizer="adam", loss=loss)
    total, reported = training_loss(model, images, masks)
    # Recomputed layer by layer.
    view = keras.Model(
        model.inputs,
        [model.outputs[0]] + [model.get_layer(f"decoder_stage_{level}").output
                              for level in (1, 2)],
    )
    logits, *features = view(keras.ops.convert_to_tensor(images),
                             training=True)
    auxiliary = 0.0
    for feature, head, factor, weight in zip(
            features, model.deep_supervision_heads, (2, 4), (0.5, 0.25)):
        target = np_average_pool(masks, factor)
        logits_aux = head(feature)
        if model.compute_data_format == "channels_first":  # torch's default
            logits_aux = keras.ops.transpose(logits_aux, (0, 2, 3, 1))
        auxiliary += weight * float(to_numpy(loss(target, logits_aux)))
    main = float(to_numpy(loss(masks, logits)))
    np.testing.assert_allclose(reported, auxiliary, rtol=1e-4)
    np.testing.assert_allclose(total, main + auxiliary, rtol=1e-4)


def test_training_with_selfreg_trains_the_heads_and_saving_keeps_them(tmp_path):
    # One fit (compiling step functions is what costs here): deep
    # supervision together with SelfReg, with validation.
    images, masks = disk_batch(n=8)
    model = PUUNet(**SMALL, deep_supervision=True)
    model.compile(optimizer="adam", loss=BCEDiceLoss())
    before = [to_numpy(h.kernel) for h in model.deep_supervision_heads]
    history = model.fit(images, masks, epochs=2, batch_size=4, verbose=0,
                        validation_data=(images, masks),
                        callbacks=[SelfRegDistillation(seed=0)])
    logs = history.history
    assert {"scr_loss", "ifd_loss", "deep_supervision_loss"} <= set(logs)
    assert "val_deep_supervision_loss" not in logs  # training only
    assert all(np.isfinite(logs["deep_supervision_loss"]))
    after = [to_numpy(h.kernel) for h in model.deep_supervision_heads]
    assert all(np.abs(a - b).max() > 0 for a, b in zip(after, before))
    # SelfReg is detached at the end of fit; the heads stay in training.
    assert model.feature_loss is None
    assert training_loss(model, images, masks)[1] > 0

    path = tmp_path / "ds.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects
    assert loaded.get_config()["deep_supervision"] is True
    for original, restored in zip(model.deep_supervision_heads,
                                  loaded.deep_supervision_heads):
        np.testing.assert_array_equal(to_numpy(restored.kernel),
                                      to_numpy(original.kernel))
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-6)
    # A model saved without deep supervision loads without heads.
    path = tmp_path / "plain.keras"
    PUUNet(**SMALL).save(path)
    assert keras.saving.load_model(path).deep_supervision_heads == []


def test_the_same_in_either_compute_layout():
    if not backend_runs_channels_first():
        pytest.skip(NO_CHANNELS_FIRST_REASON)
    images, masks = disk_batch(n=4)
    models = {
        layout: ResUNet(**SMALL, compute_data_format=layout,
                        deep_supervision=True)
        for layout in ("channels_last", "channels_first")
    }
    # Weights are the same in both layouts.
    models["channels_first"].set_weights(models["channels_last"].get_weights())
    losses = {}
    for layout, model in models.items():
        model.compile(optimizer="adam", loss=BCEDiceLoss())
        losses[layout] = training_loss(model, images, masks)
    np.testing.assert_allclose(losses["channels_first"],
                               losses["channels_last"], rtol=1e-4)
