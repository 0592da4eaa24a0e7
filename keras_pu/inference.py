"""Segmenting images of any size with a trained model: what `keras-pu
evaluate` and `keras-pu predict` run.

`load_segmentation_model(spec)` is keras-pu's one model loader (predict,
evaluate and export use it; presets and `hf://` handles go through
`keras_pu.zoo.load`). It takes a `.keras` file, a training run folder
(`keras-pu train --output`), a Keras model directory (a preset folder:
config.json + model.weights.h5), a preset name or an `hf://` handle, and
returns the model with the training record (`recipe.json`, read as plain
JSON) found next to it. Inference needs nothing of `keras_pu.training`.
A `Segmenter` then turns images of any size into probability maps at their
original size:

1. the image is read exactly as the training pipeline reads it
   (`keras_pu.data.pipeline.preprocess_image`: RGB, 8-bit, resized
   bilinearly to the model's input size, scaled to [0, 1]);
2. the model's logits become probabilities (sigmoid), optionally averaged
   over horizontal/vertical flips (test-time augmentation);
3. the probability map is resized back to the image's original size
   (bilinear), and only then thresholded, so masks and scores are at the
   original resolution.
"""

import json
import os
import pathlib

import keras
import numpy as np
from PIL import Image

TTA_MODES = ("none", "hflip", "vflip", "flip")
RUN_MODEL = "model.keras"
RECIPE_FILE = "recipe.json"


class ModelLoadError(ValueError):
    """A model spec that names no loadable model."""


def _find_recipe(*folders):
    """The training record next to a model (`recipe.json`, the complete
    recipe `keras-pu train` saved), as a plain dict, or None. Inference
    reads only `data` (image size, layout, split) and `training.seed`."""
    for folder in folders:
        path = pathlib.Path(folder) / RECIPE_FILE
        if path.is_file():
            try:
                recipe = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ModelLoadError(
                    f"'{path}' is not valid JSON ({e}); restore the run's "
                    "recipe.json or remove it and give --image-size."
                ) from None
            if not isinstance(recipe, dict) or not isinstance(
                recipe.get("data"), dict
            ):
                raise ModelLoadError(
                    f"'{path}' is not a keras-pu recipe (no 'data' section)."
                )
            return recipe
    return None


def load_model_file(path):
    """keras.saving.load_model, with a damaged file as a ModelLoadError.

    Keras reports a truncated or corrupt .keras/.h5 in many ways (OSError
    from h5py, zipfile.BadZipFile, KeyError, even UnboundLocalError); the
    user needs to know which file and what to do. Unsafe configs and
    missing classes stay ValueErrors with Keras's own message."""
    import zipfile

    try:
        return keras.saving.load_model(path, compile=False)
    except ValueError:
        raise
    except (OSError, EOFError, KeyError, zipfile.BadZipFile,
            UnboundLocalError, AttributeError) as e:
        raise ModelLoadError(
            f"cannot load the model at '{path}': the file is damaged or "
            f"incomplete ({type(e).__name__}: {e}). Download or copy it "
            "again, or retrain."
        ) from None


def load_segmentation_model(spec):
    """Loads a model for inference; returns `(model, recipe_or_None)`.

    Args:
        spec: a `.keras` file; a run folder (holding `model.keras` and
            `recipe.json`); a Keras model directory (`config.json` +
            `model.weights.h5`, e.g. a preset folder, with its `recipe.json`
            if present); a preset name or an `hf://org/repo[@revision]`
            handle (`keras_pu.zoo.load`, checksums verified).

    Returns:
        `(model, recipe)`: the uncompiled model, and the training recipe
        saved next to it as a plain dict (`None` if there is none).

    Raises:
        ModelLoadError: nothing loadable at `spec`, or a damaged model
            file; the message says what was expected.

    Example:

    ```python
    from keras_pu.inference import load_segmentation_model

    model, recipe = load_segmentation_model("runs/pu_unet_kvasir")
    model, _ = load_segmentation_model("pu_unet_busi")  # a preset
    ```
    """
    import keras_pu.models  # noqa: F401  (registers the keras-pu classes)

    if str(spec).startswith("hf://"):
        from keras_pu import zoo

        return zoo.load(str(spec)), None
    path = pathlib.Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".keras":
            raise ModelLoadError(
                f"'{path}' is not a Keras model file: expected a .keras file,"
                " a training run folder or a preset folder."
            )
        model = load_model_file(path)
        # A run's checkpoints/ and model.keras: the recipe is nearby.
        return model, _find_recipe(path.parent, path.parent.parent)
    if path.is_dir():
        if (path / RUN_MODEL).is_file():
            model = load_model_file(path / RUN_MODEL)
            return model, _find_recipe(path)
        if (path / "config.json").is_file():
            model = load_model_file(path)
            return model, _find_recipe(path)
        raise ModelLoadError(
            f"'{path}' holds no model: it has no config.json. Expected "
            f"{RUN_MODEL} (a keras-pu training run) or config.json + "
            "model.weights.h5 (a Keras model folder, e.g. a preset)."
        )
    is_name = "/" not in str(spec) and os.sep not in str(spec) and (
        "." not in path.name
    )
    if is_name:
        from keras_pu import zoo

        return zoo.load(str(spec)), None
    raise ModelLoadError(
        f"No model at '{spec}': no such file or directory. Give a .keras "
        "file, a run folder (keras-pu train --output), a Keras model folder,"
        " a preset name or an hf:// handle."
    )


def model_input_size(model, recipe=None, image_size=None):
    """(height, width, channels) the model is fed at.

    `image_size` wins; otherwise the model's fixed input size, else the
    recipe's `data.image_size`.
    """
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    data_format = getattr(model, "data_format", "channels_last")
    if data_format == "channels_first":
        channels, height, width = shape[1:]
    else:
        height, width, channels = shape[1:]
    if channels != 3:
        raise ValueError(
            f"Model '{model.name}' expects {channels}-channel images, but "
            "keras-pu feeds models RGB images (3 channels; grayscale is "
            "replicated, alpha composited on black), as in training. Use a "
            "model built with input_shape=(height, width, 3)."
        )
    if image_size is not None:
        height, width = image_size
    elif height is None or width is None:
        if recipe is None:
            raise ValueError(
                f"Model '{model.name}' accepts any image size and no recipe "
                "says which size it was trained at: give --image-size."
            )
        height, width = recipe["data"]["image_size"]
    return int(height), int(width), int(channels)


def resize_probabilities(probabilities, size):
    """Bilinear resize of a float (H, W) map to `size` = (height, width)."""
    height, width = size
    if probabilities.shape == (height, width):
        return probabilities.astype(np.float32)
    image = Image.fromarray(probabilities.astype(np.float32), mode="F")
    resized = image.resize((width, height), Image.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


class Segmenter:
    """Probability maps at the original image size from a binary model.

    Args:
        model: a keras-pu (or any one-logit-per-pixel) segmentation model.
        image_size: (height, width) to feed the model. Defaults to the
            model's input size (or the recipe's image size).
        recipe: the model's training recipe (a dict or
            `keras_pu.training.Recipe`), if known.
        tta: test-time augmentation: `"none"` (default), `"hflip"`,
            `"vflip"` or `"flip"` (both flips and the identity, averaged).
        batch_size: images per forward pass. Defaults to `8`.

    Example:

    ```python
    from keras_pu.inference import Segmenter, load_segmentation_model

    model, recipe = load_segmentation_model("runs/pu_unet_kvasir")
    segmenter = Segmenter(model, recipe=recipe, tta="flip")
    probabilities = segmenter.predict_files(["polyp.jpg"])[0]
    mask = probabilities > 0.5          # original size of polyp.jpg
    ```
    """

    def __init__(self, model, image_size=None, recipe=None, tta="none",
                 batch_size=8):
        if tta not in TTA_MODES:
            raise ValueError(
                f"tta must be one of {TTA_MODES}; got {tta!r}."
            )
        if model.output_shape[-1] != 1:
            raise ValueError(
                f"Model '{model.name}' has {model.output_shape[-1]} output "
                "channels; evaluate and predict handle binary models (one "
                "logit per pixel)."
            )
        self.model = model
        self.height, self.width, self.channels = model_input_size(
            model, recipe, image_size
        )
        self.tta = tta
        self.batch_size = int(batch_size)
        self.channels_first = (
            getattr(model, "data_format", "channels_last") == "channels_first"
        )

    def read(self, path):
        """(model input float32 (H, W, 3) in [0, 1], original (h, w)): the
        conversion the training pipeline applies
        (`keras_pu.data.pipeline.preprocess_image`)."""
        from keras_pu.data import image_size as header_size
        from keras_pu.data import preprocess_image

        pixels = preprocess_image(path, (self.height, self.width))
        return pixels, header_size(path)

    def _forward(self, batch):
        n = len(batch)
        if n < self.batch_size:
            # Pad to the full batch: backends that compile per shape (JAX)
            # compile once.
            pad = np.zeros((self.batch_size - n,) + batch.shape[1:], batch.dtype)
            batch = np.concatenate([batch, pad])
        x = np.transpose(batch, (0, 3, 1, 2)) if self.channels_first else batch
        # predict_on_batch runs the compiled predict function (one trace
        # for the fixed batch shape).
        logits = np.asarray(self.model.predict_on_batch(x))
        if self.channels_first:
            logits = np.transpose(logits, (0, 2, 3, 1))
        return _sigmoid(logits[:n, ..., 0].astype(np.float32))

    def probabilities(self, batch):
        """Probabilities (N, H, W) at the model size for a float batch
        (N, H, W, C) in [0, 1], with the configured test-time augmentation."""
        batch = np.asarray(batch, np.float32)
        maps = [self._forward(batch)]
        if self.tta in ("hflip", "flip"):
            maps.append(self._forward(batch[:, :, ::-1])[:, :, ::-1])
        if self.tta in ("vflip", "flip"):
            maps.append(self._forward(batch[:, ::-1])[:, ::-1])
        return np.mean(maps, axis=0)

    def predict_arrays(self, inputs, original_sizes):
        """Probability maps at `original_sizes` for model-size inputs."""
        out = []
        for start in range(0, len(inputs), self.batch_size):
            batch = np.stack(inputs[start:start + self.batch_size])
            probs = self.probabilities(batch)
            for p, size in zip(probs, original_sizes[start:start + self.batch_size]):
                out.append(resize_probabilities(p, size))
        return out

    def predict_files(self, paths):
        """Probability maps, each at its file's original size."""
        inputs, sizes = zip(*(self.read(p) for p in paths)) if paths else ((), ())
        return self.predict_arrays(list(inputs), list(sizes))


def overlay(image, mask, truth=None, color=(255, 64, 32), alpha=0.4,
            truth_color=(255, 220, 0), caption=None):
    """RGB uint8 overlay: the mask tinted over the image, with its outline;
    optionally the true outline and a caption bar below. keras-pu's one
    overlay (`keras-pu predict` and `keras-pu demo` write it).

    Args:
        image: uint8 (H, W, 3) or (H, W, 1) image.
        mask: boolean (H, W) mask of the same size.
        truth: optional boolean (H, W) ground truth, drawn as an outline.
        color: RGB colour of the fill and outline.
        alpha: opacity of the fill.
        truth_color: RGB colour of the true outline.
        caption: optional text, or a list of lines, written on a dark bar
            below the image.

    Returns:
        uint8 (H, W, 3), or (H + bar, W, 3) with a caption.

    Example:

    ```python
    import numpy as np
    from keras_pu.inference import overlay

    image = np.zeros((64, 64, 3), "uint8")
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:40] = True
    rgb = overlay(image, mask, caption="a square")
    ```
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    out = image.astype(np.float32)
    color = np.asarray(color, np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * color
    # Outline: mask minus its erosion, thicker on large images.
    thickness = max(1, round(min(mask.shape) / 256))
    eroded = mask.copy()
    for _ in range(thickness):
        shrunk = eroded.copy()
        shrunk[1:] &= eroded[:-1]
        shrunk[:-1] &= eroded[1:]
        shrunk[:, 1:] &= eroded[:, :-1]
        shrunk[:, :-1] &= eroded[:, 1:]
        eroded = shrunk
    out[mask & ~eroded] = color
    if truth is not None:
        truth = np.asarray(truth, bool)
        out[truth & ~_eroded(truth)] = np.asarray(truth_color, np.float32)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if caption:
        out = np.concatenate([out, _caption_bar(caption, out.shape[1])])
    return out


def _eroded(mask):
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


def _caption_bar(caption, width):
    from PIL import ImageDraw

    lines = [caption] if isinstance(caption, str) else list(caption)
    bar = Image.new("RGB", (width, 4 + 12 * len(lines)), (20, 20, 20))
    draw = ImageDraw.Draw(bar)
    for i, line in enumerate(lines):
        fill = (230, 230, 230) if i == 0 else (170, 170, 170)
        draw.text((4, 2 + 12 * i), line[: width // 6], fill=fill)
    return np.asarray(bar)


def read_json(path):
    return json.loads(pathlib.Path(path).read_text())


def find_gate(spec):
    """The `keras_pu.postprocess.PeakGate` that comes with a model, or None.

    A run folder or Keras model folder holds it as `postprocess.json`
    (written by `keras-pu calibrate`); a `.keras` file has it beside it (or
    one folder up, for a run's checkpoints); a preset name or
    `hf://keras-pu/<preset>` handle has it in the zoo registry (the
    preset's `postprocess` entry), and so does a preset's folder (`zoo/`,
    `keras-pu zoo download`), recognised by its weights' sha256.
    """
    from keras_pu.postprocess import GATE_FILE
    from keras_pu.postprocess import PeakGate
    from keras_pu.zoo.registry import load_registry

    text = str(spec)
    path = pathlib.Path(text).expanduser()
    if path.exists():
        folders = [path] if path.is_dir() else [path.parent, path.parent.parent]
        for folder in folders:
            if (folder / GATE_FILE).is_file():
                return PeakGate.load(folder / GATE_FILE)
        if not path.is_dir():
            return None
        preset = _preset_of_folder(path, load_registry())
    else:
        name = text[len("hf://"):] if text.startswith("hf://") else text
        name = name.split("@")[0]
        registry = load_registry()
        preset = registry.presets.get(name) or registry.preset_for_repo(name)
    if preset is None or preset.postprocess is None:
        return None
    return PeakGate.from_config(
        preset.postprocess["gate"], source=f"preset {preset.name!r}'s gate"
    )


def _preset_of_folder(folder, registry):
    """The registry preset whose weights file is `folder`'s (same sha256),
    or None."""
    from keras_pu.zoo.integrity import sha256_of

    weights = pathlib.Path(folder) / "model.weights.h5"
    if not weights.is_file():
        return None
    size = weights.stat().st_size
    candidates = [
        p for p in registry.presets.values()
        if p.postprocess is not None and "model.weights.h5" in p.files
        and p.files["model.weights.h5"].size == size
    ]
    if not candidates:
        return None
    digest = sha256_of(weights)
    for preset in candidates:
        if preset.files["model.weights.h5"].sha256 == digest:
            return preset
    return None
