"""scripts/run_study.py: a study runs seed by seed, every arm of a seed
first, and started again continues where it stopped."""

import sys

import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import run_study  # noqa: E402

ARMS = [("off", ["--no-selfreg"]), ("on", ["--selfreg"])]


def steps(study, record=None, seeds=(1, 2)):
    return run_study.plan(study, "pu_unet_kvasir", "/data/kvasir",
                          ["--epochs", "12"], ARMS, seeds, "jax", record)


def test_a_new_study_trains_and_evaluates_pairs_seed_by_seed(tmp_path):
    plan = steps(tmp_path / "study")
    assert [(run.name, what) for run, what, _ in plan] == [
        ("off_s1", "train"), ("off_s1", "evaluate"),
        ("on_s1", "train"), ("on_s1", "evaluate"),
        ("off_s2", "train"), ("off_s2", "evaluate"),
        ("on_s2", "train"), ("on_s2", "evaluate"),
    ]
    _, _, train = plan[2]
    assert train[train.index("--backend") + 1] == "jax"
    assert train[train.index("train"):] == [
        "train", "--recipe", "pu_unet_kvasir", "--data", "/data/kvasir",
        "--epochs", "12", "--selfreg", "--seed", "1",
        "--output", str(tmp_path / "study" / "on_s1"), "--verbose", "2"]
    _, _, evaluate = plan[3]
    assert evaluate[evaluate.index("evaluate"):] == [
        "evaluate", str(tmp_path / "study" / "on_s1"), "--split", "test",
        "--data", "/data/kvasir"]


def test_a_study_started_again_continues_where_it_stopped(tmp_path):
    study = tmp_path / "study"
    done = study / "off_s1" / "eval_test"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text("{}")
    trained = study / "on_s1"
    trained.mkdir()
    (trained / "run.json").write_text("{}")
    (trained / "model.keras").write_bytes(b"")
    interrupted = study / "off_s2"
    interrupted.mkdir()
    (interrupted / "run.json").write_text("{}")

    plan = steps(study)
    assert [(run.name, what) for run, what, _ in plan] == [
        ("on_s1", "evaluate"),
        ("off_s2", "resume"), ("off_s2", "evaluate"),
        ("on_s2", "train"), ("on_s2", "evaluate"),
    ]
    resume = plan[1][2]
    assert resume[-1] == "--resume" and "--seed" in resume


def test_recording_follows_each_evaluation_and_catches_up(tmp_path):
    study, record = tmp_path / "study", tmp_path / "experiments" / "s"
    done = study / "off_s1" / "eval_test"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text("{}")
    plan = steps(study, record, seeds=(1,))
    assert [(run.name, what) for run, what, _ in plan] == [
        ("off_s1", "record"),
        ("on_s1", "train"), ("on_s1", "evaluate"), ("on_s1", "record")]
    assert plan[0][2][-3:] == [str(study / "off_s1"), "--into", str(record)]
    (record / "off_s1").mkdir(parents=True)
    assert [what for run, what, _ in steps(study, record, seeds=(1,))][0] == "train"


def test_arms_are_name_equals_flags():
    assert run_study.parse_arm('on=--selfreg --set a=1') == (
        "on", ["--selfreg", "--set", "a=1"])
    assert run_study.parse_arm("plain=") == ("plain", [])
    for bad in ("--selfreg", "=--selfreg", "a b=--selfreg", "self_reg=--selfreg"):
        with pytest.raises(Exception, match="NAME=FLAGS"):
            run_study.parse_arm(bad)


def test_bad_command_lines_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_study.main([str(tmp_path), "--recipe", "r", "--data", str(tmp_path / "none"),
                        "--arm", "a=", "--dry-run"])
    assert "no such folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_study.main([str(tmp_path), "--recipe", "r", "--data", str(tmp_path),
                        "--arm", "a=", "--arm", "a=--selfreg", "--dry-run"])
    assert "arm names must differ" in capsys.readouterr().err


def test_dry_run_prints_and_runs_nothing(tmp_path, capsys):
    study = tmp_path / "study"
    assert run_study.main([str(study), "--recipe", "r", "--data", str(tmp_path),
                           "--arm", "a=", "--seeds", "7", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [["train", "a_s7:"], ["evaluate", "a_s7:"]]
    assert not study.exists()


def test_a_recorded_run_is_done_even_without_its_run_folder(tmp_path):
    study, record = tmp_path / "study", tmp_path / "experiments" / "s"
    for arm in ("off", "on"):
        evaluation = record / f"{arm}_s1" / "eval_test"
        evaluation.mkdir(parents=True)
        (evaluation / "metrics.json").write_text("{}")
    arms = ARMS + [("weak", ["--selfreg", "--set", "selfreg.lambda_ifd=0.0015"])]
    plan = run_study.plan(study, "r", "/data", [], arms, [1], "jax", record)
    assert [(run.name, what) for run, what, _ in plan] == [
        ("weak_s1", "train"), ("weak_s1", "evaluate"), ("weak_s1", "record")]
