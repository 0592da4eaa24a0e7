"""Subprocess worker for tests/test_cross_backend.py.

    python -m tests.cross_backend_worker save DIR   # under backend B: build
        models with random weights, save DIR/B/<model>.keras and the logits
        on a fixed input as DIR/B/<model>.npy
    python -m tests.cross_backend_worker check DIR  # under backend B': load
        every other backend's files and print the max abs logit difference

KERAS_BACKEND is set by the caller, before Keras is imported.
"""

import json
import pathlib
import sys

import keras
import numpy as np

import keras_pu

MODELS = {
    "pu_unet": lambda: keras_pu.models.PUUNet(
        input_shape=(32, 32, 3), widths=4, depth=2
    ),
    "res_unet": lambda: keras_pu.models.ResUNet(
        input_shape=(32, 32, 3), widths=4, depth=2, upsampling="bilinear"
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
        logits = model.predict(fixed_input(), verbose=0)
        print(f"{backend} {name}: max |logit| = {np.abs(logits).max():.3g}")
        np.save(out / f"{name}.npy", logits)


def check(root):
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
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    command, directory = sys.argv[1], pathlib.Path(sys.argv[2])
    {"save": save, "check": check}[command](directory)
