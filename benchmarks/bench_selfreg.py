#!/usr/bin/env python
"""Training-step time of PU-UNet with and without SelfReg, per backend.

    python benchmarks/bench_selfreg.py [--backends tensorflow,torch,jax]
        [--size 256] [--batch 4] [--steps 15]

For each backend (one subprocess each) two PU-UNets with the same weights are
trained side by side, one with SelfReg's feature loss attached exactly as
`SelfRegDistillation` attaches it; steps alternate between the two models so
that machine noise hits both alike. Prints the median step time of each and
the overhead ratio. Keras's default jit_compile is used on every backend.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def worker(args):
    import keras
    import numpy as np

    import keras_pu
    from keras_pu.selfreg.distillation import _feature_layout
    from keras_pu.selfreg import SelfRegLoss

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, args.size, args.size, 3), dtype="float32")
    y = (rng.random((args.batch, args.size, args.size, 1)) > 0.5).astype(
        "float32"
    )

    def make():
        keras.utils.set_random_seed(0)
        model = keras_pu.models.PUUNet(input_shape=(args.size, args.size, 3))
        model.compile(
            optimizer="adam",
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
        )
        return model

    plain, selfreg = make(), make()
    roles = selfreg.feature_layers
    selfreg.attach_feature_loss(
        SelfRegLoss(roles["encoder"], roles["decoder"], roles["teacher"],
                    seed=0, data_format=_feature_layout(selfreg))
    )
    times = {"plain": [], "selfreg": []}
    for model in (plain, selfreg):  # compile / warm up
        for _ in range(3):
            model.train_on_batch(x, y)
    for _ in range(args.steps):
        for name, model in (("plain", plain), ("selfreg", selfreg)):
            start = time.perf_counter()
            logs = model.train_on_batch(x, y, return_dict=True)
            float(logs["loss"])  # wait for the result
            times[name].append(time.perf_counter() - start)
    result = {k: float(np.median(v)) for k, v in times.items()}
    result["spread"] = {
        k: [float(np.percentile(v, 25)), float(np.percentile(v, 75))]
        for k, v in times.items()
    }
    print("RESULT " + json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,torch,jax")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    from benchmarks._common import machine_description
    from benchmarks._common import run_per_backend

    extra = ["--size", str(args.size), "--batch", str(args.batch),
             "--steps", str(args.steps)]
    results = run_per_backend(Path(__file__), args.backends.split(","), extra)
    print(f"PU-UNet {args.size}x{args.size}, batch {args.batch}, "
          f"{args.steps} interleaved steps; {machine_description()}")
    print("| backend | step without SelfReg | step with SelfReg | overhead |")
    print("|---|---|---|---|")
    for backend, r in results.items():
        ratio = r["selfreg"] / r["plain"]
        print(f"| {backend} | {r['plain'] * 1000:.0f} ms | "
              f"{r['selfreg'] * 1000:.0f} ms | {100 * (ratio - 1):+.1f} % |")


if __name__ == "__main__":
    main()
