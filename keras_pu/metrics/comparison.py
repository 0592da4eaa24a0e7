"""Comparing two models on the same test images: a paired bootstrap.

Two models scored on one test split differ by a mean per-image difference;
whether that difference is more than the luck of which images made the
split is what a paired bootstrap answers. Resampling the *images* (with
replacement), and taking both models' scores of each drawn image together,
keeps the pairing: an image that is hard for one model is usually hard for
the other, and that shared difficulty cancels out of the difference.

`paired_bootstrap(a, b)` works on two aligned arrays of per-image scores;
`compare_per_image(csv_a, csv_b)` reads the `per_image.csv` files that
`keras-pu evaluate` writes and aligns them by image id. numpy only.

This measures the uncertainty from the test images for fixed trained
models. It says nothing about training noise: a different seed gives a
different model, so claims about architectures need several seeds as well.
`compare_seed_groups(runs_a, runs_b)` takes several runs (seeds) of each
architecture: it reports each side's mean and standard deviation over its
runs, the paired bootstrap of the seed-averaged per-image scores, and a
bootstrap that resamples the runs of each side as well as the images
(`seed_and_image_bootstrap`), whose interval carries both sources of
noise.
"""

import csv
import math
import pathlib

import numpy as np


def paired_bootstrap(a, b, num_resamples=10000, confidence=0.95, seed=0):
    """Bootstrap confidence interval of mean(a - b) over paired samples.

    Args:
        a: per-image scores of model A (1-D, finite).
        b: per-image scores of model B, the same images in the same order.
        num_resamples: bootstrap resamples. Defaults to 10000.
        confidence: two-sided level of the percentile interval. Defaults to
            0.95.
        seed: seed of the resampling (the result is reproducible).

    Returns:
        dict with `num_images`, `mean_a`, `mean_b`, `mean_difference`
        (mean of a - b), `ci_low`, `ci_high` (percentile interval of the
        resampled mean differences), `confidence`, `num_resamples` and
        `p_value`: the two-sided bootstrap p-value of "no difference"
        (twice the smaller share of resampled means on either side of 0,
        at most 1; with 10000 resamples it cannot go below 2e-4).

    Raises:
        ValueError: different lengths, fewer than 2 images, non-finite
            scores, or an argument out of range.

    Example:

    ```python
    from keras_pu.metrics.comparison import paired_bootstrap

    result = paired_bootstrap(dice_pu, dice_res)
    print(f"{result['mean_difference']:+.4f} "
          f"[{result['ci_low']:+.4f}, {result['ci_high']:+.4f}]")
    ```
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            "paired_bootstrap: a and b must be 1-D per-image scores of the "
            f"same images; got shapes {a.shape} and {b.shape}."
        )
    if len(a) < 2:
        raise ValueError("paired_bootstrap: needs at least 2 images.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(
            "paired_bootstrap: scores must be finite (drop the images whose "
            "metric is undefined, e.g. HD95 with one empty mask, from both)."
        )
    num_resamples = _checked_resamples(num_resamples, confidence)
    difference = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(num_resamples)
    # In chunks: 10000 x 2000 indices would be 160 MB at once.
    chunk = max(1, 2_000_000 // len(a))
    for start in range(0, num_resamples, chunk):
        stop = min(start + chunk, num_resamples)
        index = rng.integers(0, len(a), size=(stop - start, len(a)))
        means[start:stop] = difference[index].mean(axis=1)
    return {
        "num_images": int(len(a)),
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "mean_difference": float(difference.mean()),
        **_interval(means, confidence),
    }


def _checked_resamples(num_resamples, confidence):
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}.")
    if int(num_resamples) < 100:
        raise ValueError(
            f"num_resamples must be >= 100; got {num_resamples!r}."
        )
    return int(num_resamples)


def _interval(resampled_means, confidence):
    """Percentile interval and two-sided p-value of "no difference" (twice
    the smaller share of resampled means on either side of 0, at most 1, at
    least 2 / resamples) of a bootstrap distribution."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled_means, [tail, 1.0 - tail])
    share = min(np.mean(resampled_means <= 0.0), np.mean(resampled_means >= 0.0))
    return {
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": float(confidence),
        "num_resamples": len(resampled_means),
        "p_value": float(max(min(1.0, 2.0 * share),
                             2.0 / len(resampled_means))),
    }


def read_per_image(path, metric):
    """{image id: score} from a `per_image.csv` of `keras-pu evaluate`;
    images whose `metric` is empty or NaN are left out.

    Raises:
        FileNotFoundError: no such file (the message says what writes it).
        ValueError: the file has no `id` or no `metric` column.
    """
    return _read_scores(path, metric)[1]


def _read_scores(path, metric):
    """(every image id of the file, {id: finite score})."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "per_image.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no per-image scores; `keras-pu evaluate MODEL --split "
            "test` writes per_image.csv into its output folder."
        )
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if "id" not in columns or metric not in columns:
            raise ValueError(
                f"{path}: needs columns 'id' and {metric!r}; it has "
                f"{columns}."
            )
        ids, scores = set(), {}
        for row in reader:
            ids.add(row["id"])
            text = (row[metric] or "").strip()
            if not text:
                continue
            value = float(text)
            if math.isfinite(value):
                scores[row["id"]] = value
    return ids, scores


def compare_per_image(path_a, path_b, metric="dice", **bootstrap_args):
    """Paired bootstrap of two `keras-pu evaluate` outputs on one split.

    Args:
        path_a, path_b: `per_image.csv` files, or the folders holding them.
        metric: a per-image column: `dice`, `iou`, `precision`, `recall` or
            `hd95`. Defaults to `dice`.
        **bootstrap_args: passed to `paired_bootstrap`.

    Returns:
        `paired_bootstrap`'s dict (A minus B) plus `metric` and
        `left_out`: images without a finite score in either file.

    Raises:
        ValueError: the files score different images (not the same split).
    """
    all_a, a = _read_scores(path_a, metric)
    all_b, b = _read_scores(path_b, metric)
    if all_a != all_b:
        only_a, only_b = sorted(all_a - all_b), sorted(all_b - all_a)
        raise ValueError(
            f"{path_a} and {path_b} score different images ({len(only_a)} "
            f"only in the first, e.g. {only_a[:3]}; {len(only_b)} only in "
            "the second): evaluate both models on the same split."
        )
    common = sorted(set(a) & set(b))
    result = paired_bootstrap([a[i] for i in common], [b[i] for i in common],
                              **bootstrap_args)
    result["metric"] = metric
    result["left_out"] = len(all_a) - len(common)
    return result



def seed_and_image_bootstrap(scores_a, scores_b, num_resamples=10000,
                             confidence=0.95, seed=0):
    """Bootstrap of the difference between two groups of runs, resampling
    the runs of each group and the images.

    Each resample draws, with replacement, as many runs of A as A has, as
    many of B as B has, and as many images as there are; its value is the
    mean over the drawn images of (mean of the drawn A runs - mean of the
    drawn B runs). The images are drawn once per resample for both groups,
    so the pairing by image is kept. With one run per group this is
    `paired_bootstrap`.

    Args:
        scores_a: `(runs_a, images)` per-image scores of A's runs.
        scores_b: `(runs_b, images)` per-image scores of B's runs, the same
            images in the same order.
        num_resamples, confidence, seed: as in `paired_bootstrap`.

    Returns:
        dict with `ci_low`, `ci_high`, `p_value` (as in `paired_bootstrap`),
        `confidence` and `num_resamples`.
    """
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            "seed_and_image_bootstrap: scores must be (runs, images) arrays "
            f"over the same images; got shapes {a.shape} and {b.shape}."
        )
    if a.shape[1] < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(
            "seed_and_image_bootstrap: needs at least 2 images and finite "
            "scores."
        )
    num_resamples = _checked_resamples(num_resamples, confidence)
    (runs_a, num_images), runs_b = a.shape, b.shape[0]
    rng = np.random.default_rng(seed)
    means = np.empty(num_resamples)
    chunk = max(1, 2_000_000 // (num_images * max(runs_a, runs_b)))
    for start in range(0, num_resamples, chunk):
        n = min(start + chunk, num_resamples) - start
        drawn_a = a[rng.integers(0, runs_a, size=(n, runs_a))].mean(axis=1)
        drawn_b = b[rng.integers(0, runs_b, size=(n, runs_b))].mean(axis=1)
        images = rng.integers(0, num_images, size=(n, num_images))
        means[start:start + n] = np.take_along_axis(
            drawn_a - drawn_b, images, axis=1
        ).mean(axis=1)
    return _interval(means, confidence)


def compare_seed_groups(paths_a, paths_b, metric="dice", **bootstrap_args):
    """Compares two architectures, each trained several times (seeds), on
    one test split.

    Args:
        paths_a, paths_b: lists of `per_image.csv` files (or the folders
            holding them), one per run.
        metric: a per-image column, as in `compare_per_image`.
        **bootstrap_args: `num_resamples`, `confidence`, `seed`.

    Returns:
        `paired_bootstrap`'s dict for the seed-averaged per-image scores
        (A minus B), plus `metric`, `left_out` (images without a finite
        score in some run), `runs_a` / `runs_b` (number of runs),
        `run_means_a` / `run_means_b` (each run's mean over the compared
        images), `sd_a` / `sd_b` (standard deviation of those means over
        runs, `ddof=1`; `None` for a single run) and `seeds_and_images`:
        the interval and p-value of `seed_and_image_bootstrap`.

    Raises:
        ValueError: an empty group, or runs that score different images.
    """
    paths_a, paths_b = list(paths_a), list(paths_b)
    if not paths_a or not paths_b:
        raise ValueError("compare_seed_groups: each group needs >= 1 run.")
    read = [(path, *_read_scores(path, metric)) for path in paths_a + paths_b]
    first_path, all_ids, _ = read[0]
    for path, ids, _ in read[1:]:
        if ids != all_ids:
            raise ValueError(
                f"{first_path} and {path} score different images: evaluate "
                "every run on the same split."
            )
    common = sorted(set.intersection(*(set(scores) for _, _, scores in read)))
    table = np.array([[scores[i] for i in common] for _, _, scores in read])
    a, b = table[:len(paths_a)], table[len(paths_a):]
    result = paired_bootstrap(a.mean(axis=0), b.mean(axis=0), **bootstrap_args)
    run_means_a, run_means_b = a.mean(axis=1), b.mean(axis=1)
    result.update(
        metric=metric,
        left_out=len(all_ids) - len(common),
        runs_a=len(paths_a),
        runs_b=len(paths_b),
        run_means_a=[float(v) for v in run_means_a],
        run_means_b=[float(v) for v in run_means_b],
        sd_a=float(run_means_a.std(ddof=1)) if len(paths_a) > 1 else None,
        sd_b=float(run_means_b.std(ddof=1)) if len(paths_b) > 1 else None,
        seeds_and_images=seed_and_image_bootstrap(a, b, **bootstrap_args),
    )
    return result
