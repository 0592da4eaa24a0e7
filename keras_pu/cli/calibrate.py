"""`keras-pu calibrate`: choose the image-level gate on validation results;
and the `--gate` option that `evaluate` and `predict` share.

The gate (`keras_pu.postprocess.PeakGate`) empties the mask of an image
whose highest probability is below a value chosen on the validation split.
Calibration needs no model: it reads the per-image results of `keras-pu
evaluate --split val`, which record each image's Dice and peak
probability.
"""

import argparse
import json
import pathlib

EXAMPLES = """\
examples:
  keras-pu evaluate runs/busi --split val      # writes runs/busi/eval_val
  keras-pu calibrate runs/busi/eval_val        # writes runs/busi/postprocess.json
  keras-pu evaluate runs/busi --split test --gate model

The gate is the value that maximises the mean validation Dice, counting an
empty prediction on an image without a target as Dice 1. It is never chosen
on the test split (calibrate refuses test results). Report results with the
gate next to those without it.
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "calibrate",
        help="choose the image-level gate on validation results",
        description="Choose the image-level gate (empty the mask when the "
        "highest probability is below it) from the per-image results of "
        "`keras-pu evaluate --split val`. RESULTS is the folder evaluate "
        "wrote (metrics.json + per_image.csv).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results", metavar="RESULTS")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="where the gate goes (default: postprocess.json in "
                   "the run or model folder the results belong to)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing gate file")
    p.set_defaults(run=run)
    return p


def add_gate_argument(parser):
    parser.add_argument(
        "--gate", default="none", metavar="none|model|P",
        help="image-level gate: empty the mask of an image whose highest "
        "probability is below it. none (default); model: the gate that comes "
        "with the model (keras-pu calibrate, or the preset's); or a number "
        "in [0, 1]")


def resolve_gate(value, model_spec, threshold):
    """The `PeakGate` that `--gate` asks for, or None."""
    from keras_pu.inference import find_gate
    from keras_pu.postprocess import GateError
    from keras_pu.postprocess import PeakGate

    if value == "none":
        return None
    if value == "model":
        gate = find_gate(model_spec)
        if gate is None:
            raise GateError(
                f"--gate model: '{model_spec}' comes with no gate (no "
                "postprocess.json beside it, no postprocess entry in the "
                "zoo registry). Choose one on the validation split with "
                "`keras-pu evaluate MODEL --split val` then `keras-pu "
                "calibrate MODEL/eval_val`, or give --gate none."
            )
        return PeakGate(gate.min_peak_probability, threshold=threshold,
                        tta=gate.tta, calibration=gate.calibration)
    try:
        number = float(value)
    except ValueError:
        raise GateError(
            f"--gate must be none, model or a number in [0, 1]; got {value!r}."
        ) from None
    return PeakGate(number, threshold=threshold)


def _default_output(results_dir):
    """postprocess.json in the run/model folder that holds the results."""
    from keras_pu.postprocess import GATE_FILE

    folder = results_dir.parent
    if (folder / "model.keras").is_file() or (folder / "config.json").is_file():
        return folder / GATE_FILE
    return None


def run(args):
    import sys

    from keras_pu.atomic_files import check_overwrite
    from keras_pu.postprocess import GateError
    from keras_pu.postprocess import PeakGate
    from keras_pu.postprocess import choose_peak_gate
    from keras_pu.postprocess import read_calibration_csv

    def fail(message):
        print(f"keras-pu calibrate: error: {message}", file=sys.stderr)
        return 2

    results = pathlib.Path(args.results)
    results_dir = results.parent if results.is_file() else results
    metrics_path = results_dir / "metrics.json"
    csv_path = results if results.is_file() else results_dir / "per_image.csv"
    try:
        info = json.loads(metrics_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return fail(
            f"no metrics.json in '{results_dir}': give the folder `keras-pu "
            "evaluate --split val` wrote."
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return fail(f"'{metrics_path}' is not valid JSON ({e}).")
    split = info.get("split")
    if split == "test":
        return fail(
            f"'{results_dir}' holds test-split results. A gate chosen on the "
            "test split would make the test score meaningless: evaluate with "
            "--split val and calibrate on that."
        )
    if info.get("gate") is not None:
        return fail(
            f"'{results_dir}' was evaluated with a gate already; evaluate "
            "with --gate none and calibrate on that."
        )
    try:
        ids, peaks, dice, empty = read_calibration_csv(csv_path)
        choice = choose_peak_gate(peaks, dice, empty)
    except GateError as e:
        return fail(str(e))
    output = pathlib.Path(args.output) if args.output else _default_output(results_dir)
    if output is None:
        return fail(
            f"'{results_dir}' is not inside a run or model folder: give "
            "--output FILE."
        )
    try:
        check_overwrite(output, args.overwrite)
    except FileExistsError as e:
        return fail(str(e))
    calibration = {
        "split": split,
        "split_name": info.get("split_name"),
        "dataset": info.get("dataset"),
        **choice,
    }
    calibration.pop("min_peak_probability")
    gate = PeakGate(choice["min_peak_probability"],
                    threshold=info.get("threshold", 0.5),
                    tta=info.get("tta", "none"), calibration=calibration)
    gate.save(output)

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    print(
        f"gate {gate.min_peak_probability:.4f} chosen on {len(ids)} {split} "
        f"images ({choice['num_empty']} without a target): mean Dice "
        f"{fmt(choice['dice_before'])} -> {fmt(choice['dice_after'])}, "
        "false-positive rate on empty images "
        f"{fmt(choice['false_positive_rate_before'])} -> "
        f"{fmt(choice['false_positive_rate_after'])}, "
        f"{choice['lesion_images_gated']} image(s) with a target emptied.\n"
        f"wrote {output}; apply it with --gate model."
    )
    return 0
