"""Subprocess worker for the zoo tests that need a fresh interpreter:
huggingface_hub reads HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE when it
is imported, and Keras fixes its backend on import.

    python -m tests.zoo_worker online OUT_DIR
        with HF_ENDPOINT at the test server: keras.saving.load_model on
        hf://keras-pu/tiny_pu after `import keras_pu`
    python -m tests.zoo_worker offline OUT_DIR COLD_CACHE DAMAGED_CACHE
        with HF_HUB_OFFLINE=1: the preset by name from the warm cache, a
        cold cache, and a cache whose weights blob was truncated
    python -m tests.zoo_worker logits OUT_DIR
        the preset by name; logits saved for the cross-backend comparison

Each writes <backend>_*.npy and prints one line `RESULT <json>`.
"""

import json
import pathlib
import sys
import time

import keras
import numpy as np

import keras_pu
from tests.zoo_fixtures import fixed_input


def _predict(model):
    return np.asarray(model.predict(fixed_input(), verbose=0))


def online(out):
    backend = keras.backend.backend()
    plain = keras.saving.load_model("hf://keras-pu/tiny_pu")
    np.save(out / f"{backend}_keras_hf_main.npy", _predict(plain))
    return {"keras_class": type(plain).__name__}


def offline(out, cold_cache, damaged_cache):
    import huggingface_hub

    backend = keras.backend.backend()
    result = {"offline_mode": huggingface_hub.is_offline_mode()}
    model = keras_pu.zoo.load("tiny_pu")
    np.save(out / f"{backend}_offline_preset.npy", _predict(model))

    for label, cache in (("cold", cold_cache), ("damaged", damaged_cache)):
        start = time.monotonic()
        try:
            keras_pu.zoo.load("tiny_pu", cache_dir=cache)
            result[label] = {"error": None}
        except keras_pu.zoo.ZooError as e:
            result[label] = {"error": type(e).__name__, "message": str(e)}
        result[label]["seconds"] = time.monotonic() - start
    return result


def logits(out):
    backend = keras.backend.backend()
    np.save(out / f"{backend}_logits.npy", _predict(keras_pu.zoo.load("tiny_pu")))
    return {}


if __name__ == "__main__":
    command, out, *rest = sys.argv[1:]
    out = pathlib.Path(out)
    result = {"online": online, "offline": offline, "logits": logits}[command](out, *rest)
    print("RESULT " + json.dumps(result))
