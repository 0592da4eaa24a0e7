#!/usr/bin/env python
"""TensorFlow with its oneDNN CPU kernels on and off, side by side.

    python benchmarks/bench_tf_onednn.py
    python benchmarks/bench_tf_onednn.py --size 256 --repeats 8 \\
        --json benchmarks/results/tf_onednn.json

TensorFlow turns oneDNN on by default only on x86 CPUs with AVX512-VNNI,
AVX512-BF16 or AMX; elsewhere (e.g. an AVX2-only AMD EPYC) it runs its
Eigen kernels unless TF_ENABLE_ONEDNN_OPTS=1 is set before it is imported.
`keras-pu` sets it on x86-64 when the user has not (see
`keras_pu.hardware.prefer_tensorflow_onednn`); this script measures what
that buys on the machine it runs on.

Two TensorFlow worker processes, one with TF_ENABLE_ONEDNN_OPTS=0 and one
with =1, each hold the same models (ResUNet and PU-UNet with their default
widths, and the two EfficientNet-Lite0 U-Nets, float32, batch `--batch`,
`--size` pixels). Single training and inference steps are timed round-robin
(benchmarks/_harness.py: the order rotated every round, so load from other
processes hits both alike). Printed: the median seconds per step of each
and the speed-up of oneDNN on over off (a ratio above 1: on is faster),
with the interquartile spread relative to the median.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._harness import Worker  # noqa: E402
from benchmarks._harness import load_average  # noqa: E402
from benchmarks._harness import machine_description  # noqa: E402
from benchmarks._harness import median  # noqa: E402
from benchmarks._harness import run_interleaved  # noqa: E402
from benchmarks._harness import spread  # noqa: E402

ARCHS = ("res_unet", "pu_unet", "encoder_res_unet", "encoder_pu_unet")
SETTINGS = {"onednn_off": "0", "onednn_on": "1"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--archs", default=",".join(ARCHS),
                        help=f"comma-separated, from {ARCHS}")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    archs = [a for a in args.archs.split(",") if a]
    unknown = set(archs) - set(ARCHS)
    if unknown:
        parser.error(f"unknown arch(s) {sorted(unknown)}; known: {ARCHS}")

    models = {arch: {"arch": arch, "precision": "float32"} for arch in archs}
    workers, jobs, setup = {}, [], {}
    try:
        for name, flag in SETTINGS.items():
            workers[name] = Worker("tensorflow", args.threads,
                                   env={"TF_ENABLE_ONEDNN_OPTS": flag})
            reply = workers[name].call(
                "setup", models=models, batch=args.batch, size=args.size,
                train=True, count_flops=False)
            setup[name] = {m: {"params": info["params"],
                               "compute_data_format":
                                   info["compute_data_format"],
                               "setup_seconds": round(info["setup_seconds"], 1)}
                           for m, info in reply["models"].items()}
            print(f"{name}: set up {sorted(reply['models'])}", flush=True)
            for arch in archs:
                for mode in ("train", "infer"):
                    jobs.append((name, arch, mode))
        times = run_interleaved(workers, jobs, args.repeats,
                                log=lambda s: print(s, flush=True))
    finally:
        for worker in workers.values():
            worker.close()

    rows = []
    print(f"\nTensorFlow float32, batch {args.batch}, {args.size}x{args.size}, "
          f"median s/step over {args.repeats} (IQR/median); "
          f"load average at the end {load_average():.1f}")
    print(f"{'model':<18}{'mode':<7}{'oneDNN off':>16}{'oneDNN on':>16}"
          f"{'on speed-up':>13}")
    for arch in archs:
        for mode in ("train", "infer"):
            off = times[("onednn_off", arch, mode)]
            on = times[("onednn_on", arch, mode)]
            row = {"model": arch, "mode": mode,
                   "off_s": median(off), "on_s": median(on),
                   "off_spread": spread(off), "on_spread": spread(on),
                   "speedup": median(off) / median(on)}
            rows.append(row)
            print(f"{arch:<18}{mode:<7}"
                  f"{row['off_s']:>9.3f} ({row['off_spread']:.2f})"
                  f"{row['on_s']:>9.3f} ({row['on_spread']:.2f})"
                  f"{row['speedup']:>12.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_description(), "size": args.size,
                       "batch": args.batch, "repeats": args.repeats,
                       "setup": setup, "rows": rows}, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
