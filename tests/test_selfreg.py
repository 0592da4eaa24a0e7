"""SelfReg: SCR and IFD losses and the SelfRegDistillation callback."""

import keras
import numpy as np
import pytest

import keras_pu
from keras_pu.callbacks import SelfRegDistillation
from keras_pu.models import PUUNet
from keras_pu.models import SegmentationModel
from keras_pu.selfreg import ifd_loss
from keras_pu.selfreg import scr_loss
from keras_pu.selfreg.losses import random_channels
from tests._backend_utils import function_gradients
from tests._backend_utils import to_numpy
from tests.test_models import TINY
from tests.test_models import disk_batch

# --- independent numpy references -------------------------------------------


def np_avg_pool(x, rh, rw):
    b, h, w, c = x.shape
    return x.reshape(b, h // rh, rh, w // rw, rw, c).mean(axis=(2, 4))


def np_scr(student, teacher, student_idx, teacher_idx):
    rh = teacher.shape[1] // student.shape[1]
    rw = teacher.shape[2] // student.shape[2]
    pooled = np_avg_pool(teacher.astype("float64"), rh, rw)
    diff = student[..., student_idx] - pooled[..., teacher_idx]
    return np.mean(diff**2)


def np_ifd(feature):
    f = feature.astype("float64")
    c = f.shape[-1]
    norm = np.sqrt(np.sum(f**2, axis=(1, 2), keepdims=True))
    scores = (f / np.maximum(norm, 1e-12)).mean(axis=(0, 1, 2))
    order = sorted(range(c), key=lambda i: -scores[i])
    half = c // 2
    if half == 0:
        return 0.0  # documented: fewer than 2 channels give 0
    first = f[..., order[:half]]
    second = f[..., order[half:2 * half]]
    return np.mean((first - second) ** 2)


def features(shape, seed):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# --- losses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "student_shape, teacher_shape",
    [
        ((2, 4, 4, 6), (2, 16, 16, 3)),  # ratio 4, more student channels
        ((2, 8, 8, 2), (2, 8, 8, 5)),  # same size, more teacher channels
        ((1, 4, 2, 3), (1, 8, 8, 3)),  # different ratios per axis
    ],
)
def test_scr_matches_numpy_with_a_fixed_pairing(student_shape, teacher_shape):
    student = features(student_shape, 0)
    teacher = features(teacher_shape, 1)
    k = min(student_shape[-1], teacher_shape[-1])
    rng = np.random.default_rng(2)
    s_idx = rng.permutation(student_shape[-1])[:k]
    t_idx = rng.permutation(teacher_shape[-1])[:k]
    value = scr_loss(
        student, teacher, channels=(s_idx.astype("int32"),
                                    t_idx.astype("int32"))
    )
    np.testing.assert_allclose(
        float(to_numpy(value)), np_scr(student, teacher, s_idx, t_idx),
        rtol=1e-5,
    )


def test_scr_with_a_seed_draws_valid_distinct_channels():
    seed = keras.random.SeedGenerator(3)
    draws = [to_numpy(random_channels(10, 4, seed)) for _ in range(5)]
    for d in draws:
        assert len(set(d.tolist())) == 4 and d.min() >= 0 and d.max() < 10
    assert len({tuple(d) for d in draws}) > 1, "pairing never changes"
    # An int seed gives the same draw every time.
    a = to_numpy(random_channels(10, 4, 5))
    b = to_numpy(random_channels(10, 4, 5))
    np.testing.assert_array_equal(a, b)


def test_scr_random_pairing_equals_reference_for_the_drawn_channels():
    student = features((2, 4, 4, 3), 4)
    teacher = features((2, 8, 8, 5), 5)
    value = float(to_numpy(scr_loss(student, teacher, seed=11)))
    s_idx = to_numpy(random_channels(3, 3, 11))
    t_idx = to_numpy(random_channels(5, 3, 11))
    np.testing.assert_allclose(
        value, np_scr(student, teacher, s_idx, t_idx), rtol=1e-5
    )


@pytest.mark.parametrize(
    "student_shape, teacher_shape, message",
    [
        ((1, 3, 3, 2), (1, 8, 8, 2), "not an integer multiple"),
        ((1, 8, 8, 2), (1, 4, 4, 2), "not an integer multiple"),
    ],
)
def test_scr_rejects_non_integer_ratios(student_shape, teacher_shape, message):
    with pytest.raises(ValueError, match=message):
        scr_loss(features(student_shape, 0), features(teacher_shape, 1), seed=0)


@pytest.mark.parametrize("channels", [8, 7, 2, 1])
def test_ifd_matches_numpy_exactly(channels):
    feature = features((3, 5, 4, channels), channels)
    # Distinct channel scores so that the ranking is unambiguous.
    feature += np.arange(channels, dtype="float32") * 0.1
    np.testing.assert_allclose(
        float(to_numpy(ifd_loss(feature))), np_ifd(feature), rtol=1e-5,
        atol=1e-7,
    )


def test_scr_gradient_reaches_the_student_not_the_teacher():
    student = features((2, 4, 4, 3), 6)
    teacher = features((2, 8, 8, 3), 7)
    _, (g_student, g_teacher) = function_gradients(
        lambda s, t: scr_loss(s, t, seed=1), student, teacher
    )
    assert np.abs(g_student).sum() > 0
    assert np.abs(g_teacher).sum() == 0


def test_ifd_gradient_reaches_both_halves():
    feature = features((2, 4, 4, 4), 8) + np.arange(4, dtype="float32")
    _, (grad,) = function_gradients(ifd_loss, feature)
    per_channel = np.abs(grad).sum(axis=(0, 1, 2))
    assert np.all(per_channel > 0), per_channel


# --- the callback --------------------------------------------------------------


def compiled_model(**compile_kwargs):
    model = PUUNet(**TINY)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        **compile_kwargs,
    )
    return model


def small_model(**compile_kwargs):
    """A small functional SegmentationModel (fast to trace and compile) with
    two encoder blocks, one decoder block and a teacher."""
    inputs = keras.Input((16, 16, 3))
    e1 = keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                             name="enc1")(inputs)
    e2 = keras.layers.Conv2D(8, 3, strides=2, padding="same",
                             activation="relu", name="enc2")(e1)
    d2 = keras.layers.Conv2D(8, 3, padding="same", activation="relu",
                             name="dec2")(e2)
    up = keras.layers.UpSampling2D(name="up")(d2)
    d1 = keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                             name="dec1")(keras.layers.Concatenate()([up, e1]))
    logits = keras.layers.Conv2D(1, 1, name="head")(d1)
    model = SegmentationModel(inputs, logits, name="small")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        **compile_kwargs,
    )
    return model


def small_selfreg(**kwargs):
    return SelfRegDistillation(
        encoder_layers=["enc1", "enc2"], decoder_layers=["dec2"],
        teacher_layer="dec1", **kwargs,
    )


def test_training_pu_unet_with_selfreg_logs_components_and_lowers_loss():
    # Keras's default jit_compile ("auto": XLA under JAX; off under torch and
    # under TensorFlow on a CPU-only machine). jit_compile=True on every
    # backend is tested below.
    images, masks = disk_batch(n=8)
    model = compiled_model()
    callback = SelfRegDistillation(seed=0)
    history = model.fit(
        images, masks, epochs=8, batch_size=4, verbose=0,
        validation_data=(images, masks), callbacks=[callback],
    )
    logs = history.history
    assert {"loss", "scr_loss", "ifd_loss", "val_loss"} <= set(logs)
    assert "val_scr_loss" not in logs  # validation computes no SelfReg
    assert all(np.isfinite(logs["scr_loss"])) and logs["scr_loss"][0] > 0
    assert all(np.isfinite(logs["ifd_loss"])) and logs["ifd_loss"][0] > 0
    assert logs["loss"][-1] < 0.7 * logs["loss"][0], logs["loss"]
    # Fresh pairings every step: the pairing state advanced once per draw
    # (two draws per student per step: 4 students, 2 steps x 8 epochs).
    state = to_numpy(callback.selfreg_loss.state.pairing_state)
    assert int(state[1]) == 2 * 4 * 2 * 8
    assert model.feature_loss is None  # detached at the end


def test_selfreg_with_jit_compile_true():
    # torch: torch.compile of the train step; TF and JAX: XLA, explicitly.
    # The smallest model with a student and a teacher: compiling is slow.
    inputs = keras.Input((16, 16, 3))
    enc = keras.layers.Conv2D(4, 3, strides=2, padding="same",
                              activation="relu", name="enc")(inputs)
    dec = keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                              name="dec")(keras.layers.UpSampling2D()(enc))
    model = SegmentationModel(inputs, keras.layers.Conv2D(1, 1)(dec))
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True),
                  jit_compile=True)
    images, masks = disk_batch(n=4, size=16)
    history = model.fit(
        images, masks, epochs=2, batch_size=4, verbose=0,
        callbacks=[SelfRegDistillation(encoder_layers=["enc"],
                                       decoder_layers=[], teacher_layer="dec",
                                       seed=0)],
    )
    assert model.jit_compile
    assert np.all(np.isfinite(history.history["scr_loss"]))
    assert np.all(np.array(history.history["ifd_loss"]) > 0)


def test_total_loss_is_segmentation_plus_weighted_components():
    images, masks = disk_batch(n=4, size=16)
    model = small_model()
    lam = 0.5
    # One step, zero learning rate: the logged loss is the loss at the
    # initial weights, which we can recompute.
    model.optimizer.learning_rate.assign(0.0)
    history = model.fit(images, masks, epochs=1, batch_size=4, verbose=0,
                        callbacks=[small_selfreg(lambda_scr=lam,
                                                 lambda_ifd=lam, seed=0)])
    logs = {k: v[0] for k, v in history.history.items()}
    seg = keras.losses.BinaryCrossentropy(from_logits=True)(
        masks, model(images, training=True)
    )
    expected = float(to_numpy(seg)) + lam * (logs["scr_loss"] +
                                             logs["ifd_loss"])
    np.testing.assert_allclose(logs["loss"], expected, rtol=2e-3)


def test_warmup_schedules_the_weights():
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            state = selfreg.selfreg_loss.state
            seen.append((float(to_numpy(state.lambda_scr)),
                         float(to_numpy(state.lambda_ifd))))

    selfreg = small_selfreg(lambda_scr=0.02, lambda_ifd=0.01, warmup_epochs=2)
    images, masks = disk_batch(n=4, size=16)
    model = small_model()
    model.fit(images, masks, epochs=4, batch_size=4, verbose=0,
              callbacks=[selfreg, Record()])
    np.testing.assert_allclose(
        seen, [(0.0, 0.0), (0.01, 0.005), (0.02, 0.01), (0.02, 0.01)],
        rtol=1e-6,
    )
    custom = SelfRegDistillation(schedule=lambda epoch: 0.5 ** epoch)
    assert custom.weight_factor(0) == 1.0 and custom.weight_factor(2) == 0.25


def test_callback_on_a_model_already_trained_without_it():
    images, masks = disk_batch(n=4, size=16)
    model = small_model()
    plain = model.fit(images, masks, epochs=1, verbose=0)
    assert "scr_loss" not in plain.history
    with_selfreg = model.fit(images, masks, epochs=1, verbose=0,
                             callbacks=[small_selfreg()])
    assert "scr_loss" in with_selfreg.history
    again = model.fit(images, masks, epochs=1, verbose=0)
    assert "scr_loss" not in again.history


def test_nothing_of_selfreg_remains_in_the_saved_model(tmp_path):
    images, masks = disk_batch(n=4)
    model = compiled_model()
    checkpoint = tmp_path / "mid_training.keras"
    model.fit(
        images, masks, epochs=2, verbose=0,
        callbacks=[SelfRegDistillation(seed=0),
                   keras.callbacks.ModelCheckpoint(checkpoint)],
    )
    expected = model.predict(images, verbose=0)
    model.save(tmp_path / "after.keras")
    reference = PUUNet(**TINY)  # never saw SelfReg
    for path in (tmp_path / "after.keras", checkpoint):
        loaded = keras.saving.load_model(path)
        assert type(loaded) is PUUNet
        assert loaded.get_config() == reference.get_config()
        assert [v.path for v in loaded.weights] == [
            v.path for v in reference.weights
        ]
        assert loaded.feature_loss is None
    loaded = keras.saving.load_model(tmp_path / "after.keras")
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), expected, atol=1e-5
    )
    # predict() of the trained model itself is the plain forward pass.
    np.testing.assert_allclose(
        to_numpy(model(images, training=False)), expected, atol=1e-5
    )


def test_selfreg_on_a_user_functional_model_needs_layer_names():
    model = small_model()
    images, masks = disk_batch(n=4, size=16)
    with pytest.raises(ValueError, match="declares no default"):
        model.fit(images, masks, epochs=1, verbose=0,
                  callbacks=[SelfRegDistillation()])


def test_clear_errors():
    images, masks = disk_batch(n=2, size=16)
    inputs = keras.Input((16, 16, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(1, 1)(inputs))
    plain.compile("adam", "mse")
    with pytest.raises(TypeError, match="SegmentationModel"):
        plain.fit(images, masks, epochs=1, verbose=0,
                  callbacks=[SelfRegDistillation()])
    model = small_model()
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        model.fit(images, masks, epochs=1, verbose=0,
                  callbacks=[SelfRegDistillation(
                      encoder_layers=["enc1"], decoder_layers=[],
                      teacher_layer="nope")])
    with pytest.raises(ValueError, match="lambda_scr"):
        SelfRegDistillation(lambda_scr=-1)
    with pytest.raises(ValueError, match="warmup_epochs"):
        SelfRegDistillation(warmup_epochs=1.5)


def test_public_api():
    assert keras_pu.selfreg.scr_loss is scr_loss
    assert keras_pu.callbacks.SelfRegDistillation is SelfRegDistillation


def test_selfreg_is_the_same_in_either_compute_layout():
    # keras-pu U-Nets compute channels-first under PyTorch for speed; SelfReg
    # must read the features in the model's compute layout.
    if keras.backend.backend() == "tensorflow":
        pytest.skip("TensorFlow's CPU convolutions are channels-last only")
    images, masks = disk_batch(n=4)
    logs = {}
    for layout in ("channels_last", "channels_first"):
        keras.utils.set_random_seed(0)
        model = PUUNet(**TINY, compute_data_format=layout)
        model.compile(optimizer=keras.optimizers.SGD(0.0),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True))
        if logs:
            model.set_weights(weights)
        weights = model.get_weights()
        history = model.fit(images, masks, epochs=1, batch_size=4, verbose=0,
                            callbacks=[SelfRegDistillation(seed=3)])
        logs[layout] = {k: v[0] for k, v in history.history.items()}
    for key in ("loss", "scr_loss", "ifd_loss"):
        np.testing.assert_allclose(
            logs["channels_first"][key], logs["channels_last"][key], rtol=1e-4
        )


def test_selfreg_loss_built_on_first_call_reads_channels_first_shapes():
    # Called without `build` (no model attached), the loss learns its pooling
    # factors from the first features it sees, in its own data_format.
    from keras_pu.selfreg import SelfRegLoss

    rng = np.random.default_rng(0)
    shapes = [(2, 16, 12, 8), (2, 8, 6, 16), (2, 32, 24, 4)]
    features = [rng.normal(size=s).astype("float32") for s in shapes]
    values = {}
    for layout in ("channels_last", "channels_first"):
        loss = SelfRegLoss(["enc"], ["dec"], "teacher", lambda_scr=1.0,
                           lambda_ifd=1.0, seed=3, data_format=layout)
        inputs = features if layout == "channels_last" else [
            np.transpose(f, (0, 3, 1, 2)) for f in features]
        values[layout] = float(to_numpy(loss([keras.ops.convert_to_tensor(f)
                                             for f in inputs])))
        assert loss.pool_sizes == [(2, 2), (4, 4)]
    np.testing.assert_allclose(values["channels_first"],
                               values["channels_last"], rtol=1e-5)
