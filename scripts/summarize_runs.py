#!/usr/bin/env python
"""Collects finished training runs into the results tables of the docs
(`docs/results.md`, `--readme docs/results.md`) and the model cards.

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
import os
import pathlib
import platform
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METRICS = ("dice", "iou", "hd95", "fpr_normal")
HEADERS = {"dice": "Dice", "iou": "IoU", "hd95": "HD95 (px)",
           "fpr_normal": "FPR normal"}


def model_label(class_name):
    """The display name the model registry gives a recipe's model class."""
    from keras_pu.models.registry import get_model_spec

    return get_model_spec(class_name).display_name


def default_hardware():
    cpu = platform.processor() or "CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), no GPU"


def minutes(value, unit=" min"):
    """A wall time for the tables; unknown (None) is a dash."""
    return "—" if value is None else f"{value:.0f}{unit}"


def training_minutes(sessions, folder):
    """Minutes the run trained: the sum over its sessions of the span from
    the session's start to its last finished epoch (run.json's
    `last_epoch_ended`), so the gaps between an interruption and `--resume`
    do not count. A run written before sessions recorded their end: the
    last session ends at history.csv's last write; an earlier session
    without an end makes the total unknown (None)."""
    total = 0.0
    for i, session in enumerate(sessions):
        started = datetime.datetime.fromisoformat(session["started"])
        if session.get("last_epoch_ended"):
            ended = datetime.datetime.fromisoformat(session["last_epoch_ended"])
        elif i == len(sessions) - 1:
            ended = datetime.datetime.fromtimestamp(
                (folder / "history.csv").stat().st_mtime,
                tz=datetime.timezone.utc)
        else:
            return None
        total += (ended - started).total_seconds()
    return round(total / 60, 1)


def read_run(folder, hardware):
    recipe = json.loads((folder / "recipe.json").read_text())
    run = json.loads((folder / "run.json").read_text())
    metrics_path = folder / "eval_test" / "metrics.json"
    if not metrics_path.is_file():
        return None
    evaluation = json.loads(metrics_path.read_text())
    with open(folder / "history.csv") as f:
        history = list(csv.DictReader(f))
    wall_minutes = training_minutes(run["sessions"], folder)
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
        # The Keras dtype policy the run trained under (the run's recipe
        # holds what "auto" resolved to).
        "precision": recipe["training"]["dtype_policy"],
        "wall_minutes": wall_minutes,
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


RESULTS_START = "<!-- results:start (generated by scripts/summarize_runs.py; do not edit) -->"
RESULTS_END = "<!-- results:end -->"
PAPER = {"Kvasir-SEG": "0.959", "BUSI": "0.925 (FPR normal 0)", "ISIC 2017 Part 1": "0.942 (ISIC 2018)"}


def fmtk(key, value):
    """HD95 is in pixels: one decimal; the fractions get three."""
    return fmt(value, 1 if key == "hd95" else 3)


def cell(stats, key):
    mean, std = stats[key]
    return fmtk(key, mean) + (f" ± {fmtk(key, std)}" if std is not None else "")


def results_markdown(runs, groups):
    """The README's results tables."""
    out = []
    presets = [r for r in runs if r["run"] == r["recipe"] and not r["selfreg"]]
    out += ["Presets (one run each, seed 42), test split, scored at each image's "
            "original size:", "",
            "| Dataset | Model | Test images | Epochs | Train wall time | Dice | IoU | "
            "HD95 (px) | FPR normal | Paper's Dice (PU-UNet) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(presets, key=lambda r: (r["dataset"], r["model"] != "PUUNet")):
        s = r["summary"]
        out.append(
            f"| {r['dataset']} | `{r['run']}` | {r['num_images']} | {s['epochs']} | "
            f"{minutes(s['wall_minutes'])} | "
            + " | ".join(fmtk(k, r["metrics"].get(k)) for k in METRICS)
            + f" | {PAPER.get(r['dataset'], '—') if r['model'] == 'PUUNet' else ''} |")
    multi = [g for g in groups if len(g["seeds"]) > 1]
    if multi:
        out += ["", "Seeds (same recipe, `--seed N`), mean ± standard deviation over "
                "runs:", "",
                "| Dataset | Model | SelfReg | Seeds | Dice | IoU | HD95 (px) | Dice per seed |",
                "|---|---|---|---|---|---|---|---|"]
        for g in multi:
            per_seed = sorted(
                (r["seed"], r["metrics"]["dice"]) for r in runs
                if (r["dataset"], r["model"], r["selfreg"]) ==
                (g["dataset"], g["model"], g["selfreg"]))
            out.append(
                f"| {g['dataset']} | {model_label(g['model'])} | "
                f"{'on' if g['selfreg'] else 'off'} | {len(g['seeds'])} | "
                + " | ".join(cell(g["stats"], k) for k in ("dice", "iou", "hd95"))
                + " | " + ", ".join(f"{seed}: {fmt(d)}" for seed, d in per_seed) + " |")
    selfreg = [r for r in runs if r["selfreg"]]
    if selfreg:
        out += ["", "SelfReg (same recipe and seed, `--selfreg`):", "",
                "| Dataset | Model | Seed | SelfReg | Dice | IoU | HD95 (px) |",
                "|---|---|---|---|---|---|---|"]
        for r in selfreg:
            twins = [t for t in runs if not t["selfreg"] and t["seed"] == r["seed"]
                     and t["model"] == r["model"] and t["dataset"] == r["dataset"]]
            for t in twins + [r]:
                out.append(
                    f"| {t['dataset']} | {model_label(t['model'])} | {t['seed']} | "
                    f"{'on' if t['selfreg'] else 'off'} | "
                    + " | ".join(fmtk(k, t["metrics"].get(k)) for k in ("dice", "iou", "hd95"))
                    + " |")
    out += ["", "All runs:", "",
            "| Run | Dataset | Model | SelfReg | Seed | Epochs | Best epoch | Wall (min) | "
            + " | ".join(HEADERS[k] for k in METRICS) + " |",
            "|---|---|---|---|---|---|---|---|" + "---|" * len(METRICS)]
    for r in runs:
        s = r["summary"]
        out.append(
            f"| {r['run']} | {r['dataset']} | {model_label(r['model'])} | "
            f"{'on' if r['selfreg'] else 'off'} | {r['seed']} | {s['epochs']} | "
            f"{s['best_epoch']} | {minutes(s['wall_minutes'], unit='')} | "
            + " | ".join(fmtk(k, r["metrics"].get(k)) for k in METRICS) + " |")
    return "\n".join(out) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", type=pathlib.Path)
    parser.add_argument("--hardware", default=None,
                        help="what the runs trained on (default: this machine)")
    parser.add_argument("--readme", help="Markdown page whose results section "
                        "(between the results markers; docs/results.md) is "
                        "replaced by these tables")
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

    groups = group_rows(runs)
    text = results_markdown(runs, groups)
    print(text)
    if args.readme:
        readme = pathlib.Path(args.readme)
        old = readme.read_text(encoding="utf-8")
        if RESULTS_START not in old or RESULTS_END not in old:
            parser.error(f"{readme} has no {RESULTS_START} ... {RESULTS_END} markers")
        head, rest = old.split(RESULTS_START, 1)
        _, tail = rest.split(RESULTS_END, 1)
        readme.write_text(head + RESULTS_START + "\n" + text + RESULTS_END + tail,
                          encoding="utf-8")
        print(f"updated {readme}", file=sys.stderr)

    if args.registry:
        from keras_pu.data.dataset_registry import display_name_keys
        from keras_pu.zoo.registry import load_registry

        registry = load_registry(ROOT / "keras_pu" / "zoo" / "registry.json")
        by_dataset = {}
        for g in groups:
            if len(g["seeds"]) < 2 and not g["selfreg"]:
                continue  # a single plain run is the preset itself
            label = model_label(g["model"]) + (" + SelfReg" if g["selfreg"] else "")
            # Registry dataset keys by the dataset names `keras-pu evaluate`
            # writes.
            by_dataset.setdefault(display_name_keys()[g["dataset"]], []).append({
                "label": label,
                "runs": f"{len(g['seeds'])} (seed{'s' if len(g['seeds']) > 1 else ''} "
                        f"{', '.join(map(str, g['seeds']))})",
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
