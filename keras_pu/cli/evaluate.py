"""`keras-pu evaluate`: score a model on a dataset split; writes a metrics
JSON and a per-image CSV."""

import argparse

from keras_pu.cli.calibrate import add_gate_argument
from keras_pu.cli.calibrate import resolve_gate
from keras_pu.cli.train import _image_size

EXAMPLES = """\
examples:
  keras-pu evaluate runs/pu_kvasir --data data/Kvasir-SEG --split test
  keras-pu evaluate model.keras --data data/BUSI --layout busi --split-name busi --split test --tta flip

Predictions are resized back to each image's original size (bilinear on the
probabilities, then thresholded at p > threshold) before scoring. Dice, IoU,
precision, recall and HD95 are computed per image and averaged over images;
the image-level false-positive rate is over images whose ground truth is
empty. See keras_pu/metrics/evaluation.py for the exact definitions.

--gate model applies the image-level gate that comes with the model (a
run's postprocess.json from `keras-pu calibrate`, or a preset's): images
whose highest probability is below it get an empty mask. per_image.csv
records each image's peak_probability either way (what calibrate reads).
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "evaluate",
        help="score a model on a dataset split (metrics JSON + per-image CSV)",
        description="Evaluate a model on a split of a dataset. MODEL is a "
        ".keras file, a training run folder, a Keras model folder (preset "
        "folder) or a preset name.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--data", metavar="PATH",
                   help="dataset folder (default: the path in the model's "
                   "recipe)")
    p.add_argument("--layout", help="dataset layout (default: the recipe's, "
                   "else auto-detected)")
    p.add_argument("--split", default="test", choices=("train", "val", "test",
                                                       "all"),
                   help="which part to score (default: test; all: every "
                   "image of the folder)")
    p.add_argument("--split-name", metavar="NAME",
                   help="committed split to take it from (default: the "
                   "recipe's; 'random' for the recipe's seeded random split)")
    p.add_argument("--output", "-o", metavar="DIR",
                   help="where metrics.json and per_image.csv go (default: "
                   "<run folder>/eval_<split>, or eval_<model>_<split>)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="foreground when probability > threshold (0.5)")
    p.add_argument("--tta", choices=("none", "hflip", "vflip", "flip"),
                   default="none", help="test-time flip augmentation")
    add_gate_argument(p)
    p.add_argument("--image-size", metavar="N|HxW", type=_image_size,
                   help="model input size (default: the model's)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--hd95-one-empty", choices=("nan", "diagonal"),
                   default="nan", help="HD95 when exactly one of prediction "
                   "and ground truth is empty (default: nan, left out of the "
                   "mean and counted)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="score only the first N images (smoke runs)")
    p.add_argument("--skip-bad-pairs", action="store_true",
                   help="leave broken image/mask pairs out (with a warning)")
    p.set_defaults(run=run)
    return p


def _resolve_data(args, recipe):
    """(data_path, layout, split_name, seed)."""
    from keras_pu.data import DatasetError

    data = recipe["data"] if recipe is not None else {}
    path = args.data or data.get("path")
    if path is None:
        raise DatasetError(
            "No dataset folder: give --data PATH (the model has no recipe "
            "that names one)."
        )
    layout = args.layout or data.get("layout", "auto")
    if args.split_name is not None:
        split_name = None if args.split_name == "random" else args.split_name
    elif recipe is not None:
        split_name = data["split"]
    else:
        split_name = "auto"
    seed = recipe["training"]["seed"] if recipe is not None else 42
    return path, layout, split_name, seed


def run(args):
    import pathlib
    import sys
    import time

    import keras
    import numpy as np

    from keras_pu.data import DatasetError
    from keras_pu.data import ImageReadError
    from keras_pu.data import load_dataset
    from keras_pu.data import read_mask
    from keras_pu.inference import ModelLoadError
    from keras_pu.inference import Segmenter
    from keras_pu.inference import load_segmentation_model
    from keras_pu.metrics import SegmentationEvaluator
    from keras_pu.data.recipe_splits import split_dataset
    from keras_pu.postprocess import GateError
    from keras_pu.postprocess import peak_probability

    def fail(message):
        print(f"keras-pu evaluate: error: {message}", file=sys.stderr)
        return 2

    if not 0 <= args.threshold < 1:
        return fail(f"--threshold must be in [0, 1), got {args.threshold}")
    try:
        image_size = args.image_size
        gate = resolve_gate(args.gate, args.model, args.threshold)
        model, recipe = load_segmentation_model(args.model)
        path, layout, split_name, seed = _resolve_data(args, recipe)
        dataset = load_dataset(
            layout, path, on_error="skip" if args.skip_bad_pairs else "raise"
        )
        if args.split == "all":
            subset = dataset
        else:
            data_section = {
                "split": split_name,
                "val_fraction": 0.1,
                "test_fraction": 0.1,
            }
            if recipe is not None:
                data_section.update(
                    val_fraction=recipe["data"]["val_fraction"],
                    test_fraction=recipe["data"]["test_fraction"],
                )
            subset = split_dataset(dataset, data_section, seed,
                                   (args.split,))[args.split]
        if args.limit:
            subset = subset.subset(subset.ids[:args.limit])
        if len(subset) == 0:
            return fail(
                f"the {args.split} split of {dataset.name} at '{path}' is "
                "empty."
            )
        segmenter = Segmenter(model, image_size=image_size, recipe=recipe,
                              tta=args.tta, batch_size=args.batch_size)
        evaluator = SegmentationEvaluator(
            threshold=args.threshold, hd95_one_empty=args.hd95_one_empty
        )
    except (ModelLoadError, DatasetError, ValueError, ImageReadError,
            GateError) as e:
        return fail(str(e))
    if gate is not None and gate.tta != args.tta:
        print(
            f"keras-pu evaluate: warning: the gate was chosen with TTA "
            f"{gate.tta}, this run uses {args.tta}: its value may not carry "
            "over.", file=sys.stderr,
        )

    model_path = pathlib.Path(args.model)
    if args.output:
        out_dir = pathlib.Path(args.output)
    elif model_path.is_dir() and (model_path / "model.keras").is_file():
        out_dir = model_path / f"eval_{args.split}"
    else:
        out_dir = pathlib.Path(f"eval_{model_path.stem}_{args.split}")
    out_dir.mkdir(parents=True, exist_ok=True)

    gate_text = (
        "" if gate is None
        else f", gate {gate.min_peak_probability:.4f} (peak probability)"
    )
    print(
        f"keras-pu evaluate: {args.model} on {dataset.name} "
        f"({args.split}: {len(subset)} images), input "
        f"{segmenter.height}x{segmenter.width}, TTA {args.tta}{gate_text}, "
        f"backend {keras.backend.backend()}",
        flush=True,
    )
    progress = keras.utils.Progbar(len(subset), unit_name="image")
    samples = list(subset)
    start = time.time()
    for first in range(0, len(samples), args.batch_size):
        chunk = samples[first:first + args.batch_size]
        try:
            inputs, sizes = zip(*(segmenter.read(s.image_path) for s in chunk))
            truths = [read_mask(s.mask_paths) for s in chunk]
        except (ImageReadError, ValueError) as e:
            return fail(
                f"{e}. Fix the file, or pass --skip-bad-pairs to check the "
                "dataset and leave broken pairs out."
            )
        probabilities = segmenter.predict_arrays(list(inputs), list(sizes))
        for sample, prob, truth in zip(chunk, probabilities, truths):
            if prob.shape != truth.shape:
                # The loader checks image and mask sizes; a mismatch here is
                # a file changed since.
                return fail(
                    f"'{sample.image_path}' is {prob.shape[1]}x"
                    f"{prob.shape[0]} but its mask is {truth.shape[1]}x"
                    f"{truth.shape[0]}."
                )
            extra = {"peak_probability": peak_probability(prob)}
            if gate is not None:
                extra["gated"] = not gate.keeps(prob)
                if extra["gated"]:
                    prob = np.zeros_like(prob)
            evaluator.add(sample.id, prob, truth,
                          metadata={**extra, **(sample.metadata or {})})
        progress.add(len(chunk))
    seconds = time.time() - start

    info = {
        "model": str(args.model),
        "dataset": dataset.name,
        "layout": dataset.layout,
        "data_path": str(pathlib.Path(path).resolve()),
        "split": args.split,
        "split_name": split_name,
        "input_size": [segmenter.height, segmenter.width],
        "tta": args.tta,
        "gate": None if gate is None else gate.min_peak_probability,
        "scored_at": "original image size (probabilities resized bilinearly, "
        "then thresholded)",
        "backend": keras.backend.backend(),
        "seconds": round(seconds, 2),
    }
    metrics_path = out_dir / "metrics.json"
    csv_path = out_dir / "per_image.csv"
    evaluator.write_json(metrics_path, extra=info)
    evaluator.write_csv(csv_path)
    summary = evaluator.summary()

    def fmt(value):
        return "n/a" if value is None else f"{value:.4f}"

    lines = [
        f"{summary['num_images']} images: Dice {fmt(summary['dice'])}, IoU "
        f"{fmt(summary['iou'])}, precision {fmt(summary['precision'])}, "
        f"recall {fmt(summary['recall'])}, HD95 {fmt(summary.get('hd95'))} px "
        f"({summary.get('hd95_undefined_images', 0)} image(s) with exactly one "
        "empty mask left out)",
    ]
    if summary["empty_gt_images"]:
        lines.append(
            f"images with empty ground truth: {summary['empty_gt_images']}, "
            "false-positive rate "
            f"{fmt(summary['empty_gt_false_positive_rate'])}"
        )
    lines.append(f"wrote {metrics_path} and {csv_path}")
    print("\n".join(lines))
    return 0
