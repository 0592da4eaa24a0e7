"""Paired bootstrap of two models' per-image scores (keras_pu.metrics.comparison)
and `keras-pu compare`."""

import csv
import json

import numpy as np
import pytest

from keras_pu.cli.main import main
from keras_pu.metrics.comparison import compare_per_image
from keras_pu.metrics.comparison import compare_seed_groups
from keras_pu.metrics.comparison import paired_bootstrap
from keras_pu.metrics.comparison import seed_and_image_bootstrap


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


# --- several runs (seeds) per architecture -------------------------------------


def test_seed_and_image_bootstrap_with_one_run_each_is_the_paired_bootstrap():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 0.9, 40), rng.uniform(0.5, 0.9, 40)
    one = seed_and_image_bootstrap(a[None], b[None], num_resamples=2000, seed=3)
    paired = paired_bootstrap(a, b, num_resamples=2000, seed=3)
    # Same draws of the images (the run draws are all index 0).
    assert one["ci_low"] == pytest.approx(paired["ci_low"], abs=0.01)
    assert one["ci_high"] == pytest.approx(paired["ci_high"], abs=0.01)


def test_seed_noise_widens_the_interval():
    # B = A - 0.02 on every image, but A's runs differ by a seed offset of
    # +-0.05: over the images alone the seed-averaged difference is exact,
    # over the seeds it is not.
    rng = np.random.default_rng(1)
    images = rng.uniform(0.5, 0.9, 100)
    a = np.stack([images + 0.05, images - 0.05, images + 0.0])
    b = np.stack([images - 0.02] * 3)
    images_only = paired_bootstrap(a.mean(0), b.mean(0), num_resamples=2000)
    both = seed_and_image_bootstrap(a, b, num_resamples=2000)
    assert images_only["ci_high"] - images_only["ci_low"] < 1e-9
    # The true difference is +0.02, but with three runs a draw of A's worst
    # run thrice (-0.05, probability 1/27) is more likely than 2.5 %: the
    # interval reaches below 0.
    assert both["ci_low"] < 0.0 < both["ci_high"]
    assert both["ci_high"] - both["ci_low"] > 0.05
    with pytest.raises(ValueError, match="same images"):
        seed_and_image_bootstrap(a, b[:, :50])


def test_compare_seed_groups_reads_runs_and_reports_the_spread(tmp_path):
    rng = np.random.default_rng(2)
    base = rng.uniform(0.5, 0.9, 30)
    runs_a = [write_scores(tmp_path / f"a{k}.csv",
                           {f"i{i}": (v + off, 1.0) for i, v in enumerate(base)})
              for k, off in enumerate((0.04, 0.06, 0.05))]
    runs_b = [write_scores(tmp_path / f"b{k}.csv",
                           {f"i{i}": (v, 1.0) for i, v in enumerate(base)})
              for k in range(2)]
    result = compare_seed_groups(runs_a, runs_b, num_resamples=500)
    assert result["runs_a"] == 3 and result["runs_b"] == 2
    assert result["mean_difference"] == pytest.approx(0.05)
    assert result["run_means_a"][0] - result["run_means_b"][0] == pytest.approx(0.04)
    assert result["sd_a"] == pytest.approx(0.01)
    assert result["sd_b"] == pytest.approx(0.0, abs=1e-12)
    both = result["seeds_and_images"]
    assert 0.04 - 1e-9 <= both["ci_low"] <= 0.05 <= both["ci_high"] <= 0.06 + 1e-9
    other = write_scores(tmp_path / "c.csv", {"j0": (0.5, 1.0), "j1": (0.5, 1.0)})
    with pytest.raises(ValueError, match="different images"):
        compare_seed_groups(runs_a, [other])


def test_keras_pu_compare_against_several_runs(tmp_path, capsys):
    base = np.random.default_rng(5).uniform(0.5, 0.9, 40)
    for name, off in (("pu_s1", 0.03), ("pu_s2", 0.05), ("res_s1", 0.0),
                      ("res_s2", 0.0)):
        write_scores(tmp_path / name / "eval_test" / "per_image.csv",
                     {f"i{k}": (v + off, 1.0) for k, v in enumerate(base)})
    args = ["compare", str(tmp_path / "pu_s1"), str(tmp_path / "pu_s2"),
            "--against", str(tmp_path / "res_s1"), str(tmp_path / "res_s2"),
            "--resamples", "500"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "A: 2 run(s)" in out and "sd over runs" in out
    assert "A - B = +0.0400" in out and "over seeds and images" in out
    assert main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sd_a"] == pytest.approx(np.std([0.03, 0.05], ddof=1))
    # Three evaluations without --against: which is B is ambiguous.
    assert main(["compare", str(tmp_path / "pu_s1"), str(tmp_path / "pu_s2"),
                 str(tmp_path / "res_s1")]) == 2
    assert "--against" in capsys.readouterr().err
