#!/usr/bin/env python
"""Training and inference speed of PU-UNet and ResUNet in float32 and bf16
on every backend, against this machine's own bf16 convolution rate and
MONAI's residual UNet at matched FLOPs (float32, and bf16 under
torch.autocast: the fair peer).

    python benchmarks/bench_train.py                       # 128 and 256 px
    python benchmarks/bench_train.py --sizes 256 --repeats 6 \\
        --baseline /path/to/old/checkout \\
        --json benchmarks/results/train.json --plot benchmarks/results/train.png

Everything is timed in one run, interleaved (see benchmarks/_harness.py):
one worker process per backend holds the four keras-pu models (ResUNet and
PU-UNet, float32 and mixed_bfloat16), one pure-PyTorch worker holds MONAI's
UNet in float32 and under torch.autocast(bfloat16), one worker times a
plain-PyTorch bf16 and float32 convolution probe (forward + backward of
3x3 convolutions at the U-Net's own widths and resolutions: what this
machine's convolution kernels reach), and one worker times the input
pipeline (`SegmentationSequence` with the decode cache and the default
augmentation) per batch. Single steps of all of them are taken round-robin,
the order rotated every round, so load from other processes hits all alike.

Reported per (backend, model, precision, size): training and inference
img/s (batch / median step time), achieved TFLOP/s (3x forward convolution
FLOPs per training image: forward, backward-data and backward-weights;
1x for inference) as a share of the probe's bf16 rate, and ratios: bf16 over
float32, PU-UNet over ResUNet, each over MONAI-bf16, and (with --baseline)
over that checkout's TensorFlow float32 PU-UNet. The pipeline's img/s is
compared with the fastest bf16 training step rate.
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

PRECISIONS = ("float32", "bfloat16")
ARCHS = ("res_unet", "pu_unet")


def keras_models(precisions):
    return {f"{arch}/{p}": {"arch": arch, "precision": p}
            for arch in ARCHS for p in precisions}


def monai_models(base_width, precisions):
    spec = {"kwargs": {"channels": [base_width * 2**i for i in range(5)],
                       "strides": [2, 2, 2, 2]}}
    return {f"monai/{p}": dict(spec, precision=p) for p in precisions}


def run_size(args, size, log):
    from benchmarks.bench_vs_monai import match_monai_width

    backends = [b for b in args.backends.split(",") if b]
    workers, jobs, info = {}, [], {}
    try:
        for backend in backends:
            workers[backend] = Worker(backend, args.threads)
            reply = workers[backend].call(
                "setup", models=keras_models(PRECISIONS), batch=args.batch,
                size=size, train=True, count_flops=False)
            info[backend] = reply
            for name in reply["models"]:
                jobs += [(backend, name, "train"), (backend, name, "infer")]
        res_flops = next(iter(info.values()))["models"]["res_unet/float32"][
            "flops"]["analytic"]["conv"]
        if args.monai:
            width, monai_flops = match_monai_width(res_flops, size)
            workers["monai"] = Worker("monai", args.threads)
            reply = workers["monai"].call(
                "setup", models=monai_models(width, PRECISIONS),
                batch=args.batch, size=size, train=True)
            reply["base_width"] = width
            info["monai"] = reply
            for name in reply["models"]:
                jobs += [("monai", name, "train"), ("monai", name, "infer")]
        if args.baseline:
            workers["baseline"] = Worker("tensorflow", args.threads,
                                         library=args.baseline)
            info["baseline"] = workers["baseline"].call(
                "setup", models={"pu_unet/float32": {"arch": "pu_unet"}},
                batch=args.batch, size=size, train=True, count_flops=False)
            jobs.append(("baseline", "pu_unet/float32", "train"))
        workers["probe"] = Worker("probe", args.threads)
        info["probe"] = workers["probe"].call(
            "setup", models={"conv": {"widths": [16, 32, 64, 128, 256]}},
            batch=args.batch, size=size)
        for p in PRECISIONS:
            jobs.append(("probe", "conv", p))
        workers["pipeline"] = Worker("pipeline", args.threads)
        info["pipeline"] = workers["pipeline"].call(
            "setup", models={"pipeline": {"data": args.data}},
            batch=args.batch, size=size)
        jobs.append(("pipeline", "pipeline", "batch"))

        log(f"{size}x{size}: timing {len(jobs)} jobs x {args.repeats} rounds")
        times = run_interleaved(workers, jobs, args.repeats, log=log)
    finally:
        for worker in workers.values():
            worker.close()
    return summarize(args, size, info, times, res_flops)


def summarize(args, size, info, times, res_flops):
    batch = args.batch
    rate = {job: batch / median(t) for job, t in times.items()}
    probe_flops = info["probe"]["models"]["conv"]["flops_per_step"]
    conv_rate = {p: probe_flops / median(times[("probe", "conv", p)]) / 1e12
                 for p in PRECISIONS}
    rows = []
    monai_bf16 = {m: rate.get(("monai", "monai/bfloat16", m))
                  for m in ("train", "infer")}
    baseline = rate.get(("baseline", "pu_unet/float32", "train"))
    for (kind, name, mode), value in sorted(rate.items()):
        if kind in ("probe", "pipeline", "baseline"):
            continue
        model_info = info[kind]["models"][name]
        if kind == "monai":
            fwd = model_info["flops"]["backend"]["flops"]
        else:
            fwd = model_info["flops"]["analytic"]["conv"]
        tflops = value * fwd * (3 if mode == "train" else 1) / 1e12
        arch, precision = name.split("/")
        row = {"backend": kind, "model": arch, "precision": precision,
               "size": size, "mode": mode, "img_s": value,
               "tflops": tflops,
               "share_of_bf16_conv": tflops / conv_rate["bfloat16"]}
        if monai_bf16.get(mode):
            row["vs_monai_bf16"] = value / monai_bf16[mode]
        other = rate.get((kind, f"{arch}/float32", mode))
        if precision == "bfloat16" and other:
            row["bf16_over_float32"] = value / other
        res = rate.get((kind, f"res_unet/{precision}", mode))
        if arch == "pu_unet" and res:
            row["pu_over_res"] = value / res
        if baseline and mode == "train" and arch == "pu_unet":
            row["vs_baseline_tf_float32"] = value / baseline
        rows.append(row)
    best_bf16_train = max(
        (r["img_s"] for r in rows if r["mode"] == "train"
         and r["precision"] == "bfloat16" and r["backend"] != "monai"),
        default=None)
    pipeline = rate[("pipeline", "pipeline", "batch")]
    return {
        "size": size,
        "conv_probe_tflops": conv_rate,
        "monai_base_width": info.get("monai", {}).get("base_width"),
        "resunet_forward_conv_flops": res_flops,
        "baseline_tf_float32_pu_unet_train_img_s": baseline,
        "pipeline_img_s": pipeline,
        "pipeline_over_best_bf16_train": (
            pipeline / best_bf16_train if best_bf16_train else None),
        "rows": rows,
        "versions": {k: v.get("versions") for k, v in info.items()},
    }


def print_report(result):
    size = result["size"]
    print(f"\n== {size}x{size}, batch size per step as given; "
          f"bf16 conv probe {result['conv_probe_tflops']['bfloat16']:.2f} "
          f"TFLOP/s, float32 {result['conv_probe_tflops']['float32']:.2f}")
    header = (f"{'backend':<11}{'model':<9}{'prec':<9}{'mode':<6}"
              f"{'img/s':>8}{'TFLOP/s':>9}{'%bf16conv':>10}{'bf16/f32':>9}"
              f"{'PU/Res':>7}{'/MONAIbf16':>11}{'/base':>7}")
    print(header)

    def fmt(value, spec):
        return format(value, spec) if value is not None else ""

    for r in result["rows"]:
        print(f"{r['backend']:<11}{r['model']:<9}{r['precision']:<9}"
              f"{r['mode']:<6}{r['img_s']:>8.1f}{r['tflops']:>9.3f}"
              f"{100 * r['share_of_bf16_conv']:>9.1f}%"
              f"{fmt(r.get('bf16_over_float32'), '>9.2f'):>9}"
              f"{fmt(r.get('pu_over_res'), '>7.2f'):>7}"
              f"{fmt(r.get('vs_monai_bf16'), '>11.2f'):>11}"
              f"{fmt(r.get('vs_baseline_tf_float32'), '>7.2f'):>7}")
    print(f"input pipeline (decode cache + augmentation): "
          f"{result['pipeline_img_s']:.1f} img/s = "
          f"{fmt(result['pipeline_over_best_bf16_train'], '.2f')}x the "
          "fastest bf16 training step rate")


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4),
                             squeeze=False)
    for ax, result in zip(axes[0], results):
        rows = [r for r in result["rows"] if r["mode"] == "train"]
        labels = [f"{r['backend']}\n{r['model']}\n{r['precision']}"
                  for r in rows]
        ax.bar(range(len(rows)), [r["img_s"] for r in rows],
               color=["tab:orange" if r["precision"] == "bfloat16"
                      else "tab:blue" for r in rows])
        ax.set_xticks(range(len(rows)), labels, fontsize=6)
        ax.set_ylabel("training img/s")
        ax.set_title(f"{result['size']}x{result['size']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--backends", default=",".join(KERAS_BACKENDS))
    parser.add_argument("--threads", type=int, default=0,
                        help="compute threads per framework (0: the "
                        "framework's default, one per core)")
    parser.add_argument("--no-monai", dest="monai", action="store_false",
                        help="leave out the MONAI peer (needs `pip install "
                        "monai`, the bench extra)")
    parser.add_argument("--baseline", metavar="CHECKOUT",
                        help="another keras-pu checkout (e.g. a worktree of "
                        "an older commit): its TensorFlow float32 PU-UNet is "
                        "timed too, for before/after ratios")
    parser.add_argument("--data", metavar="KVASIR_SEG",
                        help="Kvasir-SEG folder for the pipeline timing "
                        "(default: synthetic images of the same size)")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--plot", metavar="PATH")
    args = parser.parse_args()

    def log(message):
        print(message, file=sys.stderr, flush=True)

    log(f"machine: {machine_description()}; load average "
        f"{load_average():.1f}")
    results = [run_size(args, int(s), log) for s in args.sizes.split(",")]
    for result in results:
        print_report(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_description(),
                       "command": " ".join(sys.argv),
                       "results": results}, f, indent=1)
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
