"""`keras-pu compare`: is model A better than model B on the same test images?

    keras-pu evaluate runs/pu --split test
    keras-pu evaluate runs/res --split test
    keras-pu compare runs/pu runs/res            # paired bootstrap of Dice, A - B

Reads the per_image.csv files of `keras-pu evaluate` (a run folder, an
evaluation folder or the file itself) and prints the mean difference with
its paired-bootstrap confidence interval (`keras_pu.metrics.comparison`).
"""

import json
import pathlib
import sys

METRICS = ("dice", "iou", "precision", "recall", "hd95")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "compare",
        help="paired bootstrap of two models' per-image scores",
        description="Compare two `keras-pu evaluate` results on the same "
        "images: the mean per-image difference (A - B) with a paired-"
        "bootstrap confidence interval over the test images. A and B: a "
        "run folder (its eval_<split>/), an evaluation folder or a "
        "per_image.csv file.",
    )
    parser.add_argument("a", help="model A's evaluation")
    parser.add_argument("b", help="model B's evaluation")
    parser.add_argument("--metric", default="dice", choices=METRICS,
                        help="per-image metric (default dice; hd95: lower "
                        "is better)")
    parser.add_argument("--split", default="test",
                        help="which eval_<split>/ of a run folder (default "
                        "test)")
    parser.add_argument("--resamples", type=int, default=10000,
                        help="bootstrap resamples (default 10000)")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="confidence level (default 0.95)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the resampling (default 0)")
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON")
    parser.set_defaults(run=run)


def per_image_file(path, split):
    """The per_image.csv that `path` names (file, evaluation folder or run
    folder)."""
    path = pathlib.Path(path)
    for candidate in (path, path / "per_image.csv",
                      path / f"eval_{split}" / "per_image.csv"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{path}: no per_image.csv (looked at the path, {path}/per_image.csv "
        f"and {path}/eval_{split}/per_image.csv). Run `keras-pu evaluate "
        f"{path} --split {split}` first."
    )


def run(args):
    from keras_pu.metrics.comparison import compare_per_image

    try:
        a = per_image_file(args.a, args.split)
        b = per_image_file(args.b, args.split)
        result = compare_per_image(
            a, b, metric=args.metric, num_resamples=args.resamples,
            confidence=args.confidence, seed=args.seed,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"keras-pu compare: error: {e}", file=sys.stderr)
        return 2
    result.update(a=str(a), b=str(b))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    level = round(100 * result["confidence"])
    print(f"A: {a}\nB: {b}")
    print(
        f"{result['num_images']} images ({result['left_out']} without a "
        f"{result['metric']} left out): mean {result['metric']} A "
        f"{result['mean_a']:.4f}, B {result['mean_b']:.4f}"
    )
    print(
        f"A - B = {result['mean_difference']:+.4f}, {level} % CI "
        f"[{result['ci_low']:+.4f}, {result['ci_high']:+.4f}], bootstrap p = "
        f"{result['p_value']:.3g} ({result['num_resamples']} paired resamples"
        f" of the images, seed {args.seed})"
    )
    print("This is the uncertainty from the test images for these two "
          "trained models; seeds add their own (train several).")
    return 0
