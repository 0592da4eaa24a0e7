"""ResUNet, PUUNet, ResidualUNet and SegmentationModel."""

import keras
import numpy as np
import pytest

import keras_pu
from keras_pu.layers import ProductUnitResidualBlock
from keras_pu.layers import ResidualBlock
from keras_pu.models import PUUNet
from keras_pu.models import ResidualUNet
from keras_pu.models import ResUNet
from keras_pu.models import SegmentationModel
from tests._backend_utils import NO_CHANNELS_FIRST_REASON
from tests._backend_utils import backend_runs_channels_first
from tests._backend_utils import to_numpy

# One small configuration shared by the tests, so that backends that compile
# per shape (JAX) compile it once.
TINY = dict(input_shape=(32, 32, 3), widths=4, depth=2)


def disk_batch(n=4, size=32, seed=0):
    """Images with one bright disk on noise, and the disk as the mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for _ in range(n):
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        r = rng.uniform(size * 0.1, size * 0.25)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype("float32")
        image = rng.normal(0.3, 0.1, (size, size, 3)) + 0.5 * mask[..., None]
        images.append(image)
        masks.append(mask[..., None])
    return np.stack(images).astype("float32"), np.stack(masks)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(input_shape=(256, 256, 3)),
        dict(input_shape=(None, None, 1), widths=(8, 16, 32, 64), depth=3),
        dict(input_shape=(64, 64, 3), widths=8, blocks_per_stage=2,
             upsampling="bilinear", num_classes=3),
    ],
    ids=["default-256", "grayscale-depth3", "two-blocks-bilinear"],
)
def test_pu_unet_matches_res_unet_parameters(kwargs):
    res = ResUNet(**kwargs)
    pu = PUUNet(**kwargs)
    # The product unit replaces a 3x3 convolution with a 3x3 exponent kernel:
    # identical counts, well within the 1 % the design allows.
    assert pu.count_params() == res.count_params()
    pu_blocks = [l for l in pu.layers if isinstance(l, ProductUnitResidualBlock)]
    assert pu_blocks, "PUUNet has no product-unit block"
    assert not any(isinstance(l, ProductUnitResidualBlock) for l in res.layers)


def test_default_pu_stages_are_the_lowest_resolution_levels():
    model = PUUNet(input_shape=(64, 64, 3), widths=4, depth=3)
    assert model.pu_stages == (2, 3)
    kinds = {
        l.name: type(l) for l in model.layers if isinstance(l, ResidualBlock)
    }
    assert kinds["encoder_stage_3"] is ProductUnitResidualBlock  # bottleneck
    assert kinds["encoder_stage_2"] is ProductUnitResidualBlock
    assert kinds["decoder_stage_2"] is ProductUnitResidualBlock
    assert kinds["encoder_stage_1"] is ResidualBlock
    assert kinds["decoder_stage_0"] is ResidualBlock


@pytest.mark.parametrize("model_cls", [ResUNet, PUUNet])
def test_predict_returns_logits_for_any_multiple_size(model_cls):
    model = model_cls(input_shape=(None, None, 3), widths=4, depth=2)
    for size in (32, 48):
        x = np.random.default_rng(0).random((2, size, size, 3), "float32")
        y = model.predict(x, verbose=0)
        assert isinstance(y, np.ndarray)
        assert y.shape == (2, size, size, 1)
        assert np.all(np.isfinite(y))


def test_feature_layers_name_the_block_outputs():
    model = PUUNet(**TINY)
    roles = model.feature_layers
    assert roles["encoder"] == [
        "encoder_stage_0", "encoder_stage_1", "encoder_stage_2"
    ]
    assert roles["decoder"] == ["decoder_stage_1"]
    assert roles["teacher"] == "decoder_stage_0"
    # Features are in the layout the model computes in.
    def in_layout(h, w, c):
        if model.compute_data_format == "channels_last":
            return (None, h, w, c)
        return (None, c, h, w)

    teacher = model.get_layer(roles["teacher"])
    assert tuple(teacher.output.shape) == in_layout(32, 32, 4)
    bottleneck = model.get_layer("encoder_stage_2")
    assert tuple(bottleneck.output.shape) == in_layout(8, 8, 16)


def test_compute_layout_defaults_to_the_backends_fastest(backend):
    model = PUUNet(**TINY)
    expected = "channels_first" if backend == "torch" else "channels_last"
    assert model.compute_data_format == expected
    assert model.data_format == "channels_last"  # images and logits
    assert model.get_config()["compute_data_format"] is None


@pytest.mark.parametrize("model_cls", [ResUNet, PUUNet])
def test_compute_layout_changes_nothing_but_speed(model_cls, tmp_path):
    images, _ = disk_batch(n=2)
    if not backend_runs_channels_first():
        pytest.skip(NO_CHANNELS_FIRST_REASON)
    last = model_cls(**TINY, compute_data_format="channels_last")
    first = model_cls(**TINY, compute_data_format="channels_first")
    assert first.compute_data_format == "channels_first"
    # Same weights, in the same order, for either layout.
    first.set_weights(last.get_weights())
    expected = last.predict(images, verbose=0)
    np.testing.assert_allclose(
        first.predict(images, verbose=0), expected, atol=1e-4
    )
    # A file saved with one layout loads into the other.
    last.save(tmp_path / "last.keras")
    reloaded = model_cls(**TINY, compute_data_format="channels_first")
    reloaded.load_weights(tmp_path / "last.keras")
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0), expected, atol=1e-4
    )


def test_bad_compute_layout_is_rejected():
    with pytest.raises(ValueError, match="compute_data_format"):
        PUUNet(**TINY, compute_data_format="nchw")


def test_mixed_precision_gives_float32_logits():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = PUUNet(**TINY)
    y = model(np.ones((1, 32, 32, 3), "float32"))
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    block = model.get_layer("encoder_stage_2")
    assert block.compute_dtype == "bfloat16"


def test_channels_first_model():
    model = PUUNet(
        input_shape=(3, 32, 32), widths=4, depth=2,
        data_format="channels_first",
    )
    y = model(np.ones((1, 3, 32, 32), "float32"))
    assert tuple(y.shape) == (1, 1, 32, 32)


def test_channels_first_compute_falls_back_where_tensorflow_cannot_run_it(
        backend, monkeypatch):
    """TensorFlow on a CPU without oneDNN has no NCHW convolutions: a
    model asked to compute channels-first computes channels-last there (same
    outputs, data_format unchanged, the argument kept in the config) and
    says so; the other backends compute channels-first as asked."""
    import contextlib

    from keras_pu import hardware

    if backend == "tensorflow":
        monkeypatch.setattr(hardware, "tensorflow_runs_channels_first", lambda: False)
        expected_layout = "channels_last"
        expect_warning = pytest.warns(UserWarning, match="cannot run channels-first")
    else:
        expected_layout = "channels_first"
        expect_warning = contextlib.nullcontext()
    with expect_warning:
        first = PUUNet(input_shape=(3, 32, 32), widths=4, depth=2,
                       data_format="channels_first")
    assert first.compute_data_format == expected_layout
    assert first.data_format == "channels_first"
    assert first.get_config()["compute_data_format"] is None
    last = PUUNet(**TINY, compute_data_format="channels_last")
    first.set_weights(last.get_weights())
    images, _ = disk_batch(n=2)
    np.testing.assert_allclose(
        np.transpose(first.predict(np.transpose(images, (0, 3, 1, 2)), verbose=0),
                     (0, 2, 3, 1)),
        last.predict(images, verbose=0), atol=1e-4,
    )


@pytest.mark.parametrize("model_cls", [ResUNet, PUUNet, ResidualUNet])
def test_config_round_trip(model_cls):
    model = model_cls(**TINY, num_classes=2)
    config = model.get_config()
    clone = model_cls.from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()


def test_segmentation_model_wraps_any_functional_model(tmp_path):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="enc")(inputs)
    logits = keras.layers.Conv2D(1, 1, name="head")(x)
    plain = keras.Model(inputs, logits)
    wrapped = SegmentationModel(plain.inputs, plain.outputs)
    # Shares layers and weights with the wrapped model.
    assert wrapped.get_layer("enc") is plain.get_layer("enc")
    x = np.ones((1, 16, 16, 3), "float32")
    np.testing.assert_allclose(to_numpy(wrapped(x)), to_numpy(plain(x)))
    wrapped.save(tmp_path / "w.keras")
    loaded = keras.saving.load_model(tmp_path / "w.keras")
    assert type(loaded) is SegmentationModel
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(plain(x)),
                               atol=1e-6)


def test_fit_traces_the_train_step_once(backend):
    # Keras builds the optimizer inside the first traced step on
    # TensorFlow, and a tf.function that creates variables is traced twice
    # (each trace of a U-Net's step takes seconds); SegmentationModel.fit
    # builds it first.
    optimizer_built_at_step = []

    class Counting(SegmentationModel):
        def train_step(self, *args):  # JAX passes (state, data)
            optimizer_built_at_step.append(self.optimizer.built)
            return super().train_step(*args)

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="enc")(inputs)
    model = Counting(inputs, keras.layers.Conv2D(1, 1, name="head")(x))
    model.compile(optimizer="adam", loss="mse")
    images, masks = disk_batch(n=6, size=16)
    model.fit(images, masks, epochs=1, batch_size=2, verbose=0)
    # PyTorch runs the step eagerly, once per batch; the others trace it.
    assert len(optimizer_built_at_step) == (3 if backend == "torch" else 1)
    assert all(optimizer_built_at_step)
    assert len(model.optimizer.variables) > 2  # Adam's moments exist


@pytest.mark.parametrize("model_cls", [ResUNet, PUUNet])
def test_training_lowers_the_loss_then_save_and_load(model_cls, tmp_path):
    # One fit per model class (tracing a U-Net's train step is the slow part
    # of this file), then the saved model must reload without custom_objects.
    images, masks = disk_batch(n=8)
    model = model_cls(**TINY)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    # Training-mode loss (batch statistics): with so few steps the moving
    # batch-norm averages have not converged, so evaluate() would mislead.
    history = model.fit(images, masks, epochs=15, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses

    expected = model.predict(images, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is model_cls
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), expected, atol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(30, 32, 3), depth=2), "not a positive multiple"),
        (dict(input_shape=(32, 32, 3), widths=0), "positive integer"),
        (dict(input_shape=(32, 32, 3), widths=(4, 0, 8), depth=2),
         "positive integer"),
        (dict(input_shape=(32, 32, 3), widths=(4, 8), depth=2),
         "one width per level"),
        (dict(input_shape=(32, 32, 3), depth=0), "depth"),
        (dict(input_shape=(32, 32, 3), depth=2, pu_stages=(3,)),
         "Unknown stage index 3"),
        (dict(input_shape=(32, 32, 3), depth=2, pu_stages=(-1,)),
         "Unknown stage index -1"),
        (dict(input_shape=(32, 32, 3), depth=2, upsampling="cubic"),
         "upsampling"),
        (dict(input_shape=(32, 32, 3), depth=2, num_classes=0),
         "num_classes"),
        (dict(input_shape=(32, 32), depth=2), "3 entries"),
        (dict(input_shape=(32, 32, None), depth=2), "channel count"),
        (dict(input_shape=(32, 32, 3), depth=2, pu_clip_mode="soft"),
         "clip_mode"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResidualUNet(**kwargs)


def test_res_unet_rejects_unknown_pu_argument():
    with pytest.raises(TypeError):
        ResUNet(input_shape=(32, 32, 3), pu_stages=(1,))


def test_wrong_channel_count_at_call_time():
    model = PUUNet(**TINY)
    with pytest.raises(ValueError, match="expects 3-channel images"):
        model(np.ones((1, 32, 32, 1), "float32"))
    # Under predict(), Keras's own input check may speak first; either way
    # the message names the expected and the received shape.
    with pytest.raises(
        ValueError,
        match=r"expects 3-channel images|expected shape=\(None, 32, 32, 3\)",
    ):
        model.predict(np.ones((1, 32, 32, 4), "float32"), verbose=0)


def test_wrong_size_and_rank_at_call_time():
    model = PUUNet(input_shape=(None, None, 3), widths=4, depth=2)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(np.ones((1, 30, 32, 3), "float32"))
    with pytest.raises(ValueError, match="rank 4"):
        model(np.ones((32, 32, 3), "float32"))


def test_models_are_registered_in_the_keras_pu_package():
    for cls in (SegmentationModel, ResidualUNet, ResUNet, PUUNet):
        assert keras.saving.get_registered_name(cls) == (
            f"keras_pu>{cls.__name__}"
        )
    assert keras_pu.models.PUUNet is PUUNet
