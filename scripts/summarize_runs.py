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

With --pair ARM_A ARM_B, RUNS_DIR is a study (scripts/run_study.py, or a
recorded one in experiments/) whose runs train two arms over the same
seeds: it prints one table, each seed's two test Dice values with the
paired-bootstrap difference over the test images, and the mean over seeds
with the bootstrap over seeds and images (what `keras-pu compare --against`
computes); with --readme it replaces that study's marked section.

    python scripts/summarize_runs.py experiments/selfreg_kvasir_128 --pair on off \
        --readme docs/results.md

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
import re
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
        "best_val_dice": float(best["val_dice"]),
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


# A study's run folders are named `[prefix_]<arm>_s<seed>` (scripts/run_study.py
# writes `<arm>_s<seed>`).
STUDY_RUN = re.compile(r"^(?:.*_)?(?P<arm>[A-Za-z0-9]+)_s(?P<seed>\d+)$")


def study_markers(name, arm_a, arm_b):
    """The markers of a study's table of `arm_a` against `arm_b` in a page
    (a study of three arms can have a table per pair)."""
    key = f"{name}:{arm_a}-{arm_b}"
    return (f"<!-- study:{key}:start (generated by scripts/summarize_runs.py "
            "--pair; do not edit) -->", f"<!-- study:{key}:end -->")


def paired_study_markdown(runs, folder, arm_a, arm_b):
    """The table of a study that trained two arms over the same seeds: per
    seed each arm's test scores and the paired-bootstrap difference over
    the test images, then the mean over seeds with the bootstrap over
    seeds and images (`keras-pu compare --against`).

    Raises:
        ValueError: no seed has a run of both arms.
    """
    from keras_pu.metrics.comparison import compare_per_image
    from keras_pu.metrics.comparison import compare_seed_groups

    arms = {}
    for r in runs:
        match = STUDY_RUN.match(r["run"])
        if match:
            arms.setdefault(match["arm"], {})[int(match["seed"])] = r
    a, b = arms.get(arm_a, {}), arms.get(arm_b, {})
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(
            f"{folder}: no seed has runs of both arms {arm_a!r} and {arm_b!r} "
            f"(arms found: {sorted(arms)}; run folders are named "
            "[prefix_]<arm>_s<seed>)")

    def scores(run):
        return folder / run["run"] / "eval_test"

    normal = any(r["metrics"].get("fpr_normal") is not None
                 for r in list(a.values()) + list(b.values()))
    head = (f"| Seed | Dice {arm_a} | Dice {arm_b} | {arm_a} − {arm_b}, 95 % CI over "
            f"the test images | HD95 {arm_a} / {arm_b} (px) | "
            + (f"FPR normal {arm_a} / {arm_b} | " if normal else "")
            + f"Best val Dice {arm_a} / {arm_b} (epoch) |")
    out = [head, "|---" * (head.count("|") - 1) + "|"]

    def pair(key, ra, rb):
        return f"{fmtk(key, ra['metrics'].get(key))} / {fmtk(key, rb['metrics'].get(key))}"

    for seed in seeds:
        ra, rb = a[seed], b[seed]
        d = compare_per_image(scores(ra), scores(rb))
        out.append(
            f"| {seed} | {ra['metrics']['dice']:.4f} | {rb['metrics']['dice']:.4f} | "
            f"{d['mean_difference']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}], "
            f"p = {d['p_value']:.2g} | {pair('hd95', ra, rb)} | "
            + (f"{pair('fpr_normal', ra, rb)} | " if normal else "")
            + f"{ra['best_val_dice']:.4f} / {rb['best_val_dice']:.4f} "
            f"({ra['summary']['best_epoch']} / {rb['summary']['best_epoch']} "
            f"of {ra['summary']['epochs']}) |")
    group = compare_seed_groups([scores(a[s]) for s in seeds],
                                [scores(b[s]) for s in seeds])
    both = group["seeds_and_images"]

    def mean_cell(arm, key, digits):
        mean, std = mean_std([arm[s]["metrics"].get(key) for s in seeds])
        if mean is None:
            return "—"
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")

    out.append(
        f"| mean ± sd | {mean_cell(a, 'dice', 4)} | {mean_cell(b, 'dice', 4)} | "
        f"{group['mean_difference']:+.4f} [{both['ci_low']:+.4f}, {both['ci_high']:+.4f}], "
        f"p = {both['p_value']:.2g} (over seeds and images) | "
        f"{mean_cell(a, 'hd95', 1)} / {mean_cell(b, 'hd95', 1)} | "
        + (f"{mean_cell(a, 'fpr_normal', 3)} / {mean_cell(b, 'fpr_normal', 3)} | "
           if normal else "")
        + " |")
    out += ["", f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} "
            f"({', '.join(map(str, seeds))}), "
            f"{group['num_images']} test images. Over the images alone, for the "
            f"seed-averaged models: {group['mean_difference']:+.4f} "
            f"[{group['ci_low']:+.4f}, {group['ci_high']:+.4f}], "
            f"p = {group['p_value']:.2g}."]
    return "\n".join(out) + "\n"


def replace_section(page, start, end, text):
    """Replaces the text between the markers `start` and `end` of `page`."""
    old = page.read_text(encoding="utf-8")
    if start not in old or end not in old:
        raise ValueError(f"{page} has no {start} ... {end} markers")
    head, rest = old.split(start, 1)
    _, tail = rest.split(end, 1)
    page.write_text(head + start + "\n" + text + end + tail, encoding="utf-8")


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
    parser.add_argument("--pair", nargs=2, metavar=("ARM_A", "ARM_B"),
                        help="RUNS_DIR is a study (run folders named "
                        "[prefix_]<arm>_s<seed>): print the paired table of "
                        "ARM_A against ARM_B; with --readme, replace the "
                        "page's section between the study's markers "
                        "(<!-- study:<RUNS_DIR name>:<ARM_A>-<ARM_B>:start ... -->)")
    args = parser.parse_args(argv)
    if args.pair and args.registry:
        parser.error("--pair and --registry do not go together")
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

    if args.pair:
        try:
            text = paired_study_markdown(runs, args.runs_dir, *args.pair)
        except ValueError as error:
            parser.error(str(error))
        markers = study_markers(args.runs_dir.resolve().name, *args.pair)
    else:
        groups = group_rows(runs)
        text = results_markdown(runs, groups)
        markers = (RESULTS_START, RESULTS_END)
    print(text)
    if args.readme:
        try:
            replace_section(pathlib.Path(args.readme), *markers, text)
        except ValueError as error:
            parser.error(str(error))
        print(f"updated {args.readme}", file=sys.stderr)

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
