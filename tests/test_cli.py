"""`keras-pu train`, `evaluate` and `predict` end to end on tiny datasets in
the official layouts (every backend), exact resume, multi-device data
parallelism (JAX, two virtual CPU devices), bad inputs, and a short run on
the real datasets when they are present."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_pu.cli.main import main
from keras_pu.training import Recipe
from keras_pu.training import train
from keras_pu.data.recipe_splits import random_split_ids
from tests.conftest import REPO_ROOT
from tests.conftest import shared_data_dir
from tests.dataset_factory import make_busi
from tests.dataset_factory import make_isic2017
from tests.dataset_factory import make_kvasir

# The TINY model of tests/test_models.py (JAX compiles each shape once).
TINY_RECIPE = {
    "name": "tiny",
    "model": {"class": "PUUNet", "config": {"widths": 4, "depth": 2}},
    "data": {"image_size": [32, 32], "split": None, "val_fraction": 0.25,
             "test_fraction": 0.25},
    "training": {"epochs": 2, "batch_size": 2, "seed": 7},
    "schedule": {"warmup_epochs": 1},
    "augmentation": {"rotation": 10.0},
    "early_stopping": {"enabled": True, "patience": 5},
}


def cli(*args):
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def busi(tmp_path_factory):
    """A tiny BUSI in its official layout: 9 images, 3 with empty masks."""
    root = tmp_path_factory.mktemp("busi")
    return make_busi(root)


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "tiny.json"
    path.write_text(json.dumps(TINY_RECIPE))
    return path


@pytest.fixture(scope="module")
def trained_run(busi, recipe_file, tmp_path_factory):
    """One `keras-pu train` run, shared by the tests below (and the
    uninterrupted reference of the resume test)."""
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    rc = cli("train", "--recipe", recipe_file, "--data", busi.root,
             "--output", run_dir, "--verbose", "0")
    assert rc == 0
    return run_dir


def test_train_writes_a_complete_run(trained_run, busi):
    for name in ("recipe.json", "run.json", "history.csv",
                 "training_state.json", "model.keras",
                 "checkpoints/last.keras", "checkpoints/best.keras"):
        assert (trained_run / name).is_file(), name
    recipe = Recipe.from_file(trained_run / "recipe.json")
    assert recipe.get("data.path") == str(pathlib.Path(busi.root).resolve())
    with open(trained_run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    for key in ("loss", "dice", "val_dice", "val_iou", "learning_rate"):
        assert np.isfinite(float(rows[-1][key])), key
    state = json.loads((trained_run / "training_state.json").read_text())
    assert state["finished"] and state["epochs_completed"] == 2
    assert state["best"] == max(float(r["val_dice"]) for r in rows)
    run = json.loads((trained_run / "run.json").read_text())
    assert run["data"]["layout"] == "busi"
    assert run["environment"]["backend"] == keras.backend.backend()
    # The session's span: the summaries add the sessions' spans up.
    (session,) = run["sessions"]
    assert session["epochs_completed"] == 2
    assert session["last_epoch_ended"] >= session["started"]
    # The final model: inference only, no optimizer state.
    model = keras.saving.load_model(trained_run / "model.keras")
    assert getattr(model, "optimizer", None) is None
    assert model.input_shape == (None, 32, 32, 3)


def test_evaluate_writes_metrics_json_and_per_image_csv(trained_run, busi,
                                                        tmp_path, capsys):
    out = tmp_path / "eval"
    assert cli("evaluate", trained_run, "--split", "all", "--output",
               out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 9 and metrics["split"] == "all"
    for key in ("dice", "iou", "precision", "recall", "hd95"):
        assert key in metrics
    # BUSI's normal images have empty ground truth: the false-positive rate
    # is defined, overall and for the "normal" group.
    assert metrics["empty_gt_images"] == 3
    assert 0 <= metrics["empty_gt_false_positive_rate"] <= 1
    assert metrics["by_group"]["normal"]["empty_gt_images"] == 3
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9
    # Scored at each image's original size, not the 32x32 model input.
    for row in rows:
        mask = busi.masks[row["id"]]
        assert (int(row["height"]), int(row["width"])) == mask.shape
        assert int(row["gt_pixels"]) == int(mask.sum())
        assert row["class"] == busi.metadata[row["id"]]["class"]
    assert np.mean([float(r["dice"]) for r in rows]) == pytest.approx(
        metrics["dice"])
    assert "wrote" in capsys.readouterr().out


def test_evaluate_test_split_is_the_runs_split(trained_run, busi, tmp_path):
    out = tmp_path / "eval_test"
    assert cli("evaluate", trained_run / "model.keras", "--output", out,
               "--tta", "flip") == 0
    with open(out / "per_image.csv") as f:
        ids = [r["id"] for r in csv.DictReader(f)]
    from keras_pu.data import load_dataset

    expected = random_split_ids(load_dataset("busi", busi.root).ids, 0.25,
                                0.25, seed=7)["test"]
    assert ids == expected and ids


@pytest.mark.parametrize("layout", ["kvasir-seg", "isic2017"])
def test_evaluate_other_official_layouts(trained_run, tmp_path, layout):
    root = tmp_path / layout
    made = {"kvasir-seg": make_kvasir, "isic2017": make_isic2017}[layout](root)
    out = tmp_path / "eval"
    # The layout is detected; Kvasir-SEG's masks are lossy JPEGs.
    assert cli("evaluate", trained_run, "--data", root, "--split", "all",
               "--output", out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["layout"] == layout
    assert metrics["num_images"] == len(made.masks)
    with open(out / "per_image.csv") as f:
        for row in csv.DictReader(f):
            assert int(row["gt_pixels"]) == int(made.masks[row["id"]].sum())


def _write_inputs(folder):
    """Images of every kind `predict` must take, plus unreadable files."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (45, 61, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "rgb.jpg")
    Image.fromarray(rgb).save(folder / "rgb.png")  # same stem, other format
    Image.fromarray(rgb[..., 0]).save(folder / "gray.png")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    deep = rng.integers(0, 4095, (37, 29), dtype=np.uint16)
    Image.fromarray(deep).save(folder / "deep16.png")
    Image.fromarray(rgb).save(folder / "scan.tif")
    Image.fromarray(rgb).save(folder / "old.bmp")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (folder / "empty.jpg").write_bytes(b"")
    return {"rgb_jpg": (45, 61), "rgb_png": (45, 61), "gray": (45, 61),
            "alpha": (45, 61), "deep16": (37, 29), "scan": (45, 61),
            "old": (45, 61)}


def test_predict_any_format_skips_unreadable_files(trained_run, tmp_path,
                                                   capsys):
    expected = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    rc = cli("predict", trained_run, tmp_path / "in", "--output", out,
             "--tta", "flip")
    assert rc == 1  # some inputs failed
    err = capsys.readouterr().err
    assert "2 input(s) failed" in err
    assert "corrupt.png" in err and "empty.jpg" in err
    for name, (height, width) in expected.items():
        mask = Image.open(out / f"{name}_mask.png")
        assert mask.mode == "L" and mask.size == (width, height), name
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
        over = Image.open(out / f"{name}_overlay.png")
        assert over.mode == "RGB" and over.size == (width, height), name
    # A single good file: exit code 0.
    assert cli("predict", trained_run / "model.keras",
               tmp_path / "in" / "gray.png", "--output", tmp_path / "one",
               "--no-overlay") == 0
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == [
        "gray_mask.png"]


def test_segmenter_flip_tta_and_original_size(trained_run):
    from keras_pu.inference import Segmenter
    from keras_pu.inference import load_segmentation_model

    model, recipe = load_segmentation_model(trained_run)
    x = np.random.default_rng(1).random((3, 32, 32, 3)).astype("float32")

    def probs(batch):
        logits = np.asarray(model.predict_on_batch(batch))[..., 0]
        return 1 / (1 + np.exp(-logits))

    manual = (probs(x) + probs(x[:, :, ::-1])[:, :, ::-1]
              + probs(x[:, ::-1])[:, ::-1]) / 3
    segmenter = Segmenter(model, recipe=recipe, tta="flip", batch_size=4)
    np.testing.assert_allclose(segmenter.probabilities(x), manual, atol=1e-5)
    maps = segmenter.predict_arrays(list(x), [(50, 70), (32, 32), (17, 9)])
    assert [m.shape for m in maps] == [(50, 70), (32, 32), (17, 9)]
    np.testing.assert_allclose(maps[1], manual[1], atol=1e-5)


def test_resume_continues_exactly_where_the_run_stopped(trained_run, busi,
                                                        tmp_path, capsys):
    recipe = Recipe.from_dict(TINY_RECIPE)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # after the epoch's checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(recipe, data_path=busi.root, output_dir=tmp_path / "resumed",
              verbose=0, callbacks=[Interrupt()])
    state = json.loads((tmp_path / "resumed/training_state.json").read_text())
    assert state["epochs_completed"] == 1 and not state["finished"]
    # Without --resume the folder is protected.
    assert cli("train", "--recipe", "pu_unet_kvasir", "--data", busi.root,
               "--output", tmp_path / "resumed") == 2
    assert "--resume" in capsys.readouterr().err
    # A resume must not change the recipe.
    assert cli("train", "--resume", "--output", tmp_path / "resumed",
               "--epochs", "5") == 2
    assert "training.epochs" in capsys.readouterr().err
    assert cli("train", "--resume", "--output", tmp_path / "resumed",
               "--verbose", "0") == 0
    assert "Resuming" in capsys.readouterr().out

    a = keras.saving.load_model(trained_run / "checkpoints/last.keras")
    b = keras.saving.load_model(tmp_path / "resumed/checkpoints/last.keras")
    # Same data order, augmentation, optimizer state and learning-rate
    # schedule: the resumed run is the uninterrupted run, bit for bit.
    assert int(b.optimizer.iterations) == int(a.optimizer.iterations) > 0
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(va),
                                      keras.ops.convert_to_numpy(vb))
    with open(tmp_path / "resumed/history.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1"]
    # Resuming a finished run does nothing.
    assert cli("train", "--resume", "--output", tmp_path / "resumed") == 0
    assert "already finished" in capsys.readouterr().out


def test_deep_supervision_flag_sets_the_model_config(recipe_file, capsys):
    for flag, value in (("--deep-supervision", True),
                        ("--no-deep-supervision", False)):
        assert cli("train", "--recipe", recipe_file, flag,
                   "--print-recipe") == 0
        recipe = json.loads(capsys.readouterr().out)
        assert recipe["model"]["config"]["deep_supervision"] is value


def test_selfreg_deep_supervision_and_mixed_precision_options(busi, tmp_path):
    recipe = Recipe.from_dict(TINY_RECIPE).replace({
        "selfreg.enabled": True, "selfreg.lambda_scr": 0.1,
        "training.epochs": 1, "training.steps_per_epoch": 1,
        "training.dtype_policy": "mixed_bfloat16",
        # depth 3: the smallest U-Net with a level to supervise.
        "model.config": {**TINY_RECIPE["model"]["config"], "depth": 3,
                         "deep_supervision": True},
    })

    class Policy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.policy = self.model.get_layer("encoder_stage_1").dtype_policy

    probe = Policy()
    summary = train(recipe, data_path=busi.root, output_dir=tmp_path / "sr",
                    verbose=0, callbacks=[probe])
    assert probe.policy.name == "mixed_bfloat16"
    # The policy applied to the model only, and is restored afterwards.
    assert keras.config.dtype_policy().name == "float32"
    with open(summary["history"]) as f:
        row = next(csv.DictReader(f))
    assert float(row["scr_loss"]) > 0 and float(row["ifd_loss"]) > 0
    assert float(row["deep_supervision_loss"]) > 0
    # SelfReg exists at training only; the deep-supervision head is part of
    # the model (saved, unused at inference).
    model = keras.saving.load_model(summary["model_path"])
    assert model.feature_loss is None
    assert [h.name for h in model.deep_supervision_heads] == [
        "deep_supervision_head_2"]


def test_precision_auto_is_resolved_printed_recorded_and_kept_on_resume(
        busi, recipe_file, tmp_path, monkeypatch, capsys):
    from keras_pu.hardware import PRECISION_ENV
    from keras_pu.hardware import PrecisionChoice

    monkeypatch.delenv(PRECISION_ENV, raising=False)
    # --threads 1 below sets these for the rest of this process (and its
    # subprocesses): restore them, and torch's thread count, afterwards so
    # later tests run as before.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                 "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                 "XLA_FLAGS"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    if keras.backend.backend() == "torch":
        import torch

        request_threads = torch.get_num_threads()
    asked = []

    def fake_choice(depthwise=False):
        asked.append(depthwise)
        return PrecisionChoice("mixed_bfloat16", "a test CPU with bf16")

    monkeypatch.setattr(
        "keras_pu.training.trainer.choose_precision", fake_choice
    )
    run = tmp_path / "auto"
    args = ("train", "--recipe", recipe_file, "--data", busi.root,
            "--epochs", "1", "--steps-per-epoch", "1", "--verbose", "0",
            "--output", run)
    assert cli(*args, "--precision", "auto", "--threads", "1") == 0
    out = capsys.readouterr().out
    assert "Precision: mixed_bfloat16 (auto: a test CPU with bf16)" in out
    assert asked == [False]  # the model registry's word: PUUNet is dense
    saved = Recipe.from_file(run / "recipe.json")
    assert saved.get("training.dtype_policy") == "mixed_bfloat16"
    # A resume keeps the precision the run started with, whatever "auto"
    # would pick now; an explicit different precision is a changed recipe.
    monkeypatch.setattr(
        "keras_pu.training.trainer.choose_precision",
        lambda depthwise=False: PrecisionChoice("float32", "another machine"),
    )
    assert cli(*args, "--resume", "--precision", "auto") == 0
    assert "already finished" in capsys.readouterr().out
    assert cli(*args, "--resume", "--precision", "float32") == 2
    assert "training.dtype_policy" in capsys.readouterr().err
    assert cli(*args[:-1], tmp_path / "t0", "--threads", "0") == 2
    assert "--threads" in capsys.readouterr().err
    if keras.backend.backend() == "torch":
        assert torch.get_num_threads() == 1  # --threads 1 reached torch
        torch.set_num_threads(request_threads)


def test_evaluate_and_predict_a_preset_folder(trained_run, busi, tmp_path):
    """A Keras model folder (what a zoo preset holds) with its recipe."""
    folder = tmp_path / "preset"
    model = keras.saving.load_model(trained_run / "model.keras")
    model.save(folder, zipped=False)
    (folder / "recipe.json").write_text(
        (trained_run / "recipe.json").read_text())
    assert cli("evaluate", folder, "--data", busi.root, "--split", "val",
               "--output", tmp_path / "ev") == 0
    metrics = json.loads((tmp_path / "ev/metrics.json").read_text())
    assert metrics["num_images"] == 2 and metrics["input_size"] == [32, 32]
    image = next(iter(busi.masks))
    assert cli("predict", folder,
               busi.root / "Dataset_BUSI_with_GT" / image.split(" ")[0] /
               f"{image}.png", "--output", tmp_path / "pr") == 0
    assert (tmp_path / "pr" / f"{image}_mask.png").is_file()


def test_calibrate_a_gate_on_val_and_apply_it(trained_run, busi, tmp_path,
                                             capsys):
    """evaluate --split val -> calibrate -> evaluate/predict --gate model,
    on a copy of the run (a Keras model folder with its recipe)."""
    folder = tmp_path / "model"
    keras.saving.load_model(trained_run / "model.keras").save(folder, zipped=False)
    (folder / "recipe.json").write_text((trained_run / "recipe.json").read_text())
    val = folder / "eval_val"
    assert cli("evaluate", folder, "--data", busi.root, "--split", "all",
               "--output", val) == 0
    with open(val / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    peaks = [float(r["peak_probability"]) for r in rows]
    assert all(0 <= p <= 1 for p in peaks) and "gated" not in rows[0]
    capsys.readouterr()
    assert cli("calibrate", val) == 0
    assert "wrote" in capsys.readouterr().out
    gate = json.loads((folder / "postprocess.json").read_text())
    from keras_pu.postprocess import choose_peak_gate

    expected = choose_peak_gate(peaks, [float(r["dice"]) for r in rows],
                                [r["gt_empty"] == "True" for r in rows])
    assert gate["min_peak_probability"] == expected["min_peak_probability"]
    assert gate["calibration"]["num_images"] == 9
    # Applying it reproduces the calibration's Dice on the same images.
    out = tmp_path / "gated"
    assert cli("evaluate", folder, "--data", busi.root, "--split", "all",
               "--gate", "model", "--output", out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["gate"] == gate["min_peak_probability"]
    assert metrics["dice"] == pytest.approx(expected["dice_after"])
    # A gate of 1 empties every mask: no false positives, every lesion
    # missed (the peaks of this tiny model are below 1).
    assert max(peaks) < 1
    out = tmp_path / "all_gated"
    assert cli("evaluate", folder, "--data", busi.root, "--split", "all",
               "--gate", "1", "--output", out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["empty_gt_false_positive_rate"] == 0
    assert metrics["missed_lesion_images"] == 9 - 3
    with open(out / "per_image.csv") as f:
        assert all(r["gated"] == "True" for r in csv.DictReader(f))
    image = next(iter(busi.masks))
    assert cli("predict", folder,
               busi.root / "Dataset_BUSI_with_GT" / image.split(" ")[0] /
               f"{image}.png", "--gate", "1", "--output", tmp_path / "pr") == 0
    mask = np.asarray(Image.open(tmp_path / "pr" / f"{image}_mask.png"))
    assert mask.shape == busi.masks[image].shape and not mask.any()

    # Bad uses: a gate chosen on test results, a gated evaluation, no gate
    # to apply, a file in the way, a gate out of range.
    def error(*args):
        assert cli(*args) == 2
        return capsys.readouterr().err

    test_eval = tmp_path / "eval_test"
    assert cli("evaluate", folder, "--data", busi.root, "--split", "test",
               "--output", test_eval) == 0
    assert "test-split results" in error("calibrate", test_eval, "-o",
                                         tmp_path / "g.json")
    assert "evaluated with a gate" in error("calibrate", out, "-o",
                                            tmp_path / "g.json")
    assert "already exists" in error("calibrate", val)
    outside = tmp_path / "outside"
    assert cli("evaluate", folder, "--data", busi.root, "--split", "val",
               "--output", outside) == 0
    assert "not inside a run" in error("calibrate", outside)
    assert "comes with no gate" in error(
        "evaluate", trained_run, "--gate", "model")
    assert "must be none, model or a number" in error(
        "evaluate", trained_run, "--gate", "high")
    assert "in [0, 1]" in error("predict", trained_run, tmp_path, "-o",
                                tmp_path / "o", "--gate", "1.5")


# --- bad inputs --------------------------------------------------------------


def test_train_bad_inputs_give_clear_errors(busi, recipe_file, tmp_path,
                                            capsys, monkeypatch):
    def error(*args):
        assert cli("train", *args) == 2
        return capsys.readouterr().err

    assert "--layout foo: " in error(
        "--recipe", recipe_file, "--data", busi.root, "--layout", "foo",
        "--output", tmp_path / "a")
    assert "'data.layout' must be one of" in error(
        "--recipe", recipe_file, "--data", busi.root, "--layout", "foo")
    assert "does not exist" in error(
        "--recipe", recipe_file, "--data", tmp_path / "nowhere",
        "--output", tmp_path / "b")
    assert "No dataset folder: give --data" in error(
        "--recipe", recipe_file, "--output", tmp_path / "c")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(TINY_RECIPE, trainig={"epochs": 1})))
    assert "unknown recipe key 'trainig'" in error(
        "--recipe", bad, "--data", busi.root)
    assert "Did you mean 'learning_rate'" in error(
        "--recipe", recipe_file, "--set", "optimizer.learnig_rate=0.1")
    assert "Nothing to resume" in error("--resume", "--output",
                                        tmp_path / "empty")
    assert "Give --recipe" in error("--output", tmp_path / "d")
    if keras.backend.backend() == "torch":
        # Two processes announced, but not by torchrun: no rendezvous.
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", "0")
        monkeypatch.delenv("MASTER_ADDR", raising=False)
        monkeypatch.delenv("MASTER_PORT", raising=False)
        assert "launch with torchrun" in error(
            "--recipe", recipe_file, "--data", busi.root, "--output",
            tmp_path / "e", "--distribute", "data-parallel")
        monkeypatch.delenv("WORLD_SIZE")
        monkeypatch.delenv("RANK")
    # Nothing was left behind by the failed commands.
    assert not any((tmp_path / n).exists() for n in "abcde")


def test_evaluate_and_predict_bad_inputs(trained_run, busi, tmp_path, capsys):
    def error(command, *args, rc=2):
        assert cli(command, *args) == rc
        return capsys.readouterr().err

    assert "No model at" in error("evaluate", tmp_path / "none.keras",
                                  "--data", busi.root)
    assert "holds no model" in error("predict", tmp_path, tmp_path,
                                     "--output", tmp_path / "o")
    # A model for 1-channel input: keras-pu feeds RGB.
    from keras_pu.models import ResUNet

    gray = ResUNet(input_shape=(32, 32, 1), widths=4, depth=2)
    gray.save(tmp_path / "gray.keras")
    assert "expects 1-channel images" in error(
        "predict", tmp_path / "gray.keras", tmp_path, "--output",
        tmp_path / "o")
    # A bare .keras file without a recipe needs --data.
    gray_rgb = ResUNet(input_shape=(32, 32, 3), widths=4, depth=2)
    gray_rgb.save(tmp_path / "plain.keras")
    assert "No dataset folder" in error("evaluate", tmp_path / "plain.keras")
    assert "unknown dataset layout" in error(
        "evaluate", trained_run, "--layout", "kvasir")
    # Missing inputs are reported, not fatal to the others.
    assert "no such file or folder" in error(
        "predict", trained_run, tmp_path / "missing.png", "--output",
        tmp_path / "o", rc=1)


# --- multi-device ------------------------------------------------------------

DP_SCRIPT = """
import json, sys
import keras, numpy as np
from keras_pu.training import Recipe, train

recipe = Recipe.from_dict(json.loads(sys.argv[1]))
data, out = sys.argv[2], sys.argv[3]
seen = {}

class Probe(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        kernel = self.model.get_layer("stem_conv").kernel
        seen["devices"] = len(kernel.value.sharding.device_set)
        seen["weights"] = [keras.ops.convert_to_numpy(v)
                           for v in self.model.trainable_weights]

train(recipe, data, out + "/dp", distribute="data-parallel", verbose=0,
      callbacks=[Probe()])
dp = dict(seen)
train(recipe, data, out + "/single", verbose=0, callbacks=[Probe()])
run = json.load(open(out + "/dp/run.json"))
diff = max(float(np.max(np.abs(a - b)))
           for a, b in zip(dp["weights"], seen["weights"]))
print(json.dumps({"devices": run["sessions"][-1]["devices"],
                  "replicated_on": dp["devices"], "max_diff": diff}))
"""


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="JAX-only (keras.distribution); runs once, in the "
                    "JAX session")
def test_data_parallel_on_two_virtual_cpu_devices(busi, tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax")
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=2").strip()
    recipe = dict(TINY_RECIPE, training={"epochs": 1, "batch_size": 4,
                                         "seed": 7})
    result = subprocess.run(
        [sys.executable, "-c", DP_SCRIPT, json.dumps(recipe), str(busi.root),
         str(tmp_path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == ["cpu:0", "cpu:1"]
    assert report["replicated_on"] == 2  # variables live on both devices
    # Data parallelism computes the same step as one device (up to the
    # order of floating-point reductions).
    assert report["max_diff"] < 1e-4


# --- real data ---------------------------------------------------------------


def test_short_run_on_real_data(tmp_path):
    root = shared_data_dir()
    if root is None:
        pytest.skip("no real data: set KERAS_PU_DATA or put it in "
                    "../shared/data")
    busi_root = root / "BUSI"
    if not busi_root.is_dir():
        pytest.skip(f"{busi_root} is absent")
    run = tmp_path / "run"
    # The preset recipe, shrunk to the TINY model and a handful of images.
    assert cli("train", "--recipe", "pu_unet_busi", "--data", busi_root,
               "--output", run, "--epochs", "1", "--limit", "4",
               "--image-size", "32", "--set", "model.config.widths=4",
               "--set", "model.config.depth=2", "--batch-size", "2",
               "--verbose", "0") == 0
    assert cli("evaluate", run, "--split", "test", "--limit", "4") == 0
    metrics = json.loads((run / "eval_test/metrics.json").read_text())
    assert metrics["num_images"] == 4 and metrics["split_name"] == "busi"
