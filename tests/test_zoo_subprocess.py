"""Zoo behaviour that needs a fresh interpreter (environment read at
import): `keras.saving.load_model("hf://...")` after `import keras_pu` with
HF_ENDPOINT, offline loading from a warm cache with HF_HUB_OFFLINE=1 (and
the cold-cache and damaged-cache errors), and the same preset giving the
same logits under TensorFlow, PyTorch and JAX."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_pu.zoo import registry as registry_lib
from tests.conftest import REPO_ROOT
from tests.conftest import once_per_suite
from tests.run_all_backends import backend_env
from tests.zoo_fixtures import fixed_input

BACKENDS = ("tensorflow", "torch", "jax")


def run_worker(backend, args, env):
    result = subprocess.run(
        [sys.executable, "-m", "tests.zoo_worker", *map(str, args)],
        cwd=REPO_ROOT,
        env=dict(backend_env(backend), **env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"{backend} worker {args[0]} failed:\n{result.stderr[-4000:]}"
    )
    line = next(l for l in result.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):]), result.stderr


@pytest.fixture
def worker_env(zoo_hub, tmp_path):
    """Environment of a user whose huggingface_hub points at the test
    server, with the registry pinned to tiny_pu v1 and no zoo/ folder."""
    registry = zoo_hub.registry(tmp_path / "registry.json")
    empty = tmp_path / "no_zoo"
    empty.mkdir()
    env = {
        "HF_ENDPOINT": zoo_hub.url,
        "HF_HUB_CACHE": str(tmp_path / "hf_cache"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        registry_lib.REGISTRY_ENV: str(registry),
        registry_lib.ZOO_DIR_ENV: str(empty),
    }
    env.pop("HF_HUB_OFFLINE", None)
    return env


def test_keras_load_model_hf_then_offline_from_warm_cache(zoo_hub, worker_env, tmp_path, monkeypatch):
    from keras_pu import zoo

    backend = keras.backend.backend()
    out = tmp_path / "out"
    out.mkdir()
    online, _ = run_worker(backend, ["online", out], worker_env)
    assert online["keras_class"] == "PUUNet"
    # keras.saving.load_model("hf://org/repo") takes main (v2).
    np.testing.assert_allclose(np.load(out / f"{backend}_keras_hf_main.npy"), zoo_hub.logits["v2"], atol=1e-5)

    # Warm the same cache with the preset (pinned v1) here, as a user would
    # with `keras-pu zoo download`; then go offline.
    for key in (registry_lib.REGISTRY_ENV, registry_lib.ZOO_DIR_ENV):
        monkeypatch.setenv(key, worker_env[key])
    zoo.download("tiny_pu", cache_dir=worker_env["HF_HUB_CACHE"], progress=False)

    cold = tmp_path / "cold_cache"
    damaged = tmp_path / "damaged_cache"
    shutil.copytree(worker_env["HF_HUB_CACHE"], damaged, symlinks=True)
    blob = pathlib.Path(os.path.realpath(
        damaged / "models--keras-pu--tiny_pu" / "snapshots" / zoo_hub.revisions["v1"] / "model.weights.h5"
    ))
    assert str(blob).startswith(str(damaged))
    blob.write_bytes(blob.read_bytes()[:-10])

    offline_env = dict(worker_env, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    offline, stderr = run_worker(backend, ["offline", out, cold, damaged], offline_env)
    assert offline["offline_mode"] is True
    # Offline, nothing is downloaded, so no download is announced (issue
    # #17): the cold cache fails with the message below only.
    assert "downloading" not in stderr.lower(), stderr[-2000:]
    assert "using cached files" in stderr
    np.testing.assert_allclose(np.load(out / f"{backend}_offline_preset.npy"), zoo_hub.logits["v1"], atol=1e-5)

    cold_result = offline["cold"]
    assert cold_result["error"] == "OfflineCacheMissError"
    assert "preset 'tiny_pu'" in cold_result["message"]
    assert "config.json" in cold_result["message"]
    assert "HF_HUB_OFFLINE=1" in cold_result["message"]
    assert "keras-pu zoo download tiny_pu" in cold_result["message"]
    assert cold_result["seconds"] < 5, "offline cold cache must fail at once, not retry"

    damaged_result = offline["damaged"]
    assert damaged_result["error"] == "IntegrityError"
    assert "model.weights.h5 of preset 'tiny_pu' is truncated" in damaged_result["message"]
    assert "keras-pu zoo download tiny_pu --force" in damaged_result["message"]


@once_per_suite("spawns one subprocess per other backend itself")
def test_same_preset_same_logits_on_every_backend(zoo_hub, worker_env, tmp_path, monkeypatch):
    from keras_pu import zoo

    # This session's backend here, through the server; the other two in
    # subprocesses, offline, from the cache this load fills.
    for key in (registry_lib.REGISTRY_ENV, registry_lib.ZOO_DIR_ENV):
        monkeypatch.setenv(key, worker_env[key])
    model = zoo.load("tiny_pu", cache_dir=worker_env["HF_HUB_CACHE"], progress=False)
    out = tmp_path / "out"
    out.mkdir()
    here = keras.backend.backend()
    results = {here: np.asarray(model.predict(fixed_input(), verbose=0))}
    for backend in (b for b in BACKENDS if b != here):
        run_worker(backend, ["logits", out], dict(worker_env, HF_HUB_OFFLINE="1"))
        results[backend] = np.load(out / f"{backend}_logits.npy")
    for backend, values in results.items():
        diff = float(np.max(np.abs(values - zoo_hub.logits["v1"])))
        assert diff <= 1e-4, f"{backend}: max |logit difference| {diff}"
    pairs = {
        f"{a}-{b}": float(np.max(np.abs(results[a] - results[b])))
        for a in BACKENDS for b in BACKENDS if a < b
    }
    print(f"max |logit difference| between backends: {pairs}")
    assert max(pairs.values()) <= 1e-4, pairs
