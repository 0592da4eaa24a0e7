#!/usr/bin/env python
"""The one test command: runs the test suite under TensorFlow, PyTorch and JAX,
one pytest process per backend (Keras picks its backend at import time).

    python tests/run_all_backends.py [--backends tensorflow,torch,jax]
        [--sequential] [pytest args]

The backends run concurrently by default (each session is mostly
single-threaded work: tracing, compiling, starting processes), each writing
to its own log, printed in full when it ends. Exits non-zero if any
backend's run fails (or collects no test), and ends with one summary line
over all backends.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALL_BACKENDS = ("tensorflow", "torch", "jax")


def backend_env(backend, jax_cache_dir=None):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONUNBUFFERED="1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if jax_cache_dir is not None:
        # Every JAX process of the run shares one compilation cache: the
        # sessions and the processes their tests start (distributed workers,
        # `keras-pu` runs, killed-and-resumed trainings, other-backend
        # workers) compile the same programs, each once per run (the
        # distributed test: ~25 % faster). The directory is new for each
        # run and removed after it: nothing carries over between runs.
        env.setdefault("JAX_COMPILATION_CACHE_DIR", str(jax_cache_dir))
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
        # No size limit: with one, JAX reads every entry's access time at
        # each write (thousands of entries per run: the JAX session took
        # twice as long). Without one, an entry read while another process
        # writes it fails to load, and JAX compiles the program instead.
    if backend == "jax":
        # JAX compiles every eager op for each new shape; unoptimised XLA code
        # compiles ~4x faster and is plenty for tiny test models.
        flags = env.get("XLA_FLAGS", "")
        if "xla_backend_optimization_level" not in flags:
            env["XLA_FLAGS"] = (
                flags + " --xla_backend_optimization_level=0"
            ).strip()
    return env


def counts(junit_path):
    try:
        root = ET.parse(junit_path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root)
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in total:
            total[key] += int(suite.get(key, 0))
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends",
        default=",".join(ALL_BACKENDS),
        help="comma-separated backends (default: all three)",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run the backends one after another, output streamed live",
    )
    args, pytest_args = parser.parse_known_args()
    backends = [b for b in args.backends.split(",") if b]
    unknown = set(backends) - set(ALL_BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s): {sorted(unknown)}")

    report_dir = ROOT / ".pytest_cache" / "junit"
    report_dir.mkdir(parents=True, exist_ok=True)
    # Killed (a CI time limit), the run still removes its JAX cache.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with tempfile.TemporaryDirectory(prefix="keras-pu-jax-cache-") as cache:
        return run(args, backends, pytest_args, report_dir, Path(cache))


def run(args, backends, pytest_args, report_dir, jax_cache_dir):
    runs = {}
    for backend in backends:
        junit = report_dir / f"{backend}.xml"
        log_path = report_dir / f"{backend}.log"
        for path in (junit, log_path):
            if path.exists():
                path.unlink()
        command = [sys.executable, "-m", "pytest", f"--junitxml={junit}",
                   *pytest_args]
        if args.sequential:
            print(f"\n===== KERAS_BACKEND={backend} =====", flush=True)
            start = time.time()
            env = backend_env(backend, jax_cache_dir)
            rc = subprocess.call(command, cwd=ROOT, env=env)
            runs[backend] = (rc, junit, time.time() - start)
            continue
        log = open(log_path, "w")
        process = subprocess.Popen(
            command, cwd=ROOT, env=backend_env(backend, jax_cache_dir),
            stdout=log, stderr=subprocess.STDOUT,
        )
        runs[backend] = (process, log, junit, log_path, time.time())
        print(f"started KERAS_BACKEND={backend} (log: {log_path})",
              flush=True)

    results = {}
    if args.sequential:
        for backend, (rc, junit, seconds) in runs.items():
            results[backend] = (rc, counts(junit), seconds)
    else:
        pending = dict(runs)
        while pending:
            for backend, (process, log, junit, log_path, start) in list(
                pending.items()
            ):
                rc = process.poll()
                if rc is None:
                    continue
                log.close()
                seconds = time.time() - start
                print(f"\n===== KERAS_BACKEND={backend} (exit {rc}, "
                      f"{seconds:.0f}s) =====", flush=True)
                print(log_path.read_text(), flush=True)
                results[backend] = (rc, counts(junit), seconds)
                del pending[backend]
            time.sleep(1)
        results = {b: results[b] for b in backends}

    print("\n===== summary =====")
    passed = failed = skipped = 0
    ok = True
    for backend, (rc, c, seconds) in results.items():
        if c is None:
            status = f"no report (exit {rc})"
            ok = False
        else:
            b_failed = c["failures"] + c["errors"]
            b_passed = c["tests"] - b_failed - c["skipped"]
            passed += b_passed
            failed += b_failed
            skipped += c["skipped"]
            status = (
                f"{b_passed} passed, {b_failed} failed, {c['skipped']} "
                f"skipped (exit {rc})"
            )
            if rc != 0 or c["tests"] == 0:
                ok = False
        print(f"{backend:>10}: {status} in {seconds:.0f}s")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
