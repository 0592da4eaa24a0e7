"""scripts/summarize_runs.py: the training time of a run resumed across
sessions is the sum of the sessions' spans, not first start to last write."""

import json
import os
import sys

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
