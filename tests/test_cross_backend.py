"""Weights saved under one backend load under every other backend and give
the same logits. Each backend runs in its own subprocess; the test itself
runs once per suite (in the TensorFlow session), since it covers all three
backends by construction."""

import json
import os
import subprocess
import sys

import keras
import pytest

from tests.conftest import REPO_ROOT

BACKENDS = ("tensorflow", "torch", "jax")

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="spawns one subprocess per backend itself; runs once, in the "
    "tensorflow session",
)


def run_worker(backend, command, directory):
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run(
        [sys.executable, "-m", "tests.cross_backend_worker", command,
         str(directory)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"{backend} worker '{command}' failed:\n{result.stderr[-4000:]}"
    )
    return result.stdout


def test_weights_load_across_backends_with_identical_logits(tmp_path):
    for backend in BACKENDS:
        run_worker(backend, "save", tmp_path)
    differences = {}
    for backend in BACKENDS:
        out = run_worker(backend, "check", tmp_path)
        line = next(l for l in out.splitlines() if l.startswith("RESULT "))
        differences.update(json.loads(line[len("RESULT "):]))
    # 3 sources x 2 targets x 2 models
    assert len(differences) == 12, differences
    worst = max(differences.values())
    assert worst <= 1e-4, differences
