"""scripts/record_run.py: a run's results are committed without its weights
or the training machine's paths, and stay usable by `keras-pu compare` and
scripts/summarize_runs.py."""

import csv
import json
import sys

import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import record_run  # noqa: E402
import summarize_runs  # noqa: E402

from keras_pu.metrics.comparison import compare_per_image  # noqa: E402


def make_run(folder, dice_values, seed=1):
    folder.mkdir(parents=True)
    recipe = {
        "name": "pu_unet_efficientnet_lite0_kvasir",
        "model": {"class": "EncoderPUUNet", "config": {}},
        "data": {"path": "/home/someone/data/Kvasir-SEG", "image_size": [128, 128]},
        "training": {"seed": seed, "dtype_policy": "float32"},
        "selfreg": {"enabled": False},
    }
    (folder / "recipe.json").write_text(json.dumps(recipe))
    run = {
        "output": str(folder.resolve()),
        "environment": {"backend": "tensorflow"},
        "sessions": [{"started": "2026-12-07T02:00:00+00:00",
                      "last_epoch_ended": "2026-12-07T02:10:00+00:00"}],
    }
    (folder / "run.json").write_text(json.dumps(run))
    (folder / "history.csv").write_text("epoch,val_dice\n0,0.5\n1,0.7\n")
    (folder / "model.keras").write_bytes(b"weights")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.keras").write_bytes(b"weights")
    evaluation = folder / "eval_test"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text(json.dumps({
        "dataset": "Kvasir-SEG", "data_path": "C:\\data\\Kvasir-SEG",
        "num_images": len(dice_values), "dice": sum(dice_values) / len(dice_values),
        "iou": 0.5, "hd95": 10.0,
    }))
    with open(evaluation / "per_image.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "dice", "image_path"])
        for i, value in enumerate(dice_values):
            writer.writerow([f"img{i}", value, f"/home/someone/data/img{i}.jpg"])
    return folder


def test_records_results_without_weights_or_machine_paths(tmp_path):
    run = make_run(tmp_path / "runs" / "pu_s1", [0.8, 0.9, 0.7])
    target = record_run.record(run, tmp_path / "study")

    assert target == tmp_path / "study" / "pu_s1"
    written = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert written == ["eval_test/metrics.json", "eval_test/per_image.csv",
                       "history.csv", "recipe.json", "run.json"]
    recipe = json.loads((target / "recipe.json").read_text())
    assert recipe["data"] == {"path": None, "image_size": [128, 128]}
    assert json.loads((target / "run.json").read_text())["output"] is None
    metrics = json.loads((target / "eval_test" / "metrics.json").read_text())
    assert metrics["data_path"] is None and metrics["dice"] == pytest.approx(0.8)
    rows = list(csv.DictReader(open(target / "eval_test" / "per_image.csv")))
    assert [(r["id"], r["dice"], r["image_path"]) for r in rows] == [
        ("img0", "0.8", ""), ("img1", "0.9", ""), ("img2", "0.7", "")]
    assert (target / "history.csv").read_text() == (run / "history.csv").read_text()


def test_recorded_runs_feed_compare_and_the_results_tables(tmp_path):
    a = record_run.record(make_run(tmp_path / "runs" / "a", [0.8, 0.9, 0.7]),
                          tmp_path / "study")
    b = record_run.record(make_run(tmp_path / "runs" / "b", [0.7, 0.8, 0.7]),
                          tmp_path / "study")
    result = compare_per_image(a / "eval_test", b / "eval_test", num_resamples=200)
    assert result["mean_difference"] == pytest.approx(0.2 / 3)

    row = summarize_runs.read_run(a, "2 CPU cores")
    assert row["metrics"]["dice"] == pytest.approx(0.8)
    assert row["summary"]["wall_minutes"] == 10.0
    assert row["summary"]["best_epoch"] == 2


def test_an_unevaluated_run_is_refused_and_nothing_is_written(tmp_path, capsys):
    done = make_run(tmp_path / "runs" / "done", [0.8])
    unevaluated = make_run(tmp_path / "runs" / "unevaluated", [0.8])
    for name in ("metrics.json", "per_image.csv"):
        (unevaluated / "eval_test" / name).unlink()
    study = tmp_path / "study"

    assert record_run.main([str(done), str(unevaluated), "--into", str(study)]) == 1
    message = capsys.readouterr().err
    assert "unevaluated: no evaluation to record" in message
    assert "keras-pu evaluate" in message
    assert not study.exists()

    (unevaluated / "run.json").unlink()
    with pytest.raises(record_run.RecordError, match="no run.json"):
        record_run.recorded_files(unevaluated)


def test_a_linked_run_is_recorded_under_the_links_name(tmp_path):
    run = make_run(tmp_path / "runs" / "off_s1", [0.8])
    link = tmp_path / "decoder_study" / "pu_s1"
    link.parent.mkdir()
    link.symlink_to(run, target_is_directory=True)
    assert record_run.record(link, tmp_path / "study") == tmp_path / "study" / "pu_s1"
    assert record_run.record(str(run) + "/", tmp_path / "study").name == "off_s1"


def test_an_unreadable_json_file_is_named_in_the_error(tmp_path, capsys):
    run = make_run(tmp_path / "runs" / "truncated", [0.8])
    (run / "eval_test" / "metrics.json").write_text('{"dice": 0.8, ')
    assert record_run.main([str(run), "--into", str(tmp_path / "study")]) == 1
    message = capsys.readouterr().err
    assert "eval_test/metrics.json: not readable JSON" in message
    assert not (tmp_path / "study").exists()
