#!/usr/bin/env python
"""Trains, evaluates and records a study: the same recipe over seeds, in two
or more arms that differ by a few flags (SelfReg off / on, one decoder / the
other).

    python scripts/run_study.py runs/selfreg_kvasir_128 \\
        --recipe pu_unet_efficientnet_lite0_kvasir --data <Kvasir-SEG folder> \\
        --train-args "--image-size 128 --epochs 12" \\
        --arm off="--no-selfreg" --arm on="--selfreg" --seeds 1 2 3 \\
        --record experiments/selfreg_kvasir_128

Run `<arm>_s<seed>` of the study folder is `keras-pu train --recipe RECIPE
--data DATA TRAIN_ARGS ARM_ARGS --seed SEED`, then `keras-pu evaluate RUN
--split test`, then (with --record) `scripts/record_run.py RUN --into
RECORD`. The runs go seed by seed, every arm of a seed before the next
seed, so that a study cut short leaves complete pairs. Started again, it
continues where it stopped: a run recorded in RECORD or with a test
evaluation is done (so a new arm can be added to a study whose earlier
runs survive only as records), one with a final model is only evaluated, a
folder without one resumes from its last checkpoint (`--resume`, which
refuses changed flags). Each run's output goes to `<run>.log` in the study
folder; this prints one line per step.

`--dry-run` prints the commands that are still to run, and runs nothing.
"""

import argparse
import pathlib
import shlex
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def parse_arm(text):
    """'name=flags' -> (name, [flags])."""
    name, sep, flags = text.partition("=")
    # Letters and digits only: run folders are <arm>_s<seed>, and
    # summarize_runs.py --pair reads the arm back as what precedes "_s<seed>"
    # after the last other underscore.
    if not sep or not name.isascii() or not name.isalnum():
        raise argparse.ArgumentTypeError(
            f"--arm takes NAME=FLAGS with NAME of letters and digits only, e.g. "
            f"on=\"--selfreg\"; got {text!r}")
    return name, shlex.split(flags)


def plan(study, recipe, data, train_args, arms, seeds, backend, record=None):
    """The steps still to run: a list of (run folder, what, argv)."""
    study = pathlib.Path(study)
    cli = [sys.executable, "-m", "keras_pu.cli", "--backend", backend]
    steps = []
    for seed in seeds:
        for name, flags in arms:
            run = study / f"{name}_s{seed}"
            if record and (pathlib.Path(record) / run.name / "eval_test"
                           / "metrics.json").is_file():
                # Recorded (in an earlier session, say): the record is all a
                # study's tables need, so the run folder may be gone.
                continue
            if (run / "eval_test" / "metrics.json").is_file():
                if record and not (pathlib.Path(record) / run.name).is_dir():
                    steps.append((run, "record", _record_argv(run, record)))
                continue
            if not (run / "model.keras").is_file():
                argv = cli + ["train", "--recipe", recipe, "--data", str(data),
                              *train_args, *flags, "--seed", str(seed),
                              "--output", str(run), "--verbose", "2"]
                resume = (run / "run.json").is_file()
                steps.append((run, "resume" if resume else "train",
                              argv + (["--resume"] if resume else [])))
            steps.append((run, "evaluate", cli + [
                "evaluate", str(run), "--split", "test", "--data", str(data)]))
            if record:
                steps.append((run, "record", _record_argv(run, record)))
    return steps


def _record_argv(run, record):
    return [sys.executable, str(ROOT / "scripts" / "record_run.py"), str(run),
            "--into", str(record)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=pathlib.Path,
                        help="folder of the study's run folders")
    parser.add_argument("--recipe", required=True,
                        help="preset recipe name or recipe JSON file")
    parser.add_argument("--data", required=True, type=pathlib.Path,
                        help="dataset folder")
    parser.add_argument("--arm", action="append", type=parse_arm, required=True,
                        dest="arms", metavar="NAME=FLAGS",
                        help="an arm and its `keras-pu train` flags (repeat)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--train-args", default="",
                        help="`keras-pu train` flags common to every arm")
    parser.add_argument("--backend", default="tensorflow",
                        choices=("tensorflow", "torch", "jax"))
    parser.add_argument("--record", type=pathlib.Path,
                        help="record each evaluated run here (record_run.py)")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    names = [name for name, _ in args.arms]
    if len(set(names)) != len(names):
        parser.error(f"arm names must differ, got {names}")
    if not args.data.is_dir():
        parser.error(f"--data {args.data}: no such folder")

    steps = plan(args.study, args.recipe, args.data,
                 shlex.split(args.train_args), args.arms, args.seeds,
                 args.backend, args.record)
    if args.dry_run:
        for run, what, command in steps:
            print(f"{what:8s} {run.name}: {shlex.join(command)}")
        return 0
    args.study.mkdir(parents=True, exist_ok=True)
    for run, what, command in steps:
        log = args.study / f"{run.name}.log"
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {what} {run.name}", flush=True)
        with open(log, "a") as out:
            rc = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
        if rc != 0:
            print(f"{what} {run.name} failed (exit {rc}); see {log}", file=sys.stderr)
            return rc
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} study complete", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
