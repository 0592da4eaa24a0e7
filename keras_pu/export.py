"""Export a trained model for deployment: ONNX or TensorFlow SavedModel.

Export goes through Keras's own `model.export`, which takes a different
route on each backend; this module checks the route before starting, so that
an unsupported combination or a missing converter is a clear error instead
of a traceback from deep inside a converter:

    format        tensorflow       jax                  torch
    onnx          tf2onnx (onnx)   jax2onnx (onnx)      torch.onnx (onnxscript)
    saved_model   native           jax2tf (tensorflow)  not supported

A SavedModel is TensorFlow's own format: Keras writes it natively under
TensorFlow, and under JAX by converting the JAX function with jax2tf (so
TensorFlow must be installed). Under PyTorch, Keras can only reach it through
torch_xla (PyTorch -> StableHLO -> TensorFlow), which keras-pu does not
depend on. A `.keras` file is the same under every backend, so export a
SavedModel with `keras-pu --backend tensorflow export ...` instead.

`verify_export` runs the exported artifact (onnxruntime for ONNX, TensorFlow
for a SavedModel) and returns its largest difference from Keras's own output
on the same input.

The converters live in the `export` extra: `pip install "keras-pu[export]"`.
"""

import contextlib
import importlib.util
import pathlib
import warnings

FORMATS = ("onnx", "saved_model")

# Keras's name for each format.
_KERAS_FORMAT = {"onnx": "onnx", "saved_model": "tf_saved_model"}

# (format, backend) -> modules Keras's exporter imports on that route.
_REQUIRED_MODULES = {
    ("onnx", "tensorflow"): ("onnx", "tf2onnx"),
    ("onnx", "jax"): ("onnx", "jax2onnx"),
    ("onnx", "torch"): ("onnx", "onnxscript"),
    ("saved_model", "tensorflow"): ("tensorflow",),
    ("saved_model", "jax"): ("tensorflow",),
}

# Modules that run an exported artifact, for `verify_export`.
_RUNTIME_MODULES = {"onnx": ("onnxruntime",), "saved_model": ("tensorflow",)}

_UNSUPPORTED = {
    ("saved_model", "torch"): (
        "Exporting a TensorFlow SavedModel is not supported under the torch "
        "backend: a SavedModel is TensorFlow's format, which Keras writes "
        "natively under tensorflow and through jax2tf under jax, but under "
        "torch only through torch_xla, which keras-pu does not depend on. "
        "The .keras file is the same under every backend: export it with "
        "`keras-pu --backend tensorflow export ... --format saved_model` "
        "(or KERAS_BACKEND=tensorflow), or choose --format onnx."
    ),
}


def _missing_modules(modules):
    return [m for m in modules if importlib.util.find_spec(m) is None]


def check_export_supported(format, backend=None):
    """Raises a ValueError (unsupported combination) or an ImportError
    (missing converter) naming what to do; returns None when `format` can be
    exported under `backend` (default: the running Keras backend)."""
    import keras

    backend = backend or keras.backend.backend()
    if format not in FORMATS:
        raise ValueError(
            f"Unknown export format {format!r}: choose one of {FORMATS}."
        )
    if (format, backend) in _UNSUPPORTED:
        raise ValueError(_UNSUPPORTED[(format, backend)])
    required = _REQUIRED_MODULES.get((format, backend))
    if required is None:
        raise ValueError(
            f"Export is not supported under the {backend!r} backend; use "
            "tensorflow, jax or torch."
        )
    missing = _missing_modules(required)
    if missing:
        raise ImportError(
            f"Exporting {format} under the {backend} backend needs "
            f"{', '.join(missing)}, which is not installed. Install the "
            "converters with: pip install \"keras-pu[export]\""
        )


def load_model_for_export(source):
    """Loads the model to export from `source`: a `.keras` file, a Keras
    model directory (config.json + model.weights.h5, the layout of a preset
    folder), a training run folder, a preset name or an `hf://` handle
    (`keras_pu.inference.load_segmentation_model`, the one loader)."""
    from keras_pu.inference import load_segmentation_model

    model, _ = load_segmentation_model(source)
    return model


def _sample_shape(model, batch_size=1):
    """A concrete input shape: the model's, with unknown sizes filled in.
    Unknown spatial sizes become the smallest multiple of 2**depth >= 64."""
    shape = list(model.inputs[0].shape)
    depth = getattr(model, "depth", 4)
    size = max(64, 2**depth)
    shape[0] = batch_size
    channels_first = getattr(model, "data_format", "") == "channels_first"
    channel_axis = 1 if channels_first else -1
    for i in range(1, len(shape)):
        if shape[i] is None:
            if i == channel_axis % len(shape):
                raise ValueError(
                    "The model's input has an unknown channel count; "
                    "rebuild it with a known one before exporting."
                )
            shape[i] = size
    return tuple(shape)


def export_model(model, output, format="onnx", verbose=False,
                 overwrite=False):
    """Exports `model` for inference with Keras's `model.export`.

    Args:
        model: a built `keras.Model`, or what `load_model_for_export` takes
            (a `.keras` file, a model directory or a preset name).
        output: path of the artifact: a file for `"onnx"` (e.g.
            `model.onnx`), a directory for `"saved_model"`.
        format: `"onnx"` or `"saved_model"`. Defaults to `"onnx"`.
        verbose: whether Keras prints its export messages. Defaults to
            `False`.
        overwrite: replace an existing file or folder at `output`.
            Defaults to `False`: an existing `output` raises
            `keras_pu.atomic_files.OverwriteError` before any work.

    The artifact is written to a temporary path beside `output` and renamed
    into place, so a failure (a full disk, a converter error) leaves the old
    artifact, if any, as it was and no temporary files behind.

    Returns:
        The path of the artifact, a `pathlib.Path`.

    The batch size stays dynamic (spatial sizes too, where the model's are
    unknown and the route allows it). The model must use the float32 dtype
    policy (ONNX has no mixed-precision Keras layers); the product units
    compute in float32 anyway.

    Example:

    ```python
    import keras_pu
    from keras_pu.export import export_model, verify_export

    model = keras_pu.models.PUUNet(input_shape=(256, 256, 3))
    path = export_model(model, "pu_unet.onnx", format="onnx")
    print(verify_export(model, path, format="onnx"))  # max |difference|
    ```
    """
    import keras
    import numpy as np

    from keras_pu import atomic_files

    check_export_supported(format)
    atomic_files.check_overwrite(output, overwrite)
    if not isinstance(model, keras.Model):
        model = load_model_for_export(model)
    mixed = [
        layer.dtype_policy.name
        for layer in model._flatten_layers()
        if keras.backend.standardize_dtype(layer.dtype_policy.compute_dtype)
        != "float32"
    ]
    if mixed:
        raise ValueError(
            f"Model '{model.name}' uses the '{mixed[0]}' dtype policy; "
            "export needs float32. Rebuild it with dtype='float32' and load "
            "the weights (model.save_weights / load_weights)."
        )
    # Keras exports only models that have been called eagerly (JAX's route
    # reads the traced signature); one call on zeros is enough.
    model(np.zeros(_sample_shape(model), "float32"), training=False)
    output = pathlib.Path(output)
    if output.parent and not output.parent.exists():
        output.parent.mkdir(parents=True)
    with _without_torch_tracer_warnings(), atomic_files.atomic_path(
            output) as tmp:
        model.export(str(tmp), format=_KERAS_FORMAT[format], verbose=verbose)
    return output


@contextlib.contextmanager
def _without_torch_tracer_warnings():
    """Under torch, ONNX export traces the model with torch.jit, which warns
    once per Python number it records as a constant (~160 TracerWarnings for
    a small U-Net, all expected: export fixes the shapes). Hidden for the
    export call only; `verify_export` / `--check` compare the result."""
    import keras

    with warnings.catch_warnings():
        if keras.backend.backend() == "torch":
            import torch

            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def run_exported(path, format, images):
    """Runs an exported artifact on `images` (a float32 numpy batch) with
    onnxruntime (ONNX) or TensorFlow (SavedModel) and returns numpy logits."""
    import numpy as np

    missing = _missing_modules(_RUNTIME_MODULES[format])
    if missing:
        raise ImportError(
            f"Running a {format} artifact needs {', '.join(missing)}: pip "
            "install \"keras-pu[export]\""
        )
    images = np.asarray(images, "float32")
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
        name = session.get_inputs()[0].name
        return session.run(None, {name: images})[0]
    import tensorflow as tf

    artifact = tf.saved_model.load(str(path))
    return np.asarray(artifact.serve(tf.constant(images)))


def verify_export(model, path, format, images=None, seed=0):
    """Largest absolute difference between Keras's logits and the exported
    artifact's on the same input (random images of the model's input shape,
    batch 2, unless `images` is given)."""
    import numpy as np

    if images is None:
        shape = _sample_shape(model, batch_size=2)
        images = np.random.default_rng(seed).normal(size=shape)
    images = np.asarray(images, "float32")
    expected = np.asarray(model.predict(images, verbose=0))
    got = run_exported(path, format, images)
    if got.shape != expected.shape:
        raise AssertionError(
            f"The exported {format} model returned shape {got.shape}, Keras "
            f"returned {expected.shape}."
        )
    return float(np.max(np.abs(got - expected)))
