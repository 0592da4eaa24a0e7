#!/usr/bin/env python
"""PU-UNet vs its matched ResUNet: parameters, FLOPs and inference latency
under TensorFlow, PyTorch and JAX, as PU/Res ratios.

    python benchmarks/bench_models.py                 # 256x256, batch 1
    python benchmarks/bench_models.py --repeats 80 \\
        --json benchmarks/results/models.json

One worker process per backend (Keras picks its backend at import); the
parent interleaves single timed forward passes of both models on all three
backends, the order rotated every round, so that load from other processes
hits every contender alike. Latency is the median over the rounds; the
PU/Res ratio is the median of the per-round ratios (each round times the two
models back to back), with its interquartile range as the spread.

FLOPs per image (inference, batch 1), three ways:
- analytic: counted layer by layer from the model (a multiply-add is 2
  FLOPs; every elementwise op is 1 FLOP per element: batch norm, ReLU,
  residual adds and the product unit's softplus, +eps, log, clip and exp);
- the backend's counter: torch.utils.flop_counter (convolutions only, so it
  must equal the analytic convolution FLOPs), XLA's cost analysis under JAX
  (every op, elementwise included, as XLA lowers them), TensorFlow's
  profiler (ops with registered FLOP statistics).
The table's FLOPs column is the analytic total, elementwise ops of the
product unit included; the counters cross-check it.

Targets (issue 2): params <= +1 %, FLOPs <= +3 %, latency <= +5 %.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._harness import KERAS_BACKENDS  # noqa: E402
from benchmarks._harness import Worker  # noqa: E402
from benchmarks._harness import load_average  # noqa: E402
from benchmarks._harness import machine_description  # noqa: E402
from benchmarks._harness import median  # noqa: E402
from benchmarks._harness import run_interleaved  # noqa: E402
from benchmarks._harness import spread  # noqa: E402

MODELS = {"res_unet": {"arch": "res_unet"}, "pu_unet": {"arch": "pu_unet"}}
TARGETS = {"params": 0.01, "flops": 0.03, "latency": 0.05}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--backends", default=",".join(KERAS_BACKENDS))
    parser.add_argument(
        "--threads", type=int, default=1,
        help="compute threads per framework (default 1; 0 = framework "
        "default). See the README's benchmark section on shared machines.")
    parser.add_argument(
        "--baseline", metavar="CHECKOUT",
        help="also time ResUNet from another keras-pu checkout (e.g. the "
        "commit before a change), interleaved: before/after latency")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]

    print(f"Machine: {machine_description()}; load average "
          f"{load_average():.1f}", flush=True)
    workers, info = {}, {}
    try:
        for backend in backends:
            print(f"Starting the {backend} worker (build, warm up, count "
                  "FLOPs)...", flush=True)
            workers[backend] = Worker(backend, args.threads or None)
            info[backend] = workers[backend].call(
                "setup", models=MODELS, batch=args.batch, size=args.size,
                train=False,
            )
        if args.baseline:
            for backend in backends:
                label = f"{backend}@base"
                workers[label] = Worker(backend, args.threads or None,
                                        args.baseline)
                info[label] = workers[label].call(
                    "setup", models={"res_unet": MODELS["res_unet"]},
                    batch=args.batch, size=args.size, train=False,
                    count_flops=False,
                )
        jobs = [(b, m, "infer") for b in backends for m in MODELS]
        if args.baseline:
            jobs += [(f"{b}@base", "res_unet", "infer") for b in backends]
        print(f"Timing {len(jobs)} contenders x {args.repeats} rounds, "
              "interleaved...", flush=True)
        load_before = load_average()
        times = run_interleaved(workers, jobs, args.repeats)
        load_after = load_average()
    finally:
        for worker in workers.values():
            worker.close()

    rows = []
    for backend in backends:
        models = info[backend]["models"]
        res, pu = models["res_unet"], models["pu_unet"]
        t_res = times[(backend, "res_unet", "infer")]
        t_pu = times[(backend, "pu_unet", "infer")]
        ratios = [p / r for p, r in zip(t_pu, t_res)]
        rows.append({
            "backend": backend,
            "versions": info[backend]["versions"],
            "compute_data_format": res["compute_data_format"],
            "params": {"res_unet": res["params"], "pu_unet": pu["params"]},
            "flops": {"res_unet": res["flops"], "pu_unet": pu["flops"]},
            "latency_s": {
                "res_unet": {"median": median(t_res), "iqr_rel": spread(t_res),
                             "all": t_res},
                "pu_unet": {"median": median(t_pu), "iqr_rel": spread(t_pu),
                            "all": t_pu},
            },
            "latency_ratio": {"median": median(ratios),
                              "iqr_rel": spread(ratios)},
        })
    print_table(rows, args)
    baseline = {}
    if args.baseline:
        print(f"\nResUNet latency, this checkout vs {args.baseline} "
              "(median of per-round ratios new/base; < 1 is faster):")
        for backend in backends:
            new = times[(backend, "res_unet", "infer")]
            base = times[(f"{backend}@base", "res_unet", "infer")]
            ratios = [n / b for n, b in zip(new, base)]
            baseline[backend] = {"median_s": median(base), "all": base,
                                 "new_over_base": median(ratios),
                                 "iqr_rel": spread(ratios)}
            print(f"  {backend}: {median(base) * 1e3:.1f} ms -> "
                  f"{median(new) * 1e3:.1f} ms, ratio {median(ratios):.3f} "
                  f"(+-{spread(ratios) / 2:.3f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_description(),
                       "args": vars(args),
                       "load_average": [load_before, load_after],
                       "rows": rows, "baseline": baseline}, f, indent=1)
        print(f"Wrote {args.json}")


def _ratio(pu, res):
    return pu / res if res else float("nan")


def print_table(rows, args):
    print()
    print(f"PU-UNet vs ResUNet, {args.size}x{args.size}x3, batch "
          f"{args.batch}, inference, {args.repeats} interleaved rounds, "
          f"{args.threads or 'default'} thread(s) per framework")
    print()
    print("| backend | params Res / PU (ratio) | GFLOPs/img Res / PU, "
          "analytic (ratio) | backend counter GFLOPs Res / PU (ratio) | "
          "latency ms Res / PU | latency ratio PU/Res (IQR) |")
    print("|---|---|---|---|---|---|")
    verdicts = []
    for row in rows:
        p = row["params"]
        fa = {m: row["flops"][m]["analytic"]["total"] for m in p}
        fb = {m: row["flops"][m]["backend"].get("flops") for m in p}
        lat = row["latency_s"]
        ratio = row["latency_ratio"]
        p_ratio = _ratio(p["pu_unet"], p["res_unet"])
        f_ratio = _ratio(fa["pu_unet"], fa["res_unet"])
        counter = "n/a"
        if fb["res_unet"]:
            counter = (f"{fb['res_unet'] / 1e9:.3f} / {fb['pu_unet'] / 1e9:.3f}"
                       f" ({_ratio(fb['pu_unet'], fb['res_unet']):.4f})")
        print(f"| {row['backend']} | {p['res_unet']:,} / {p['pu_unet']:,} "
              f"({p_ratio:.4f}) | {fa['res_unet'] / 1e9:.3f} / "
              f"{fa['pu_unet'] / 1e9:.3f} ({f_ratio:.4f}) | {counter} | "
              f"{lat['res_unet']['median'] * 1e3:.1f} / "
              f"{lat['pu_unet']['median'] * 1e3:.1f} | "
              f"{ratio['median']:.3f} (+-{ratio['iqr_rel'] / 2:.3f}) |")
        verdicts.append((row["backend"], p_ratio, f_ratio, ratio["median"]))
    print()
    for backend, p_ratio, f_ratio, l_ratio in verdicts:
        checks = [
            ("params", p_ratio - 1, TARGETS["params"]),
            ("FLOPs", f_ratio - 1, TARGETS["flops"]),
            ("latency", l_ratio - 1, TARGETS["latency"]),
        ]
        text = ", ".join(
            f"{name} {delta:+.1%} ({'ok' if delta <= limit else 'MISSES'} "
            f"<= +{limit:.0%})" for name, delta, limit in checks
        )
        print(f"{backend}: {text}")
    analytic = rows[0]["flops"]["pu_unet"]["analytic"]
    print(f"\nAnalytic PU-UNet FLOPs: convolutions "
          f"{analytic['conv'] / 1e9:.3f} G, elementwise "
          f"{analytic['elementwise'] / 1e9:.3f} G, of which the product "
          f"units' softplus/log/clip/exp {analytic['pu_elementwise'] / 1e6:.1f}"
          " M.")
    for row in rows:
        for m in ("res_unet", "pu_unet"):
            b = row["flops"][m]["backend"]
            if "error" in b:
                print(f"{row['backend']} {m}: FLOP counter failed: "
                      f"{b['error']}")


if __name__ == "__main__":
    main()
