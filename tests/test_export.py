"""Export (keras_pu.export and `keras-pu export`): the exported artifact,
run by its own runtime (onnxruntime for ONNX, TensorFlow for a SavedModel),
gives Keras's logits within 1e-4 for a tiny PU-UNet with non-trivial
weights, so the product unit exports correctly. Runs under every backend:
each backend has its own export route."""

import importlib.util

import keras
import numpy as np
import pytest

from keras_pu.cli.main import main as cli_main
from keras_pu.export import check_export_supported
from keras_pu.export import export_model
from keras_pu.export import load_model_for_export
from keras_pu.export import verify_export
from keras_pu.models import PUUNet
from tests.cross_backend_worker import randomize
from tests.test_models import TINY

TOLERANCE = 1e-4


def needs(*modules):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"needs {missing} (pip install 'keras-pu[export]')",
    )


def tiny_pu_unet():
    model = PUUNet(**TINY)
    randomize(model, seed=3)  # exponents and BN statistics far from init
    return model


def images(n=2):
    # Batch 2: not the batch size the exporter traced with (1), and the one
    # verify_export uses (JAX compiles predict once per batch shape).
    return np.random.default_rng(5).normal(size=(n, 32, 32, 3)).astype(
        "float32"
    )


ONNX_MODULES = {
    "tensorflow": ("onnx", "tf2onnx"),
    "jax": ("onnx", "jax2onnx"),
    "torch": ("onnx", "onnxscript"),
}


@needs("onnxruntime", *ONNX_MODULES[keras.backend.backend()])
def test_cli_onnx_export_of_a_keras_file_matches_keras(tmp_path, capsys):
    import onnxruntime

    model = tiny_pu_unet()
    model.save(tmp_path / "pu.keras")
    out = tmp_path / "pu.onnx"
    rc = cli_main(
        ["export", str(tmp_path / "pu.keras"), "--format", "onnx",
         "-o", str(out), "--check"]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "OK" in printed
    # Independently of --check: run the file with onnxruntime.
    session = onnxruntime.InferenceSession(
        str(out), providers=["CPUExecutionProvider"]
    )
    x = images()
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    expected = model.predict(x, verbose=0)
    assert got.shape == expected.shape == (2, 32, 32, 1)
    assert np.max(np.abs(got - expected)) <= TOLERANCE
    assert np.max(np.abs(expected)) > 0.1  # not a degenerate all-zero net


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="SavedModel export needs the tensorflow or jax backend",
)
@needs("tensorflow")
def test_saved_model_export_of_a_model_directory_matches_keras(tmp_path):
    import tensorflow as tf

    model = tiny_pu_unet()
    model.save(tmp_path / "model_dir", zipped=False)  # a preset's layout
    loaded = load_model_for_export(tmp_path / "model_dir")
    out = export_model(loaded, tmp_path / "saved", format="saved_model")
    artifact = tf.saved_model.load(str(out))
    x = images()
    got = np.asarray(artifact.serve(tf.constant(x)))
    expected = model.predict(x, verbose=0)
    assert np.max(np.abs(got - expected)) <= TOLERANCE
    assert verify_export(loaded, out, "saved_model") <= TOLERANCE


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="torch-only limitation"
)
def test_saved_model_under_torch_says_which_backend_to_use(tmp_path, capsys):
    with pytest.raises(ValueError, match="--backend tensorflow"):
        check_export_supported("saved_model")
    model = tiny_pu_unet()
    model.save(tmp_path / "pu.keras")
    rc = cli_main(
        ["export", str(tmp_path / "pu.keras"), "--format", "saved_model",
         "-o", str(tmp_path / "saved")]
    )
    assert rc == 2
    assert "torch_xla" in capsys.readouterr().err
    assert not (tmp_path / "saved").exists()


def test_missing_converter_names_the_package_and_the_extra(monkeypatch):
    import keras_pu.export as export

    monkeypatch.setattr(
        export, "_missing_modules", lambda modules: list(modules)[-1:]
    )
    with pytest.raises(ImportError, match=r"keras-pu\[export\]"):
        check_export_supported("onnx")


@pytest.mark.parametrize(
    "source, message",
    [
        ("does/not/exist.keras", "no such file or directory"),
        ("weights.h5", "expected a .keras file"),
        ("empty_dir", "no config.json"),
    ],
)
def test_bad_sources_are_named(tmp_path, monkeypatch, source, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.h5").write_bytes(b"")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ValueError, match=message) as info:
        load_model_for_export(source)
    assert source in str(info.value)


def test_unknown_format_and_mixed_precision_are_rejected():
    with pytest.raises(ValueError, match="Unknown export format 'tflite'"):
        check_export_supported("tflite")
    model = PUUNet(**TINY, dtype="mixed_bfloat16")
    with pytest.raises(ValueError, match="needs float32"):
        export_model(model, "unused.onnx", format="onnx")
