"""Paired bootstrap of two models' per-image scores (keras_pu.metrics.comparison)
and `keras-pu compare`."""

import csv
import json

import numpy as np
import pytest

from keras_pu.cli.main import main
from keras_pu.metrics.comparison import compare_per_image
from keras_pu.metrics.comparison import paired_bootstrap


def test_a_clear_difference_is_found_and_its_interval_covers_it():
    rng = np.random.default_rng(0)
    hardness = rng.uniform(0.5, 0.95, 300)  # shared by both models
    a = hardness + 0.02 + rng.normal(0, 0.01, 300)
    b = hardness + rng.normal(0, 0.01, 300)
    result = paired_bootstrap(a, b, seed=1)
    assert result["num_images"] == 300
    assert result["mean_difference"] == pytest.approx(np.mean(a - b))
    assert result["ci_low"] < 0.02 < result["ci_high"]
    assert result["ci_low"] > 0.015 and result["ci_high"] < 0.025
    assert result["p_value"] < 1e-3
    # Pairing matters: the unpaired spread of the scores is 10x wider.
    assert result["ci_high"] - result["ci_low"] < 0.01


def test_no_difference_gives_an_interval_around_zero():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 1, 200)
    b = a + rng.normal(0, 0.05, 200)
    b = b - (b - a).mean()  # exactly equal means
    result = paired_bootstrap(a, b, seed=3)
    assert result["ci_low"] < 0 < result["ci_high"]
    assert result["p_value"] > 0.5
    assert paired_bootstrap(a, b, seed=3) == result  # reproducible


@pytest.mark.parametrize(
    "a, b, kwargs, match",
    [
        ([1, 2, 3], [1, 2], {}, "same images"),
        ([1.0], [1.0], {}, "at least 2"),
        ([1, float("nan")], [1, 2], {}, "finite"),
        ([1, 2], [1, 2], {"confidence": 1.5}, "confidence"),
        ([1, 2], [1, 2], {"num_resamples": 10}, "num_resamples"),
    ],
)
def test_bad_input_is_named(a, b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        paired_bootstrap(a, b, **kwargs)


def write_scores(path, scores):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "dice", "hd95"])
        for image_id, (dice, hd95) in scores.items():
            writer.writerow([image_id, dice, hd95])
    return path


def test_compare_aligns_by_image_id_and_leaves_out_undefined_scores(tmp_path):
    a = write_scores(tmp_path / "a.csv", {"x": (0.9, 3.0), "y": (0.8, ""),
                                          "z": (0.7, 5.0)})
    b = write_scores(tmp_path / "b.csv", {"z": (0.6, 4.0), "x": (0.85, 2.0),
                                          "y": (0.8, 1.0)})
    dice = compare_per_image(a, b, num_resamples=200)
    assert dice["mean_difference"] == pytest.approx((0.05 + 0.0 + 0.1) / 3)
    assert dice["left_out"] == 0
    hd95 = compare_per_image(a, b, metric="hd95", num_resamples=200)
    assert hd95["num_images"] == 2 and hd95["left_out"] == 1
    c = write_scores(tmp_path / "c.csv", {"x": (0.9, 1.0), "w": (0.5, 1.0),
                                          "z": (0.7, 1.0)})
    with pytest.raises(ValueError, match="different images"):
        compare_per_image(a, c)
    with pytest.raises(ValueError, match="'recall'"):
        compare_per_image(a, b, metric="recall")


def test_keras_pu_compare_reads_run_folders(tmp_path, capsys):
    rng = np.random.default_rng(4)
    base = rng.uniform(0.5, 0.9, 50)
    write_scores(tmp_path / "run_a" / "eval_test" / "per_image.csv",
                 {f"i{k}": (v + 0.05, 1.0) for k, v in enumerate(base)})
    write_scores(tmp_path / "eval_b" / "per_image.csv",
                 {f"i{k}": (v, 1.0) for k, v in enumerate(base)})
    assert main(["compare", str(tmp_path / "run_a"), str(tmp_path / "eval_b"),
                 "--resamples", "500"]) == 0
    out = capsys.readouterr().out
    assert "A - B = +0.0500" in out and "95 % CI" in out
    assert main(["compare", str(tmp_path / "run_a"), str(tmp_path / "eval_b"),
                 "--resamples", "500", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mean_difference"] == pytest.approx(0.05)
    assert main(["compare", str(tmp_path / "run_a"),
                 str(tmp_path / "missing")]) == 2
    assert "keras-pu evaluate" in capsys.readouterr().err
