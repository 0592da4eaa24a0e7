"""`keras-pu compare`: is model A better than model B on the same test images?

    keras-pu evaluate runs/pu --split test
    keras-pu evaluate runs/res --split test
    keras-pu compare runs/pu runs/res            # paired bootstrap of Dice, A - B
    keras-pu compare runs/pu_s1 runs/pu_s2 runs/pu_s3 \
        --against runs/res_s1 runs/res_s2 runs/res_s3   # seeds of each

Reads the per_image.csv files of `keras-pu evaluate` (a run folder, an
evaluation folder or the file itself) and prints the mean difference with
its paired-bootstrap confidence interval (`keras_pu.metrics.comparison`).
With `--against`, each side is several runs (seeds) of one architecture:
it also prints each side's mean +- sd over its runs and an interval that
resamples the runs as well as the images.
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
    parser.add_argument("runs", nargs="+", metavar="A",
                        help="model A's evaluation and model B's (A B), or, "
                        "with --against, the evaluations of A's runs")
    parser.add_argument("--against", nargs="+", metavar="B",
                        help="the evaluations of B's runs (seeds): compare "
                        "the runs given before it (A's) with these")
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
    from keras_pu.metrics.comparison import compare_seed_groups

    if args.against is None and len(args.runs) != 2:
        print("keras-pu compare: error: give two evaluations (A B), or A's "
              "runs followed by --against and B's runs; got "
              f"{len(args.runs)} without --against.", file=sys.stderr)
        return 2
    bootstrap = dict(num_resamples=args.resamples,
                     confidence=args.confidence, seed=args.seed)
    try:
        if args.against is not None:
            runs_a = [per_image_file(p, args.split) for p in args.runs]
            runs_b = [per_image_file(p, args.split) for p in args.against]
            result = compare_seed_groups(runs_a, runs_b, metric=args.metric,
                                         **bootstrap)
        else:
            a = per_image_file(args.runs[0], args.split)
            b = per_image_file(args.runs[1], args.split)
            result = compare_per_image(a, b, metric=args.metric, **bootstrap)
    except (FileNotFoundError, ValueError) as e:
        print(f"keras-pu compare: error: {e}", file=sys.stderr)
        return 2
    if args.against is not None:
        return _print_groups(result, runs_a, runs_b, args)
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


def _print_groups(result, runs_a, runs_b, args):
    result.update(a=[str(p) for p in runs_a], b=[str(p) for p in runs_b])
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    level = round(100 * result["confidence"])
    metric = result["metric"]

    def side(name, paths, means, sd):
        spread = f" +- {sd:.4f} (sd over runs)" if sd is not None else ""
        print(f"{name}: {len(paths)} run(s), mean {metric} "
              f"{sum(means) / len(means):.4f}{spread}; per run: "
              + ", ".join(f"{m:.4f}" for m in means))
        for path in paths:
            print(f"   {path}")

    side("A", runs_a, result["run_means_a"], result["sd_a"])
    side("B", runs_b, result["run_means_b"], result["sd_b"])
    both = result["seeds_and_images"]
    print(
        f"{result['num_images']} images ({result['left_out']} without a "
        f"{metric} in some run left out)"
    )
    print(
        f"A - B = {result['mean_difference']:+.4f}; {level} % CI over the "
        f"images (seed-averaged models) [{result['ci_low']:+.4f}, "
        f"{result['ci_high']:+.4f}], p = {result['p_value']:.3g}; over "
        f"seeds and images [{both['ci_low']:+.4f}, {both['ci_high']:+.4f}], "
        f"p = {both['p_value']:.3g} ({result['num_resamples']} resamples, "
        f"seed {args.seed})"
    )
    return 0
