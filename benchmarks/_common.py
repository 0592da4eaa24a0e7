"""Helpers shared by the benchmark scripts: run a function under each backend
in its own subprocess and collect its JSON result."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "torch", "jax")


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_description():
    return f"{cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()}"


def run_per_backend(script, backends, extra_args=(), timeout=3600):
    """Runs `python script --worker` once per backend; each worker prints one
    line `RESULT <json>`. Returns {backend: result}."""
    results = {}
    for backend in backends:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.run(
            [sys.executable, str(script), "--worker", *extra_args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        )
        lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(
                f"{backend} worker failed (exit {proc.returncode}):\n"
                f"{proc.stderr[-3000:]}"
            )
        results[backend] = json.loads(lines[-1][len("RESULT "):])
    return results
