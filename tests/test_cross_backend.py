"""Weights saved under one backend load under every other backend and give
the same logits. This session's process does its own backend's part; the
other two each run in their own subprocess. The test runs once per suite,
since it covers all three backends by construction."""

import json
import os
import subprocess
import sys
import time

import keras

from tests import cross_backend_worker as worker
from tests.conftest import REPO_ROOT
from tests.conftest import once_per_suite

pytestmark = once_per_suite(
    "covers all three backends itself (the other two in subprocesses)")


BACKENDS = ("tensorflow", "jax", "torch")


def start_worker(backend, directory):
    """A worker that saves its models, then checks every backend's."""
    env = dict(os.environ, KERAS_BACKEND=backend)
    if backend == "jax":
        env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
    # Output to files, not pipes: nobody reads a pipe while the workers
    # run, and a full one would block a worker.
    with open(directory / f"{backend}.out", "w") as out, \
            open(directory / f"{backend}.err", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.cross_backend_worker",
             str(directory), "--save", "--check", ",".join(BACKENDS)],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=err,
        )
    process.logs = directory / f"{backend}.out", directory / f"{backend}.err"
    return process


def results_of(workers, timeout=900):
    """Each worker's differences; the first failing worker's stderr (and
    the others killed: they would wait for its models in vain)."""
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in workers.values()):
        failed = [b for b, p in workers.items()
                  if p.poll() not in (None, 0)]
        if failed or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for process in workers.values():
        if process.poll() is None:
            process.kill()
    results = {}
    for backend, process in workers.items():
        process.wait()
        stdout, stderr = (path.read_text() for path in process.logs)
        assert process.returncode == 0, (
            f"{backend} worker failed (exit {process.returncode}):\n"
            f"{stderr[-4000:]}"
        )
        lines = [l for l in stdout.splitlines() if l.startswith("RESULT ")]
        assert lines, f"{backend} worker printed no result:\n{stderr[-4000:]}"
        results.update(json.loads(lines[-1][len("RESULT "):]))
    return results


def test_weights_load_across_backends_with_identical_logits(tmp_path):
    # Every backend saves its models, then loads every other backend's
    # (each waits for the others' SAVED markers): every ordered pair of
    # backends once, the other two in concurrent subprocesses.
    workers = {b: start_worker(b, tmp_path) for b in BACKENDS
               if b != keras.backend.backend()}
    try:
        worker.save(tmp_path)
        differences = results_of(workers)
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.kill()
    differences.update(worker.check(tmp_path, BACKENDS))
    # 6 ordered pairs x each model
    assert len(differences) == 6 * len(worker.MODELS), sorted(differences)
    assert max(differences.values()) <= 1e-4, differences
