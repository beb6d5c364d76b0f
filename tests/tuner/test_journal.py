import math
import sqlite3

from lightning_compress.tuner.journal import Journal


def test_state_changes_are_persisted_and_running_trials_are_requeued(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    a = journal.add("level", {"k": 0.5})
    b = journal.add("level", {"k": 0.75})
    journal.start(a, "run/a")
    journal.finish(a, {"val/accuracy": 0.9})
    journal.start(b, "run/b")
    # a crash: the connection goes away without any cleanup
    del journal
    reopened = Journal(tmp_path / "j.sqlite")
    assert [t.status for t in reopened.trials()] == ["done", "running"]
    assert reopened.requeue_running() == [b]
    trials = reopened.trials()
    assert trials[0].metrics == {"val/accuracy": 0.9} and trials[1].status == "queued"
    reopened.start(b, "run/b")
    assert reopened.trials()[1].attempts == 2
    mode = sqlite3.connect(tmp_path / "j.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_failed_trials_keep_error_and_nan_metrics(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    t = journal.add("level", {"k": 0.9})
    journal.start(t, "run")
    journal.fail(t, "val/accuracy is NaN", {"val/accuracy": float("nan")})
    (trial,) = journal.trials(status="failed")
    assert trial.error == "val/accuracy is NaN" and math.isnan(trial.metrics["val/accuracy"])
    journal.set_meta("settings", {"a": 1})
    assert journal.get_meta("settings") == {"a": 1}
