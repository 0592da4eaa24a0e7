#!/usr/bin/env python
"""How long `fit` takes to start: building the optimizer before the first
traced step (`SegmentationModel.fit`) against Keras's own order (the
optimizer's variables created inside the first trace, which TensorFlow then
traces a second time), side by side in one run.

    KERAS_BACKEND=tensorflow python benchmarks/fit_startup.py [--repeats 2]

Each measurement builds a fresh model, compiles it as the recipes do
(AdamW, Dice + BCE) and times one `fit` of a single step of batch 2 at
256x256: tracing the train step, then running it once. Models: PU-UNet of
the presets' architecture (widths 16-256, depth 4) and the PU-UNet decoder
on EfficientNet-Lite0 (random encoder weights: loading them changes
nothing here). The two orders alternate, so load changes on the machine
spread over both. Prints the median seconds of each, how many times the
train step was traced, and the ratio. Meaningful under TensorFlow; under
JAX and PyTorch the two orders are the same work.

    KERAS_BACKEND=jax python benchmarks/fit_startup.py --jax-cache

times, for each model, a fresh process that builds it and runs the same
single-step `fit` (the wall time a user waits, imports included): without
JAX's persistent compilation cache, with an empty cache folder, and again
with the folder the previous run filled.
"""

import argparse
import logging
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Each measurement traces a new model's steps on purpose: TensorFlow's
# retracing advice does not apply.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_pu.losses import BCEDiceLoss  # noqa: E402
from keras_pu.models import PUUNet  # noqa: E402
from keras_pu.models.efficientnet_lite import EncoderPUUNet  # noqa: E402

SIZE = 256
MODELS = {
    "pu_unet (16-256, depth 4)": lambda: PUUNet(
        input_shape=(SIZE, SIZE, 3), widths=16, depth=4),
    "pu_unet_efficientnet_lite0": lambda: EncoderPUUNet(
        input_shape=(SIZE, SIZE, 3), encoder_weights=None),
}


def time_fit(build, order):
    """Seconds of one single-step `fit`, and the train step's traces."""
    traces = []
    model = build()
    original = type(model).train_step

    def counting(self, *args):
        traces.append(1)
        return original(self, *args)

    model.train_step = counting.__get__(model)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=BCEDiceLoss())
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, SIZE, SIZE, 3)).astype("float32")
    y = (rng.uniform(0, 1, (2, SIZE, SIZE, 1)) > 0.5).astype("float32")
    fit = model.fit if order == "optimizer first" else (
        lambda *a, **k: keras.Model.fit(model, *a, **k))
    start = time.perf_counter()
    fit(x, y, batch_size=2, epochs=1, verbose=0)
    return time.perf_counter() - start, len(traces)


def jax_cache_runs():
    """A fresh process per measurement: no cache, cold cache, warm cache."""
    print(f"backend {keras.backend.backend()}, keras {keras.__version__}, "
          f"fresh processes, batch 2 at {SIZE}x{SIZE}, one step", flush=True)
    for name in MODELS:
        with tempfile.TemporaryDirectory() as cache:
            settings = {
                "no cache": {},
                "empty cache folder": {"JAX_COMPILATION_CACHE_DIR": cache},
                "warm cache folder": {"JAX_COMPILATION_CACHE_DIR": cache},
            }
            for label, extra in settings.items():
                env = dict(os.environ, **extra)
                start = time.perf_counter()
                result = subprocess.run(
                    [sys.executable, __file__, "--child", name], env=env,
                    capture_output=True, text=True, check=True)
                wall = time.perf_counter() - start
                inside = float(result.stdout.split()[-1])
                print(f"{name:30s} {label:19s} {wall:6.1f} s in all, "
                      f"{inside:6.1f} s to build and fit", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jax-cache", action="store_true",
                        help="fresh processes with and without JAX's "
                        "persistent compilation cache")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        start = time.perf_counter()
        time_fit(MODELS[args.child], "optimizer first")
        print(time.perf_counter() - start)
        return
    if args.jax_cache:
        return jax_cache_runs()
    orders = ("optimizer first", "keras order")
    print(f"backend {keras.backend.backend()}, keras {keras.__version__}, "
          f"{args.repeats} repeats, batch 2 at {SIZE}x{SIZE}, one step",
          flush=True)
    for name, build in MODELS.items():
        seconds = {o: [] for o in orders}
        traces = {}
        for repeat in range(args.repeats):
            for order in (orders if repeat % 2 == 0 else orders[::-1]):
                keras.backend.clear_session()
                s, traces[order] = time_fit(build, order)
                seconds[order].append(s)
        median = {o: statistics.median(seconds[o]) for o in orders}
        for order in orders:
            print(f"{name:30s} {order:16s} {median[order]:7.1f} s "
                  f"(train step traced {traces[order]}x)")
        print(f"{name:30s} ratio {median[orders[1]] / median[orders[0]]:.2f}"
              " (keras order / optimizer first)", flush=True)


if __name__ == "__main__":
    main()
