"""Saves and checks models for tests/test_cross_backend.py.

    python -m tests.cross_backend_worker DIR [--save] [--check B1,B2,...]

Under the backend in KERAS_BACKEND (set by the caller before Keras is
imported): with --save, builds the models with perturbed weights and saves
DIR/<backend>/<model>.keras, the logits on a fixed input, and a SAVED
marker last; with --check, waits until each named backend has saved, then
loads their models and prints the max abs logit difference against the
logits that backend recorded. One process per backend, all started
together, so covers every ordered pair of backends.
"""

import json
import pathlib
import sys
import time

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
    (out / SAVED).write_text("")


SAVED = "SAVED"


def wait_for(root, backends, timeout=900, poll=0.5):
    """Blocks until every backend in `backends` has saved its models."""
    deadline = time.monotonic() + timeout
    missing = list(backends)
    while missing:
        missing = [b for b in missing if not (root / b / SAVED).is_file()]
        if missing and time.monotonic() > deadline:
            raise TimeoutError(f"no models saved by {missing} in {timeout} s")
        if missing:
            time.sleep(poll)


def check(root, sources):
    """Returns {"<source>-><this backend>:<model>": max abs difference}
    over the models saved by the backends in `sources`."""
    backend = keras.backend.backend()
    wait_for(root, sources)
    results = {}
    for source in (root / name for name in sorted(sources)):
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
    if "--save" in sys.argv:
        save(directory)
    if "--check" in sys.argv:
        sources = sys.argv[sys.argv.index("--check") + 1].split(",")
        print("RESULT " + json.dumps(check(directory, sources)))
