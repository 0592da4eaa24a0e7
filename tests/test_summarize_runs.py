"""scripts/summarize_runs.py: the training time of a run resumed across
sessions is the sum of the sessions' spans, not first start to last write;
a study's paired table compares its two arms seed by seed."""

import json
import os
import sys

import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import summarize_runs  # noqa: E402


def test_wall_time_adds_the_sessions_and_skips_the_gaps(tmp_path):
    (tmp_path / "history.csv").write_text("epoch\n0\n")
    sessions = [
        {"started": "2026-12-07T02:00:00+00:00",
         "last_epoch_ended": "2026-12-07T02:40:00+00:00"},
        # Resumed hours later.
        {"started": "2026-12-07T06:00:00+00:00",
         "last_epoch_ended": "2026-12-07T06:50:30+00:00"},
    ]
    assert summarize_runs.training_minutes(sessions, tmp_path) == 90.5


def test_runs_from_before_sessions_recorded_their_end(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch\n0\n")
    # 2026-12-07T03:00:00Z
    os.utime(history, (1796612400, 1796612400))
    one = [{"started": "2026-12-07T02:30:00+00:00"}]
    assert summarize_runs.training_minutes(one, tmp_path) == 30.0
    # An earlier session without an end: unknown, not the gap included.
    two = [{"started": "2026-12-07T01:00:00+00:00"},
           {"started": "2026-12-07T02:30:00+00:00"}]
    assert summarize_runs.training_minutes(two, tmp_path) is None
    assert summarize_runs.minutes(None) == "—"
    assert summarize_runs.minutes(90.4) == "90 min"


def test_a_paired_study_table_from_recorded_runs(tmp_path):
    from tests.test_record_run import make_run

    study = tmp_path / "study"
    scores = {("on", 1): [0.9, 0.8, 0.7], ("off", 1): [0.8, 0.8, 0.7],
              ("on", 2): [0.7, 0.8, 0.9], ("off", 2): [0.7, 0.8, 0.6],
              ("other", 3): [0.5, 0.5, 0.5]}
    for (arm, seed), dice in scores.items():
        make_run(study / f"kv128_{arm}_s{seed}", dice, seed=seed)
    runs = [summarize_runs.read_run(p, "2 CPU cores") for p in sorted(study.iterdir())]

    text = summarize_runs.paired_study_markdown(runs, study, "on", "off")
    lines = text.splitlines()
    assert lines[0].startswith("| Seed | Dice on | Dice off | on − off")
    assert "FPR normal" not in lines[0]  # no BUSI normal images here
    assert lines[2].startswith("| 1 | 0.8000 | 0.7667 | +0.0333 [")
    assert lines[3].startswith("| 2 | 0.8000 | 0.7000 | +0.1000 [")
    assert "(2 / 2 of 2)" in lines[3]  # best validation epoch of the history
    # Means over seeds 1 and 2 (the unpaired "other" arm is left out).
    assert lines[4].startswith(
        "| mean ± sd | 0.8000 ± 0.0000 | 0.7333 ± 0.0471 | +0.0667 [")
    assert "(over seeds and images)" in lines[4]
    assert lines[6].startswith("2 seeds (1, 2), 3 test images.")

    with pytest.raises(ValueError, match="no seed has runs of both arms"):
        summarize_runs.paired_study_markdown(runs, study, "on", "missing")


def test_pair_replaces_only_the_studys_section(tmp_path, capsys):
    from tests.test_record_run import make_run

    study = tmp_path / "selfreg_demo"
    make_run(study / "on_s1", [0.9, 0.8], seed=1)
    make_run(study / "off_s1", [0.8, 0.8], seed=1)
    start, end = summarize_runs.study_markers("selfreg_demo", "on", "off")
    other = "\n".join(summarize_runs.study_markers("selfreg_demo", "weak", "off"))
    page = tmp_path / "results.md"
    page.write_text(f"# Results\n{start}\nold table\n{end}\nafter\n{other}\n")

    summarize_runs.main([str(study), "--pair", "on", "off", "--readme", str(page),
                         "--hardware", "2 CPU cores"])
    text = page.read_text()
    assert "old table" not in text and "| 1 | 0.8500 | 0.8000 |" in text
    assert text.startswith(f"# Results\n{start}\n| Seed |")
    assert text.endswith(f"{end}\nafter\n{other}\n")  # another pair's section
    summary = json.loads((study / "on_s1" / "training_summary.json").read_text())
    assert summary["hardware"] == "2 CPU cores"

    with pytest.raises(SystemExit):
        summarize_runs.main([str(study), "--pair", "on", "off", "--registry"])
    assert "do not go together" in capsys.readouterr().err
