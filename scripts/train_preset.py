#!/usr/bin/env python
"""Trains a zoo preset from its recipe and puts the result in the zoo: the
maintainer's one command from a dataset to `zoo/<preset>/`.

    python scripts/train_preset.py pu_unet_efficientnet_lite0_busi \\
        --data <BUSI folder> --record experiments/presets

Steps, each a command you could type yourself (`--dry-run` prints them):

    keras-pu train --recipe PRESET --data DATA [TRAIN_ARGS] --output RUN
    keras-pu evaluate RUN --split test                    -> RUN/eval_test
    (gate) keras-pu evaluate RUN --split val              -> RUN/eval_val
           keras-pu calibrate RUN/eval_val                -> RUN/postprocess.json
           keras-pu evaluate RUN --split test --gate model -> RUN/eval_test_gated
    RUN/training_summary.json   hardware, backend, epochs, wall time, note
    python zoo/add_preset.py PRESET --model RUN/model.keras ...
    (gate) python zoo/add_gate.py PRESET ...
    (--record) python scripts/record_run.py RUN --into RECORD

RUN is `runs/<preset>` unless `--run` says otherwise. The gate (an
image-level "is there a lesion at all" threshold, chosen on the validation
images only) is made for presets whose registry entry has one, the BUSI
presets; `--gate` / `--no-gate` decide otherwise.

Started again, it continues where it stopped: a run without a final model
resumes from its last checkpoint (`--resume`, which refuses changed flags),
an evaluation or gate already written is kept, and the zoo steps, which
are cheap, run again. Delete RUN to start over. Each command's output goes
to `RUN.log`; this prints one line per step.

Long runs belong on a GPU (`TRAIN_ARGS` such as "--epochs 20" shorten the
recipe for a CPU; the model card then says so). Publishing stays a separate,
deliberate step: `python zoo/publish.py PRESET`.
"""

import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import summarize_runs  # noqa: E402

SUMMARY = "summary"  # the step done here, not by a command


def registry_preset(name):
    """The preset's registry entry; SystemExit with the registry's own
    message (close names suggested) if there is none."""
    from keras_pu.zoo.errors import UnknownPresetError
    from keras_pu.zoo.registry import load_registry

    try:
        return load_registry().get(name)
    except UnknownPresetError as error:
        raise SystemExit(f"train_preset: {error}") from None


def plan(preset, data, run, train_args=(), backend="tensorflow", gate=False,
         record=None, update_architecture=False):
    """The steps still to run: a list of (what, argv), argv None for the
    summary this script writes itself."""
    run = pathlib.Path(run)
    cli = [sys.executable, "-m", "keras_pu.cli", "--backend", backend]
    steps = []
    if not (run / "model.keras").is_file():
        argv = cli + ["train", "--recipe", preset, "--data", str(data),
                      *train_args, "--output", str(run), "--verbose", "2"]
        if (run / "run.json").is_file():
            steps.append(("resume", argv + ["--resume"]))
        else:
            steps.append(("train", argv))

    def evaluate(split, output, *extra):
        if not (run / output / "metrics.json").is_file():
            steps.append((f"evaluate {output}", cli + [
                "evaluate", str(run), "--split", split, "--data", str(data),
                "--output", str(run / output), *extra]))

    evaluate("test", "eval_test")
    if gate:
        evaluate("val", "eval_val")
        if not (run / "postprocess.json").is_file():
            steps.append(("calibrate", cli + [
                "calibrate", str(run / "eval_val"),
                "--output", str(run / "postprocess.json")]))
        evaluate("test", "eval_test_gated", "--gate", "model")
    steps.append((SUMMARY, None))
    script = [sys.executable]
    steps.append(("add_preset", script + [
        str(ROOT / "zoo" / "add_preset.py"), preset,
        "--model", str(run / "model.keras"),
        "--metrics", str(run / "eval_test" / "metrics.json"),
        "--recipe", str(run / "recipe.json"),
        "--training", str(run / "training_summary.json"),
        *(["--update-architecture"] if update_architecture else [])]))
    if gate:
        steps.append(("add_gate", script + [
            str(ROOT / "zoo" / "add_gate.py"), preset,
            "--gate", str(run / "postprocess.json"),
            "--metrics", str(run / "eval_test_gated" / "metrics.json")]))
    if record:
        steps.append(("record", script + [
            str(ROOT / "scripts" / "record_run.py"), str(run),
            "--into", str(record)]))
    return steps


def shipped_epochs(preset):
    """The epochs of the preset's shipped recipe (None for an unknown one)."""
    path = ROOT / "keras_pu" / "training" / "recipes" / f"{preset}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))["training"]["epochs"]


def training_note(preset, train_args, recipe_epochs, planned_epochs,
                  epochs_run, best_epoch):
    """The model card's sentence on how the weights were trained.

    Args:
        preset: the recipe's name.
        train_args: the `keras-pu train` flags added to the recipe.
        recipe_epochs: the shipped recipe's epochs.
        planned_epochs: the epochs the run was given (after TRAIN_ARGS).
        epochs_run: the epochs it trained (fewer if it stopped early).
        best_epoch: 1-based epoch of the best validation Dice.
    """
    command = shlex.join(["keras-pu", "train", "--recipe", preset, *train_args])
    if recipe_epochs is not None and planned_epochs < recipe_epochs:
        length = f", shortened to {planned_epochs} of the recipe's {recipe_epochs} epochs"
    else:
        length = f", {planned_epochs} epochs"
    if epochs_run < planned_epochs:
        length += f"; early stopping ended it after {epochs_run}"
    return (f"Recipe `{preset}` (`{command}`){length}; the checkpoint with the "
            f"best validation Dice (epoch {best_epoch}) is the preset. Wall time "
            "measured on a machine shared with other jobs.")


def write_summary(preset, run, train_args, hardware):
    """RUN/training_summary.json, what `zoo/add_preset.py --training` puts
    in the model card."""
    run = pathlib.Path(run)
    summary = summarize_runs.read_run(run, hardware)["summary"]
    recipe = json.loads((run / "recipe.json").read_text(encoding="utf-8"))
    summary["note"] = training_note(
        preset, train_args, shipped_epochs(preset),
        recipe["training"]["epochs"], summary["epochs"], summary["best_epoch"])
    (run / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("preset", help="preset name in keras_pu/zoo/registry.json")
    parser.add_argument("--data", required=True, type=pathlib.Path,
                        help="dataset folder in its official layout")
    parser.add_argument("--run", type=pathlib.Path,
                        help="run folder (default: runs/<preset>)")
    parser.add_argument("--train-args", default="",
                        help='`keras-pu train` flags added to the recipe, e.g. "--epochs 20"')
    parser.add_argument("--backend", default="tensorflow",
                        choices=("tensorflow", "torch", "jax"))
    parser.add_argument("--gate", action=argparse.BooleanOptionalAction,
                        help="choose and record the image-level gate (default: "
                        "when the preset has one in the registry)")
    parser.add_argument("--hardware",
                        help="what it trains on, for the card (default: this machine)")
    parser.add_argument("--record", type=pathlib.Path,
                        help="also record the run here (scripts/record_run.py), "
                        "e.g. experiments/presets")
    parser.add_argument("--update-architecture", action="store_true",
                        help="passed to zoo/add_preset.py: the preset's "
                        "architecture changed on purpose")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)

    entry = registry_preset(args.preset)
    gate = entry.postprocess is not None if args.gate is None else args.gate
    if not args.data.is_dir():
        parser.error(f"--data {args.data}: no such folder")
    run = args.run or ROOT / "runs" / args.preset
    train_args = shlex.split(args.train_args)
    steps = plan(args.preset, args.data, run, train_args, args.backend, gate,
                 args.record, args.update_architecture)
    if args.dry_run:
        for what, command in steps:
            print(f"{what:24s} {shlex.join(command) if command else run / 'training_summary.json'}")
        return 0

    run.parent.mkdir(parents=True, exist_ok=True)
    log = run.with_name(run.name + ".log")
    # The zoo scripts rebuild and reload the model: on the run's backend.
    env = dict(os.environ, KERAS_BACKEND=args.backend)
    for what, command in steps:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {what}", flush=True)
        if command is None:
            write_summary(args.preset, run, train_args,
                          args.hardware or summarize_runs.default_hardware())
            continue
        with open(log, "a") as out:
            rc = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT,
                                 env=env)
        if rc != 0:
            print(f"{what} failed (exit {rc}); see {log}", file=sys.stderr)
            return rc
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {args.preset} is in zoo/ "
          f"(trained, not published): review `git diff`, then "
          f"`python zoo/publish.py {args.preset}`", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
