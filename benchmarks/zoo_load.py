#!/usr/bin/env python
"""How long `keras_pu.zoo.load` takes for a full-size preset, and what its
checks cost, side by side in one run.

    KERAS_BACKEND=jax python benchmarks/zoo_load.py [--repeats 3]

A PU-UNet of the presets' architecture (256x256, widths 16-256, 2.04 M
parameters; random weights) is packaged with the maintainer tool, committed
to a git repository and served by olah on 127.0.0.1 (as in the tests), then
loaded:

- cold: empty Hugging Face cache (download over HTTP + verify + build + weights)
- warm cache: the pinned commit already cached (no network)
- zoo folder: a source checkout's zoo/<preset>/ (verify + build + weights)
- keras.saving.load_model(folder): plain Keras on the same folder, no checks
- sha256 of model.weights.h5 alone

Prints the median of --repeats runs of each, and ratios to plain Keras.
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402

import keras_pu  # noqa: E402
from keras_pu.zoo import integrity  # noqa: E402
from keras_pu.zoo import registry as registry_lib  # noqa: E402
from tools.zoo.packaging import add_preset  # noqa: E402
from tests import zoo_fixtures as zf  # noqa: E402


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    root = pathlib.Path(tempfile.mkdtemp(prefix="zoo_bench_"))
    model = keras_pu.models.PUUNet(input_shape=(256, 256, 3))
    zf.randomize(model, 0)
    entry = zf.preset_entry(model, "keras-pu/bench_pu")
    entry["input_size"] = [256, 256]
    registry = zf.write_registry(root / "registry.json", zf.registry_data({"bench_pu": entry}))
    model.save(root / "trained.keras")
    (root / "metrics.json").write_text('{"metrics": {"dice": 0.5}}')
    (root / "recipe.json").write_text("{}")
    add_preset("bench_pu", root / "trained.keras", root / "metrics.json", root / "recipe.json",
               registry_path=registry, zoo_dir=root / "zoo", log=lambda *_: None)

    server = zf.OlahServer(root / "hub")
    folder = root / "zoo" / "bench_pu"
    sha = server.mirror.commit("keras-pu/bench_pu", {p.name: p for p in folder.iterdir()}, "v1")
    server.start(probe_repo="keras-pu/bench_pu")
    try:
        data = registry_lib.load_registry(registry).data
        data["hub_endpoint"] = server.url
        data["presets"]["bench_pu"]["hub"]["revision"] = sha
        zf.write_registry(registry, data)
        os.environ[registry_lib.REGISTRY_ENV] = str(registry)

        os.environ[registry_lib.ZOO_DIR_ENV] = str(root / "no_zoo")
        counter = iter(range(10**6))
        cold = timed(lambda: keras_pu.zoo.load(
            "bench_pu", cache_dir=root / f"cold{next(counter)}", progress=False), args.repeats)
        warm = timed(lambda: keras_pu.zoo.load(
            "bench_pu", cache_dir=root / "cold0", progress=False), args.repeats)
        os.environ[registry_lib.ZOO_DIR_ENV] = str(root / "zoo")
        local = timed(lambda: keras_pu.zoo.load("bench_pu", progress=False), args.repeats)
        plain = timed(lambda: keras.saving.load_model(folder), args.repeats)
        sha256 = timed(lambda: integrity.sha256_of(folder / "model.weights.h5"), args.repeats)
    finally:
        server.stop()

    size = (folder / "model.weights.h5").stat().st_size
    print(f"backend {keras.backend.backend()}, PU-UNet 256x256, {model.count_params():,} "
          f"parameters, model.weights.h5 {size / 1e6:.1f} MB, median of {args.repeats}")
    rows = [
        ("zoo.load, cold cache (HTTP from olah on loopback)", cold),
        ("zoo.load, warm cache", warm),
        ("zoo.load, zoo/ folder", local),
        ("keras.saving.load_model(folder), no checks", plain),
        ("sha256 of model.weights.h5", sha256),
    ]
    for label, seconds in rows:
        print(f"{label:<52} {seconds * 1000:8.0f} ms   {seconds / plain:5.2f}x plain Keras")


if __name__ == "__main__":
    main()
