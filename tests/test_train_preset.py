"""scripts/train_preset.py: from a dataset to zoo/<preset>/ in one command,
continuing where it stopped."""

import json
import sys

import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import train_preset  # noqa: E402


def names(steps):
    return [what for what, _ in steps]


def test_a_new_run_trains_evaluates_and_adds_the_preset(tmp_path):
    run = tmp_path / "runs" / "pu_unet_kvasir"
    steps = train_preset.plan("pu_unet_kvasir", "/data/kvasir", run,
                              ["--epochs", "20"], backend="jax")
    assert names(steps) == ["train", "evaluate eval_test", "summary", "add_preset"]
    train = steps[0][1]
    assert train[train.index("--backend") + 1] == "jax"
    assert train[train.index("train"):] == [
        "train", "--recipe", "pu_unet_kvasir", "--data", "/data/kvasir",
        "--epochs", "20", "--output", str(run), "--verbose", "2"]
    evaluate = steps[1][1]
    assert evaluate[evaluate.index("evaluate"):] == [
        "evaluate", str(run), "--split", "test", "--data", "/data/kvasir",
        "--output", str(run / "eval_test")]
    assert steps[2][1] is None
    add = steps[3][1]
    assert add[1].endswith("zoo/add_preset.py") and add[2] == "pu_unet_kvasir"
    assert add[add.index("--model") + 1] == str(run / "model.keras")
    assert add[add.index("--training") + 1] == str(run / "training_summary.json")
    assert "--update-architecture" not in add


def test_the_gate_is_chosen_on_validation_images_and_recorded(tmp_path):
    run = tmp_path / "run"
    steps = train_preset.plan("pu_unet_busi", "/data/busi", run, gate=True,
                              record=tmp_path / "experiments" / "presets")
    assert names(steps) == [
        "train", "evaluate eval_test", "evaluate eval_val", "calibrate",
        "evaluate eval_test_gated", "summary", "add_preset", "add_gate", "record"]
    val = dict(steps)["evaluate eval_val"]
    assert val[val.index("--split") + 1] == "val"
    gated = dict(steps)["evaluate eval_test_gated"]
    assert gated[gated.index("--split") + 1] == "test"
    assert gated[-2:] == ["--gate", "model"]
    calibrate = dict(steps)["calibrate"]
    assert calibrate[calibrate.index("calibrate") + 1] == str(run / "eval_val")
    add_gate = dict(steps)["add_gate"]
    assert add_gate[add_gate.index("--metrics") + 1] == str(
        run / "eval_test_gated" / "metrics.json")
    record = dict(steps)["record"]
    assert record[-3:] == [str(run), "--into", str(tmp_path / "experiments" / "presets")]


def test_started_again_it_resumes_and_keeps_what_is_done(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    steps = train_preset.plan("pu_unet_busi", "/d", run, gate=True)
    assert names(steps)[0] == "resume" and steps[0][1][-1] == "--resume"

    (run / "model.keras").write_bytes(b"")
    for folder in ("eval_test", "eval_val"):
        (run / folder).mkdir()
        (run / folder / "metrics.json").write_text("{}")
    (run / "postprocess.json").write_text("{}")
    assert names(train_preset.plan("pu_unet_busi", "/d", run, gate=True)) == [
        "evaluate eval_test_gated", "summary", "add_preset", "add_gate"]


def test_the_gate_follows_the_registry_unless_told(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    run = tmp_path / "run"
    for preset, gated in (("pu_unet_busi", True), ("pu_unet_kvasir", False)):
        assert train_preset.main([preset, "--data", str(data), "--run", str(run),
                                  "--dry-run"]) == 0
        assert ("calibrate" in capsys.readouterr().out) is gated
    train_preset.main(["pu_unet_busi", "--data", str(data), "--run", str(run),
                       "--no-gate", "--dry-run"])
    assert "calibrate" not in capsys.readouterr().out


def test_unknown_preset_and_missing_data_are_named(tmp_path):
    with pytest.raises(SystemExit, match="Unknown preset 'pu_unet_kvasr'.*Did you mean 'pu_unet_kvasir'"):
        train_preset.main(["pu_unet_kvasr", "--data", str(tmp_path)])
    with pytest.raises(SystemExit):
        train_preset.main(["pu_unet_kvasir", "--data", str(tmp_path / "nowhere")])


@pytest.mark.parametrize("args, planned, run, expected", [
    ([], 40, 40, "(`keras-pu train --recipe p`), 40 epochs; "),
    (["--epochs", "20"], 20, 20,
     "(`keras-pu train --recipe p --epochs 20`), shortened to 20 of the "
     "recipe's 40 epochs; "),
    ([], 40, 31, "40 epochs; early stopping ended it after 31; "),
])
def test_the_card_says_how_long_it_trained(args, planned, run, expected):
    note = train_preset.training_note("p", args, 40, planned, run, best_epoch=7)
    assert expected in note
    assert "(epoch 7) is the preset" in note


def test_the_summary_describes_the_run(tmp_path):
    """training_summary.json from a run folder's files, as add_preset reads it."""
    run = tmp_path / "run"
    (run / "eval_test").mkdir(parents=True)
    recipe = json.loads((REPO_ROOT / "keras_pu" / "training" / "recipes"
                         / "pu_unet_kvasir.json").read_text())
    recipe["training"]["epochs"] = 3
    recipe["training"]["dtype_policy"] = "float32"
    (run / "recipe.json").write_text(json.dumps(recipe))
    (run / "run.json").write_text(json.dumps({
        "environment": {"backend": "torch"},
        "sessions": [{"started": "2026-12-08T00:00:00+00:00",
                      "last_epoch_ended": "2026-12-08T00:30:00+00:00"}]}))
    (run / "history.csv").write_text(
        "epoch,val_dice\n0,0.5\n1,0.7\n2,0.6\n")
    (run / "eval_test" / "metrics.json").write_text(json.dumps({
        "dataset": "Kvasir-SEG", "num_images": 200, "dice": 0.8, "iou": 0.7,
        "hd95": 20.0}))
    summary = train_preset.write_summary("pu_unet_kvasir", run, ["--epochs", "3"],
                                         "a test machine")
    assert json.loads((run / "training_summary.json").read_text()) == summary
    assert summary["hardware"] == "a test machine"
    assert summary["backend"] == "torch"
    assert summary["epochs"] == 3 and summary["best_epoch"] == 2
    assert summary["wall_minutes"] == 30.0
    assert "shortened to 3 of the recipe's 12 epochs" in summary["note"]
