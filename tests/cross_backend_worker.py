"""Saves and checks models for tests/test_cross_backend.py.

    python -m tests.cross_backend_worker DIR [--check] [--save]

Under the backend in KERAS_BACKEND (set by the caller before Keras is
imported): with --check, loads every other backend's saved models found in
DIR and prints the max abs logit difference against the logits that backend
recorded; with --save, builds the models with perturbed weights and saves
DIR/<backend>/<model>.keras and the logits on a fixed input.
"""

import json
import pathlib
import sys

import keras
import numpy as np

import keras_pu
from keras_pu.models.efficientnet_lite import EncoderPUUNet

MODELS = {
    "pu_unet": lambda: keras_pu.models.PUUNet(
        input_shape=(32, 32, 3), widths=4, depth=2
    ),
    "res_unet": lambda: keras_pu.models.ResUNet(
        input_shape=(32, 32, 3), widths=4, depth=2, upsampling="bilinear"
    ),
    # The U-Net on the EfficientNet-Lite0 encoder (random weights: the
    # ImageNet port itself is checked per backend in test_efficientnet_lite).
    "encoder_pu_unet": lambda: EncoderPUUNet(
        input_shape=(32, 32, 3), decoder_widths=(16, 8, 8, 8, 4, 4),
        encoder_weights=None,
    ),
}


def fixed_input():
    return np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(
        "float32"
    )


def randomize(model, seed):
    """Perturbs every weight, batch-norm statistics included, so that a weight
    loaded into the wrong place cannot go unnoticed, while keeping the
    activations at a realistic scale (logits of order 1-10)."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        if w.ndim == 1:  # biases, BN gamma/beta/mean/variance
            values = rng.uniform(0.5, 1.5, size=w.shape)
        else:  # kernels: the initial values, scaled per element
            values = w * rng.uniform(0.5, 1.5, size=w.shape)
        weights.append(values.astype(w.dtype))
    model.set_weights(weights)


def save(root):
    backend = keras.backend.backend()
    out = root / backend
    out.mkdir(parents=True, exist_ok=True)
    for i, (name, build) in enumerate(MODELS.items()):
        model = build()
        randomize(model, seed=i)
        model.save(out / f"{name}.keras")
        np.save(out / f"{name}.npy", model.predict(fixed_input(), verbose=0))


def check(root):
    """Returns {"<source>-><this backend>:<model>": max abs difference}."""
    backend = keras.backend.backend()
    results = {}
    for source in sorted(p for p in root.iterdir() if p.is_dir()):
        if source.name == backend:
            continue
        for name in MODELS:
            model = keras.saving.load_model(source / f"{name}.keras")
            logits = model.predict(fixed_input(), verbose=0)
            expected = np.load(source / f"{name}.npy")
            results[f"{source.name}->{backend}:{name}"] = float(
                np.max(np.abs(logits - expected))
            )
    return results


if __name__ == "__main__":
    directory = pathlib.Path(sys.argv[1])
    if "--check" in sys.argv:
        print("RESULT " + json.dumps(check(directory)))
    if "--save" in sys.argv:
        save(directory)
