"""Weights saved under one backend load under every other backend and give
the same logits. This session's process does the TensorFlow part; torch and
JAX each run in their own subprocess. The test runs once per suite (in the
TensorFlow session), since it covers all three backends by construction."""

import json
import os
import subprocess
import sys

import keras
import pytest

from tests import cross_backend_worker as worker
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="covers all three backends itself (torch and JAX in "
    "subprocesses); runs once, in the tensorflow session",
)


def run_worker(backend, directory, *steps):
    env = dict(os.environ, KERAS_BACKEND=backend)
    if backend == "jax":
        env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
    result = subprocess.run(
        [sys.executable, "-m", "tests.cross_backend_worker", str(directory),
         *steps],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, (
        f"{backend} worker {steps} failed:\n{result.stderr[-4000:]}"
    )
    lines = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):]) if lines else {}


def test_weights_load_across_backends_with_identical_logits(tmp_path):
    differences = {}
    # tensorflow saves; jax checks it and saves; torch checks both and
    # saves; jax checks torch; tensorflow checks jax and torch: every
    # ordered pair of backends once.
    worker.save(tmp_path)
    differences.update(run_worker("jax", tmp_path, "--check", "--save"))
    differences.update(run_worker("torch", tmp_path, "--check", "--save"))
    torch_to_jax = run_worker("jax", tmp_path, "--check")
    differences.update(
        {k: v for k, v in torch_to_jax.items() if k.startswith("torch->")}
    )
    differences.update(worker.check(tmp_path))
    # 6 ordered pairs x each model
    assert len(differences) == 6 * len(worker.MODELS), sorted(differences)
    assert max(differences.values()) <= 1e-4, differences
