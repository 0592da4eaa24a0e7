#!/usr/bin/env python
"""keras-pu (ResUNet, PUUNet; TensorFlow, PyTorch, JAX) vs MONAI's residual
UNet in pure PyTorch at matched FLOPs: training and inference throughput,
peak memory, and ratios to the MONAI peer.

    python benchmarks/bench_vs_monai.py               # 256x256, batch 8
    python benchmarks/bench_vs_monai.py --batch 4 --repeats 5 \\
        --json benchmarks/results/vs_monai.json \\
        --plot benchmarks/results/vs_monai.png

Contenders: one worker process per Keras backend, holding both keras-pu
models, plus one pure-PyTorch process holding MONAI's UNet. The parent
interleaves single timed steps (one training step = forward, backward and
Adam update on a batch; one inference step = a forward pass of a batch in
inference mode) of all contenders, the order rotated every round, so that
load from other processes on a shared machine hits all of them alike.
Throughput is batch / median step time; each ratio to MONAI is the median of
the per-round ratios, with its interquartile range as the spread.

Keras models are driven the way users drive them: `compile()` with Keras's
default `jit_compile="auto"` (XLA under JAX; eager under torch; a
`tf.function` without XLA under TensorFlow on CPU), `train_on_batch` and
`predict_on_batch`. `--jit-compile tensorflow,torch` adds TensorFlow with
XLA and torch with torch.compile (Keras's `jit_compile=True`) as extra
contenders.

The MONAI peer: `monai.networks.nets.UNet` with residual units
(`num_res_units=2`), batch norm and ReLU (as in keras-pu's blocks; MONAI's
defaults are instance norm and PReLU), MONAI's default topology (four
stride-2 levels, widths doubling per level), and its base width solved so
that its forward convolution FLOPs (torch.utils.flop_counter) match
ResUNet's analytic convolution FLOPs (equal to the same counter's count
under the torch backend). Matching FLOPs rather than widths matters: with
keras-pu's widths (16-256) MONAI's first unit already downsamples, so it
does 4.4x fewer FLOPs per image, and img/s would compare different work.

Peak memory: a fresh process per contender; resident memory after importing
the framework is the baseline, and the peak above it over 4 inference steps,
then over 4 training steps, is reported (VmHWM, reset between the two).
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
from benchmarks._harness import measure_memory  # noqa: E402
from benchmarks._harness import median  # noqa: E402
from benchmarks._harness import run_interleaved  # noqa: E402
from benchmarks._harness import spread  # noqa: E402

KERAS_MODELS = {"res_unet": {"arch": "res_unet"},
                "pu_unet": {"arch": "pu_unet"}}
TARGETS = {"best": 1.5, "every": 1.0}


def monai_spec(base_width):
    return {"kwargs": {
        "channels": [base_width * 2**i for i in range(5)],
        "strides": [2, 2, 2, 2],
    }}


def match_monai_width(target_flops, size):
    """Base width of the MONAI UNet whose forward conv FLOPs per image are
    closest to `target_flops`. FLOPs are a quadratic in the width: fit it
    on three widths, solve, then count the neighbours exactly."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks._harness import build_monai_model

    def count(width):
        model = build_monai_model(monai_spec(width)).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, size, size))
        return counter.get_total_flops()

    import numpy as np

    widths = np.array([8.0, 16.0, 32.0])
    coeffs = np.polyfit(widths, [count(int(w)) for w in widths], 2)
    roots = np.roots(coeffs - np.array([0, 0, target_flops]))
    guess = max(r.real for r in roots if abs(r.imag) < 1e-9)
    candidates = {w: count(w) for w in range(int(guess) - 1, int(guess) + 3)
                  if w > 0}
    best = min(candidates, key=lambda w: abs(candidates[w] - target_flops))
    return best, candidates[best]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--backends", default=",".join(KERAS_BACKENDS))
    parser.add_argument(
        "--jit-compile", default="", metavar="BACKENDS",
        help="comma-separated backends to time again with Keras's "
        "jit_compile=True (XLA under tensorflow, torch.compile under torch), "
        "labelled BACKEND+jit")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="compute threads per framework (default 1; 0 = framework "
        "default). See the README's benchmark section on shared machines.")
    parser.add_argument(
        "--baseline", metavar="CHECKOUT",
        help="also time ResUNet from another keras-pu checkout (e.g. a git "
        "worktree of an older commit), labelled BACKEND@base: before/after "
        "figures in the same interleaved run")
    parser.add_argument(
        "--baseline-backends", default=",".join(KERAS_BACKENDS),
        help="backends timed from --baseline (default: all)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory processes")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--plot", help="also draw the results (PNG) here")
    parser.add_argument(
        "--from-json", metavar="JSON",
        help="measure nothing: print the tables (and --plot) of a saved run")
    args = parser.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
        print_tables(results, argparse.Namespace(**results["args"]))
        if args.plot:
            plot(results, args.plot)
            print(f"Wrote {args.plot}")
        return
    threads = args.threads or None

    # label -> (backend, jit_compile, keras-pu checkout, models)
    contenders = {}
    for backend in [b for b in args.backends.split(",") if b]:
        contenders[backend] = (backend, "auto", None, KERAS_MODELS)
        if backend in args.jit_compile.split(","):
            contenders[f"{backend}+jit"] = (backend, True, None, KERAS_MODELS)
    if args.baseline:
        for backend in [b for b in args.baseline_backends.split(",") if b]:
            contenders[f"{backend}@base"] = (
                backend, "auto", args.baseline,
                {"res_unet": KERAS_MODELS["res_unet"]},
            )

    print(f"Machine: {machine_description()}; load average "
          f"{load_average():.1f}", flush=True)
    # The FLOP target: ResUNet's convolution FLOPs, counted analytically
    # (backend-independent; a Keras worker computes it below).
    workers, info = {}, {}
    try:
        for label, (kind, jit, library, models) in contenders.items():
            print(f"Starting {label} (build, compile, warm up)...", flush=True)
            workers[label] = Worker(kind, threads, library)
            info[label] = workers[label].call(
                "setup", models=models, batch=args.batch,
                size=args.size, train=True, jit_compile=jit,
                count_flops=False,  # the analytic count is the reference
            )
        first = next(iter(info.values()))["models"]["res_unet"]
        target = first["flops"]["analytic"]["conv"]
        width, monai_flops = match_monai_width(target, args.size)
        print(f"MONAI UNet base width {width}: {monai_flops / 1e9:.3f} "
              f"GFLOPs/img (conv) vs ResUNet {target / 1e9:.3f}", flush=True)
        workers["monai"] = Worker("monai", threads)
        info["monai"] = workers["monai"].call(
            "setup", models={"monai_unet": monai_spec(width)},
            batch=args.batch, size=args.size, train=True,
        )
        jobs = [("monai", "monai_unet", mode) for mode in ("train", "infer")]
        for label, contender in contenders.items():
            for model in contender[3]:
                jobs += [(label, model, mode) for mode in ("train", "infer")]
        print(f"Timing {len(jobs)} contender/mode pairs x {args.repeats} "
              "rounds, interleaved...", flush=True)
        load_before = load_average()
        times = run_interleaved(workers, jobs, args.repeats)
        load_after = load_average()
    finally:
        for worker in workers.values():
            worker.close()

    memory = {}
    if not args.no_memory:
        print("Peak memory, one fresh process each...", flush=True)
        memory["monai/monai_unet"] = measure_memory(
            "monai", monai_spec(width), args.batch, args.size,
            threads=threads)
        for label, (kind, jit, library, models) in contenders.items():
            if library is not None:
                continue  # the baseline is timed only
            for model, spec in models.items():
                memory[f"{label}/{model}"] = measure_memory(
                    kind, spec, args.batch, args.size, jit, threads=threads,
                    library=library)

    results = summarize(times, info, memory, contenders, args)
    results.update({
        "machine": machine_description(),
        "args": vars(args),
        "load_average": [load_before, load_after],
        "monai_width": width,
        "flops_target": target,
        "monai_flops": monai_flops,
        "info": info,
    })
    print_tables(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"Wrote {args.json}")
    if args.plot:
        plot(results, args.plot)
        print(f"Wrote {args.plot}")


def summarize(times, info, memory, contenders, args):
    rows = []
    monai = {mode: times[("monai", "monai_unet", mode)]
             for mode in ("train", "infer")}
    entries = [("monai", "monai_unet")] + [
        (label, model) for label, contender in contenders.items()
        for model in contender[3]
    ]
    for label, model in entries:
        row = {"contender": label, "model": model,
               "params": info[label]["models"][model]["params"],
               "flops": info[label]["models"][model]["flops"],
               "versions": info[label]["versions"]}
        for key in ("compute_data_format", "jit_compile"):
            row[key] = info[label]["models"][model].get(key)
        for mode in ("train", "infer"):
            t = times[(label, model, mode)]
            paired = [m / k for m, k in zip(monai[mode], t)]
            row[mode] = {
                "img_per_s": args.batch / median(t),
                "step_iqr_rel": spread(t),
                "vs_monai": median(paired),
                "vs_monai_iqr_rel": spread(paired),
                "seconds": t,
            }
        row["memory"] = memory.get(f"{label}/{model}")
        rows.append(row)
    return {"rows": rows}


def print_tables(results, args):
    print()
    print(f"Throughput at {args.size}x{args.size}x3, batch {args.batch}, "
          f"{args.repeats} interleaved rounds, {args.threads or 'default'} "
          "thread(s) per framework; MONAI UNet base width "
          f"{results['monai_width']} (matched FLOPs)")
    print()
    print("| contender | model | params | fwd GFLOPs/img | train img/s | "
          "x MONAI (IQR) | infer img/s | x MONAI (IQR) | peak MiB "
          "train / infer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in results["rows"]:
        flops = row["flops"].get("analytic", {}).get("conv") or row[
            "flops"].get("backend", {}).get("flops", 0)
        mem = row["memory"]
        mem_text = (f"{mem['train_peak_mib']:.0f} / {mem['infer_peak_mib']:.0f}"
                    if mem else "n/a")
        tr, inf = row["train"], row["infer"]
        print(f"| {row['contender']} | {row['model']} | {row['params']:,} | "
              f"{flops / 1e9:.2f} | {tr['img_per_s']:.2f} | "
              f"{tr['vs_monai']:.2f} (+-{tr['vs_monai_iqr_rel'] / 2:.2f}) | "
              f"{inf['img_per_s']:.2f} | {inf['vs_monai']:.2f} "
              f"(+-{inf['vs_monai_iqr_rel'] / 2:.2f}) | {mem_text} |")
    print()
    # The targets concern what users run: this checkout's default settings
    # (not the @base baseline, not the +jit variants).
    keras_rows = [r for r in results["rows"]
                  if r["contender"] in KERAS_BACKENDS]
    for mode in ("train", "infer"):
        best = max(keras_rows, key=lambda r: r[mode]["vs_monai"])
        worst = min(keras_rows, key=lambda r: r[mode]["vs_monai"])
        print(f"{mode}: best {best['contender']}/{best['model']} "
              f"{best[mode]['vs_monai']:.2f}x MONAI (target >= "
              f"{TARGETS['best']}x: "
              f"{'ok' if best[mode]['vs_monai'] >= TARGETS['best'] else 'MISSED'}"
              f"); worst {worst['contender']}/{worst['model']} "
              f"{worst[mode]['vs_monai']:.2f}x (target >= {TARGETS['every']}x:"
              f" {'ok' if worst[mode]['vs_monai'] >= TARGETS['every'] else 'MISSED'})")
    print("(FLOPs: forward convolution FLOPs per image, the quantity the "
          "MONAI width was matched on.)")


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    short = {"tensorflow": "tf"}

    def label(row):
        if row["contender"] == "monai":
            return "MONAI"
        backend, _, suffix = row["contender"].partition("@")
        backend = "+".join(short.get(p, p) for p in backend.split("+"))
        model = row["model"].replace("_unet", "")
        return f"{backend}\n{model}" + (f"\n@{suffix}" if suffix else "")

    labels = [label(r) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    for ax, mode, title in zip(axes, ("train", "infer"),
                               ("training", "inference")):
        values = [r[mode]["img_per_s"] for r in rows]
        errors = [r[mode]["img_per_s"] * r[mode]["step_iqr_rel"] / 2
                  for r in rows]
        colors = ["#888888" if r["contender"] == "monai"
                  else "#aec7e8" if "@" in r["contender"]
                  else "#1f77b4" if r["model"] == "res_unet" else "#d62728"
                  for r in rows]
        ax.bar(range(len(rows)), values, yerr=errors, color=colors,
               capsize=3)
        for i, r in enumerate(rows):
            if r["contender"] != "monai":
                ax.text(i, values[i] + errors[i],
                        f"{r[mode]['vs_monai']:.2f}x",
                        ha="center", va="bottom", fontsize=6)
        ax.axhline(values[0], color="#555555", lw=0.8, ls="--")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("images / s")
        ax.set_title(f"{title} throughput", fontsize=10)
    args = results["args"]
    fig.suptitle(
        f"keras-pu vs MONAI UNet (matched FLOPs), {args['size']}px, batch "
        f"{args['batch']}, {results['machine']['cores']}-core CPU, "
        f"{args['threads'] or 'default'} thread(s); light blue: before "
        "this change (@base); labels: x MONAI", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
