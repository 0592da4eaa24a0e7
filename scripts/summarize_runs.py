#!/usr/bin/env python
"""Collects finished training runs into the results tables of the README and
the model cards.

    python scripts/summarize_runs.py RUNS_DIR [--registry] [--hardware TEXT]

RUNS_DIR holds run folders of `keras-pu train` (recipe.json, run.json,
history.csv) that were scored with `keras-pu evaluate RUN --split test`
(eval_test/metrics.json). For each run this writes
`RUN/training_summary.json` (what `zoo/add_preset.py --training` records in
the model card: hardware, backend, image size, epochs, seed, wall time), and
prints Markdown tables: every run, then runs grouped by dataset, model class
and SelfReg on/off (mean ± standard deviation over seeds).

With --registry the grouped results that are not presets themselves (a group
of several seeds, or SelfReg on) are recorded as the dataset's `experiments`
in keras_pu/zoo/registry.json; run `python zoo/refresh_cards.py` after it.
Nothing here trains or evaluates: it only reads what those commands wrote.
"""

import argparse
import csv
import datetime
import json
import math
import pathlib
import platform
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METRICS = ("dice", "iou", "hd95", "fpr_normal")
HEADERS = {"dice": "Dice", "iou": "IoU", "hd95": "HD95 (px)",
           "fpr_normal": "FPR normal"}
MODEL_LABELS = {"PUUNet": "PU-UNet", "ResUNet": "ResUNet"}
# Registry dataset keys by the dataset names `keras-pu evaluate` writes.
DATASET_KEYS = {"Kvasir-SEG": "kvasir_seg", "BUSI": "busi",
                "ISIC 2017 Part 1": "isic2017"}


def default_hardware():
    cpu = platform.processor() or "CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{os.cpu_count()} CPU cores ({cpu}), no GPU"


def read_run(folder, hardware):
    recipe = json.loads((folder / "recipe.json").read_text())
    run = json.loads((folder / "run.json").read_text())
    metrics_path = folder / "eval_test" / "metrics.json"
    if not metrics_path.is_file():
        return None
    evaluation = json.loads(metrics_path.read_text())
    with open(folder / "history.csv") as f:
        history = list(csv.DictReader(f))
    started = datetime.datetime.fromisoformat(run["sessions"][0]["started"])
    ended = datetime.datetime.fromtimestamp(
        (folder / "history.csv").stat().st_mtime, tz=datetime.timezone.utc)
    values = {k: evaluation.get(k) for k in ("dice", "iou", "hd95")}
    normal = (evaluation.get("by_group") or {}).get("normal")
    if normal:
        values["fpr_normal"] = normal.get("empty_gt_false_positive_rate")
    best = max(history, key=lambda row: float(row["val_dice"]))
    summary = {
        "hardware": hardware,
        "backend": run["environment"]["backend"],
        "image_size": recipe["data"]["image_size"],
        "epochs": len(history),
        "seed": recipe["training"]["seed"],
        "selfreg": bool(recipe["selfreg"]["enabled"]),
        "wall_minutes": round((ended - started).total_seconds() / 60, 1),
        "sessions": len(run["sessions"]),
        "best_epoch": int(best["epoch"]) + 1,
        "note": (
            f"Recipe `{recipe['name']}` "
            f"(`keras-pu train --recipe {recipe['name']}`); the checkpoint "
            f"with the best validation Dice (epoch {int(best['epoch']) + 1}) "
            "is the preset. Wall time measured on a machine shared with "
            "other jobs."
        ),
    }
    return {
        "run": folder.name,
        "recipe": recipe["name"],
        "dataset": evaluation["dataset"],
        "model": recipe["model"]["class"],
        "selfreg": summary["selfreg"],
        "seed": summary["seed"],
        "num_images": evaluation["num_images"],
        "metrics": values,
        "summary": summary,
    }


def fmt(value, digits=3):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def group_rows(runs):
    groups = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["model"], r["selfreg"]), []).append(r)
    rows = []
    for (dataset, model, selfreg), members in sorted(groups.items()):
        stats = {k: mean_std([m["metrics"].get(k) for m in members]) for k in METRICS}
        rows.append({
            "dataset": dataset, "model": model, "selfreg": selfreg,
            "seeds": sorted(m["seed"] for m in members), "stats": stats,
        })
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", type=pathlib.Path)
    parser.add_argument("--hardware", default=None,
                        help="what the runs trained on (default: this machine)")
    parser.add_argument("--registry", action="store_true",
                        help="record multi-seed and SelfReg groups as the "
                        "datasets' experiments in keras_pu/zoo/registry.json")
    args = parser.parse_args(argv)
    hardware = args.hardware or default_hardware()

    runs = []
    for folder in sorted(p for p in args.runs_dir.iterdir() if p.is_dir()):
        if not (folder / "recipe.json").is_file():
            continue
        run = read_run(folder, hardware)
        if run is None:
            print(f"skipped {folder.name}: not evaluated yet", file=sys.stderr)
            continue
        (folder / "training_summary.json").write_text(
            json.dumps(run["summary"], indent=2) + "\n")
        runs.append(run)

    print("| Run | Dataset | Model | SelfReg | Seed | Epochs | Wall (min) | "
          + " | ".join(HEADERS[k] for k in METRICS) + " |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(METRICS))
    for r in runs:
        s = r["summary"]
        print(f"| {r['run']} | {r['dataset']} | {MODEL_LABELS[r['model']]} | "
              f"{'on' if r['selfreg'] else 'off'} | {r['seed']} | {s['epochs']} | "
              f"{s['wall_minutes']:.0f} | "
              + " | ".join(fmt(r["metrics"].get(k)) for k in METRICS) + " |")
    print()
    print("| Dataset | Model | SelfReg | Seeds | "
          + " | ".join(HEADERS[k] for k in METRICS) + " |")
    print("|---|---|---|---|" + "---|" * len(METRICS))
    groups = group_rows(runs)
    for g in groups:
        cells = []
        for k in METRICS:
            mean, std = g["stats"][k]
            cells.append(fmt(mean) + (f" ± {fmt(std)}" if std is not None else ""))
        print(f"| {g['dataset']} | {MODEL_LABELS[g['model']]} | "
              f"{'on' if g['selfreg'] else 'off'} | {', '.join(map(str, g['seeds']))} | "
              + " | ".join(cells) + " |")

    if args.registry:
        from keras_pu.zoo.registry import load_registry

        registry = load_registry(ROOT / "keras_pu" / "zoo" / "registry.json")
        by_dataset = {}
        for g in groups:
            if len(g["seeds"]) < 2 and not g["selfreg"]:
                continue  # a single plain run is the preset itself
            label = MODEL_LABELS[g["model"]] + (" + SelfReg" if g["selfreg"] else "")
            by_dataset.setdefault(DATASET_KEYS[g["dataset"]], []).append({
                "label": label,
                "runs": f"{len(g['seeds'])} (seeds {', '.join(map(str, g['seeds']))})",
                "metrics": {
                    k: {"mean": m, "std": s}
                    for k, (m, s) in g["stats"].items() if m is not None
                },
                "note": "",
            })
        for key in registry.datasets:
            rows = by_dataset.get(key, [])
            if rows:
                rows[-1]["note"] = (
                    "Same recipe, seeds differ (`keras-pu train --recipe ... "
                    "--seed N`); SelfReg rows add `--selfreg`.")
            registry.update_dataset(key, experiments=rows)
        registry.save()
        print(f"\nrecorded experiments in {registry.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
