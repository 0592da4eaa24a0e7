#!/usr/bin/env python
"""Records finished training runs in the repository, without their weights,
so that the results built from them outlive the machine that trained them.

    python scripts/record_run.py RUN [RUN ...] --into experiments/STUDY

A run folder of `keras-pu train` holds gigabytes of checkpoints and a model
that must not enter git history, and a few kilobytes that every results
table and comparison is built from. This copies those into
`STUDY/<run folder name>/`:

    recipe.json, run.json, history.csv      what trained, how, and its log
    eval_<split>/metrics.json               every `keras-pu evaluate` result
    eval_<split>/per_image.csv              (the per-image scores `keras-pu
                                            compare` bootstraps over)

Absolute paths of the training machine (dataset folders, output folders)
become null in the JSON files and empty cells in the CSV files. Never
copied: model.keras, checkpoints, anything else. A recorded folder is a
run folder to `keras-pu compare` and `scripts/summarize_runs.py`:

    keras-pu compare experiments/STUDY/a_s{1,2,3} --against experiments/STUDY/b_s{1,2,3}
    python scripts/summarize_runs.py experiments/STUDY --hardware "..."

Recording again replaces the run's recorded files (a re-evaluated run, say).
"""

import argparse
import csv
import io
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.machine_paths import is_machine_path  # noqa: E402
from tools.machine_paths import without_machine_paths  # noqa: E402

# What a run folder must hold to be worth recording: what it trained and a
# scored evaluation.
RUN_FILES = ("recipe.json", "run.json", "history.csv")
EVAL_FILES = ("metrics.json", "per_image.csv")


class RecordError(Exception):
    """A run folder that cannot be recorded (the message says why)."""


def json_text(path):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RecordError(f"{path}: not readable JSON ({error})") from None
    return json.dumps(without_machine_paths(data), indent=2) + "\n"


def csv_text(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow(["" if is_machine_path(cell) else cell for cell in row])
    return out.getvalue()


def recorded_files(run):
    """{relative path: text} of what `run` records.

    Raises:
        RecordError: `run` lacks a training file or any evaluation.
    """
    run = pathlib.Path(run)
    missing = [name for name in RUN_FILES if not (run / name).is_file()]
    if missing:
        raise RecordError(
            f"{run}: not a finished `keras-pu train` run folder (no "
            f"{', '.join(missing)})."
        )
    evaluations = sorted(
        p for p in run.glob("eval_*")
        if all((p / name).is_file() for name in EVAL_FILES)
    )
    if not evaluations:
        raise RecordError(
            f"{run}: no evaluation to record; run `keras-pu evaluate {run} "
            "--split test` first."
        )
    files = {
        "recipe.json": json_text(run / "recipe.json"),
        "run.json": json_text(run / "run.json"),
        "history.csv": csv_text(run / "history.csv"),
    }
    for folder in evaluations:
        files[f"{folder.name}/metrics.json"] = json_text(folder / "metrics.json")
        files[f"{folder.name}/per_image.csv"] = csv_text(folder / "per_image.csv")
    return files


def record(run, study):
    """Writes `run`'s recorded files under `study/<run name>/`; returns the
    folder written."""
    run = pathlib.Path(run)
    files = recorded_files(run)
    # The name the run is given here, not its target's if it is a link:
    # one run can be recorded in two studies under each one's arm name.
    target = pathlib.Path(study) / pathlib.Path(os.path.abspath(run)).name
    for name, text in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=pathlib.Path,
                        help="run folders of `keras-pu train`, evaluated")
    parser.add_argument("--into", required=True, type=pathlib.Path,
                        help="the study folder, e.g. experiments/selfreg_kvasir")
    args = parser.parse_args(argv)
    # Check every run before writing any: a typo in the last one leaves
    # the study untouched.
    try:
        for run in args.runs:
            recorded_files(run)
    except RecordError as error:
        print(f"record_run: {error}", file=sys.stderr)
        return 1
    for run in args.runs:
        print(f"recorded {record(run, args.into)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
