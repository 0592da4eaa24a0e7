"""EfficientNet-Lite0: the ImageNet port, the feature pyramid, weights
loading and integrity, serialisation.

The ImageNet test compares, under the backend of this session, the Keras
model's probabilities on scikit-image's sample photographs with those of the
reference PyTorch model, stored in tests/fixtures/ by
scripts/convert_efficientnet_lite0.py (torch is not needed here). The suite
runs once per backend, so TensorFlow, PyTorch and JAX are all checked.
"""

import hashlib
import json
import shutil

import keras
import numpy as np
import pytest

from keras_pu.layers import ProductUnitResidualBlock
from keras_pu.layers import ResidualBlock
from keras_pu.models.efficientnet_lite import EfficientNetLite0
from keras_pu.models.efficientnet_lite import EncoderPUUNet
from keras_pu.models.efficientnet_lite import EncoderResUNet
from keras_pu.models.efficientnet_lite import PYRAMID_CHANNELS
from keras_pu.models.efficientnet_lite import pyramid_layer_names
from keras_pu.selfreg import SelfRegLoss
from keras_pu.zoo import backbones as weights_lib
from keras_pu.zoo.backbones import imagenet_weights_path
from keras_pu.zoo.errors import IntegrityError
from keras_pu.zoo.errors import ZooError
from tests._backend_utils import NO_CHANNELS_FIRST_REASON
from tests._backend_utils import backend_runs_channels_first
from tests.conftest import REPO_ROOT

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "efficientnet_lite0_imagenet_reference.json"
WEIGHTS = REPO_ROOT / "zoo" / "backbones" / "efficientnet_lite0_imagenet" / "model.weights.h5"
ATOL = 1e-4


def sample_image(name, size):
    """Same as scripts/convert_efficientnet_lite0.py::sample_image."""
    skimage_data = pytest.importorskip(
        "skimage.data",
        reason="scikit-image is needed for the sample photographs "
        "(pip install keras-pu[test])",
    )
    from PIL import Image

    image = getattr(skimage_data, name)()
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    image = image[top:top + s, left:left + s, :3]
    pil = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(pil, dtype=np.uint8)


@pytest.fixture(scope="module")
def imagenet_model():
    if not WEIGHTS.is_file():
        pytest.skip(f"{WEIGHTS} is not in this checkout")
    return EfficientNetLite0(input_shape=(224, 224, 3), weights="imagenet")


def test_imagenet_photographs_match_the_reference_pytorch_model(imagenet_model):
    fixture = json.loads(FIXTURE.read_text())
    names = list(fixture["images"])
    images = []
    for name in names:
        image = sample_image(name, fixture["size"])
        expected = fixture["images"][name]["input_sha256"]
        if hashlib.sha256(image.tobytes()).hexdigest() != expected:
            pytest.skip(
                f"scikit-image/Pillow produce a different {name!r} input "
                "than when the fixture was made; regenerate it with "
                "scripts/convert_efficientnet_lite0.py"
            )
        images.append(image)
    probs = imagenet_model.predict(np.stack(images).astype("float32"), verbose=0)
    assert probs.shape == (len(names), 1000)
    for i, name in enumerate(names):
        ref = fixture["images"][name]
        top5 = list(np.argsort(-probs[i], kind="stable")[:5])
        assert top5[0] == ref["top5_classes"][0], (name, top5, ref["top5_classes"])
        np.testing.assert_allclose(
            probs[i][ref["top5_classes"]], ref["top5_probabilities"],
            atol=ATOL, rtol=0, err_msg=f"{name} ({keras.backend.backend()})",
        )
    # The weights the fixture was made from are the committed ones.
    assert weights_lib.backbone_entry()["files"]["model.weights.h5"]["sha256"] == (
        fixture["weights_sha256"]
    )


def test_parameter_count_matches_the_converted_checkpoint(imagenet_model):
    assert imagenet_model.count_params() == weights_lib.backbone_entry()["parameters"]


def test_encoder_without_top_gets_the_same_weights_by_name(imagenet_model):
    encoder = EfficientNetLite0(
        input_shape=(64, 64, 3), include_top=False, weights="imagenet"
    )
    for name in ("stem_conv", "block7_dw_bn", "block15_project_conv"):
        for a, b in zip(
            encoder.get_layer(name).get_weights(),
            imagenet_model.get_layer(name).get_weights(),
        ):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pyramid_has_strides_2_to_32(data_format):
    shape = (64, 64, 3) if data_format == "channels_last" else (3, 64, 64)
    model = EfficientNetLite0(
        input_shape=shape, include_top=False, data_format=data_format,
        compute_data_format=data_format,
    )
    names = pyramid_layer_names()
    assert sorted(names) == [2, 4, 8, 16, 32]
    assert len(model.outputs) == 5
    # The features come in the compute layout: channels-first as asked,
    # except under TensorFlow on a CPU that cannot run it (channels-last).
    layout = model.compute_data_format
    if backend_runs_channels_first():
        assert layout == data_format
    for stride, tensor in zip(sorted(names), model.outputs):
        spatial = (64 // stride, 64 // stride)
        channels = PYRAMID_CHANNELS[stride]
        expected = (None, *spatial, channels) if layout == "channels_last" else (
            None, channels, *spatial
        )
        assert tuple(tensor.shape) == expected
        assert tuple(model.get_layer(names[stride]).output.shape) == expected


def test_compute_layouts_give_the_same_features():
    if not backend_runs_channels_first():
        pytest.skip(NO_CHANNELS_FIRST_REASON)
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    last = EfficientNetLite0(
        input_shape=(32, 32, 3), include_top=False, input_scale=1.0,
        compute_data_format="channels_last",
    )
    first = EfficientNetLite0(
        input_shape=(32, 32, 3), include_top=False, input_scale=1.0,
        compute_data_format="channels_first",
    )
    first.set_weights(last.get_weights())
    a = last.predict(x, verbose=0)[-1]
    b = np.transpose(first.predict(x, verbose=0)[-1], (0, 2, 3, 1))
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_input_scale_only_changes_the_normalisation():
    x255 = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3)).astype("float32")
    a = EfficientNetLite0(input_shape=(32, 32, 3), include_top=False)
    b = EfficientNetLite0(input_shape=(32, 32, 3), include_top=False, input_scale=1.0)
    b.set_weights(a.get_weights())
    np.testing.assert_allclose(
        a.predict(x255, verbose=0)[-1], b.predict(x255 / 255.0, verbose=0)[-1],
        atol=1e-4,
    )


def test_save_and_load_round_trip_without_custom_objects(tmp_path):
    model = EfficientNetLite0(
        input_shape=(32, 32, 3), classes=7, classifier_activation=None,
    )
    x = np.random.default_rng(2).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    path = tmp_path / "lite0.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is EfficientNetLite0
    assert loaded.get_config() == model.get_config()
    out, out_loaded = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    assert out.shape == (1, 7)
    np.testing.assert_allclose(out, out_loaded, atol=1e-5)


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    if not WEIGHTS.is_file():
        pytest.skip(f"{WEIGHTS} is not in this checkout")
    folder = tmp_path / "efficientnet_lite0_imagenet"
    folder.mkdir()
    copy = folder / "model.weights.h5"
    shutil.copyfile(WEIGHTS, copy)
    with open(copy, "r+b") as f:
        f.seek(-100, 2)
        byte = f.read(1)
        f.seek(-100, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setenv(weights_lib.WEIGHTS_DIR_ENV, str(tmp_path))
    with pytest.raises(IntegrityError, match="altered"):
        imagenet_weights_path()


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv(weights_lib.WEIGHTS_DIR_ENV, str(tmp_path / "a"))
    monkeypatch.setenv("KERAS_PU_ZOO_DIR", str(tmp_path / "b"))
    monkeypatch.setattr("keras_pu.zoo.sources.companion_dir", lambda: None)
    with pytest.raises(ZooError, match="KERAS_PU_BACKBONE_WEIGHTS_DIR") as e:
        imagenet_weights_path()
    assert "keras-pu[presets]" in str(e.value)


def test_weights_are_found_in_the_companion_package(tmp_path, monkeypatch):
    """A pip install without the Hub: keras-pu-presets ships the backbone
    under backbones/ (packaging/keras-pu-presets/setup.py)."""
    if not WEIGHTS.is_file():
        pytest.skip(f"{WEIGHTS} is not in this checkout")
    companion = tmp_path / "keras_pu_presets"
    folder = companion / "backbones" / "efficientnet_lite0_imagenet"
    folder.mkdir(parents=True)
    shutil.copyfile(WEIGHTS, folder / "model.weights.h5")
    monkeypatch.delenv(weights_lib.WEIGHTS_DIR_ENV, raising=False)
    monkeypatch.setenv("KERAS_PU_ZOO_DIR", str(tmp_path / "no_zoo"))
    monkeypatch.setattr("keras_pu.zoo.sources.companion_dir",
                        lambda: companion)
    assert imagenet_weights_path() == str(folder / "model.weights.h5")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_shape=(32, 32, 1)), "RGB images"),
        (dict(weights="imagenet", classes=10), "1000 classes"),
        (dict(weights="model.h5"), "'.weights.h5'"),
        (dict(include_top=False, input_scale=0), "input_scale"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EfficientNetLite0(**kwargs)


# --------------------------------------------------------------------------
# U-Nets on the encoder
# --------------------------------------------------------------------------

# Small decoder and images: the encoder is the real Lite0 (3 M parameters).
UNET = dict(input_shape=(32, 32, 3), decoder_widths=(16, 8, 8, 8, 4, 4),
            encoder_weights=None)


def test_pu_and_res_unets_on_the_encoder_have_equal_parameters():
    pu = EncoderPUUNet(**UNET)
    res = EncoderResUNet(**UNET)
    assert pu.count_params() == res.count_params()
    # The models keep their own names (a decoder loop once overwrote them).
    assert (pu.name, res.name) == ("encoder_pu_unet", "encoder_res_unet")
    assert EncoderPUUNet(**UNET, name="polyps").name == "polyps"
    kinds = {l.name: type(l) for l in pu.layers if isinstance(l, ResidualBlock)}
    assert kinds == {
        "decoder_stage_32": ProductUnitResidualBlock,
        "decoder_stage_16": ProductUnitResidualBlock,
        "decoder_stage_8": ResidualBlock,
        "decoder_stage_4": ResidualBlock,
        "decoder_stage_2": ResidualBlock,
        "decoder_stage_1": ResidualBlock,
    }
    assert not any(isinstance(l, ProductUnitResidualBlock) for l in res.layers)
    # SelfReg roles name layers of the model, teacher at full resolution.
    roles = pu.feature_layers
    for name in roles["encoder"] + roles["decoder"] + [roles["teacher"]]:
        pu.get_layer(name)
    assert tuple(pu.get_layer(roles["teacher"]).output.shape)[1:3] in (
        (32, 32), (4, 32),  # channels last / channels first compute layout
    )
    assert len(pu.encoder_layers) > 100
    assert all(l.name not in roles["decoder"] for l in pu.encoder_layers)


def test_unet_gets_the_imagenet_encoder(imagenet_model):
    model = EncoderPUUNet(**dict(UNET, encoder_weights="imagenet"))
    for name in ("stem_bn", "block9_expand_conv", "block15_project_bn"):
        for a, b in zip(model.get_layer(name).get_weights(),
                        imagenet_model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_unet_save_and_load_round_trip(tmp_path):
    model = EncoderPUUNet(**UNET)
    x = np.random.default_rng(3).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    path = tmp_path / "unet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is EncoderPUUNet
    assert loaded.get_config() == model.get_config()
    assert loaded.get_config()["encoder_weights"] is None
    expected = model.predict(x, verbose=0)
    assert expected.shape == (2, 32, 32, 1)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-5)


def test_unet_features_feed_selfreg():
    model = EncoderPUUNet(**UNET)
    roles = model.feature_layers
    loss = SelfRegLoss(
        roles["encoder"], roles["decoder"], roles["teacher"], seed=0,
        data_format=model.compute_data_format,
    )
    graph = keras.Model(
        model.inputs, [model.get_layer(n).output for n in loss.layer_names]
    )
    x = np.random.default_rng(5).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    features = graph.predict(x, verbose=0)
    # As SegmentationModel.attach_feature_loss does: shapes in the model's
    # layout.
    loss.build([f.shape for f in features])
    value = float(keras.ops.convert_to_numpy(
        loss([keras.ops.convert_to_tensor(f) for f in features])
    ))
    assert np.isfinite(value) and value > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_shape=(48, 48, 3)), "multiple of 32"),
        (dict(input_shape=(32, 32, 1)), "RGB"),
        (dict(encoder="resnet50"), "unknown encoder"),
        (dict(pu_stages=(64,)), "unknown decoder stage 64"),
        (dict(decoder_widths=(8, 8)), "decoder_widths"),
    ],
)
def test_unet_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EncoderPUUNet(**dict(UNET, **kwargs))


def test_unet_exports_to_onnx_with_keras_logits(tmp_path):
    from keras_pu.export import export_model
    from keras_pu.export import verify_export
    from tests.cross_backend_worker import randomize
    from tests.test_export import ONNX_MODULES

    import importlib.util

    missing = [
        m for m in ("onnxruntime", *ONNX_MODULES[keras.backend.backend()])
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        pytest.skip(f"needs {missing} (pip install 'keras-pu[export]')")
    model = EncoderPUUNet(**UNET)
    randomize(model, seed=3)
    path = export_model(model, tmp_path / "unet.onnx", format="onnx")
    assert verify_export(model, path, "onnx") <= 1e-4
