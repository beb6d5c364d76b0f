"""Persisted record of every trial of a sweep (SQLite, WAL, one transaction per state change).

A trial moves ``queued -> running -> done | failed``. After a crash (or ``kill -9``) of the sweep,
:meth:`Journal.requeue_running` puts the trials that were running back to ``queued`` so that a resumed
sweep runs them again, while finished ones are reused: nothing recorded is lost. An existing journal that is
empty (0 bytes) or unreadable raises :class:`JournalError`; it is never silently replaced by a new one.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["STATUSES", "Journal", "JournalError", "Trial"]

Status = Literal["queued", "running", "done", "failed"]
STATUSES: tuple[str, ...] = ("queued", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    stage TEXT NOT NULL,
    knobs TEXT NOT NULL,
    status TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    run_dir TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    queued_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class JournalError(RuntimeError):
    """An existing sweep journal is empty or cannot be read."""


@dataclass
class Trial:
    """One row of the journal; ``knobs`` maps knob paths to values, ``metrics`` metric names to floats."""

    id: int
    stage: str
    knobs: dict[str, float]
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    run_dir: str | None = None
    error: str | None = None
    attempts: int = 0
    queued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def seconds(self) -> float | None:
        """Run time of the last attempt, if it finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


def _dumps(value: dict) -> str:
    # NaN/inf are kept as strings so the JSON stays standard
    return json.dumps({k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in value.items()})


def _loads(text: str) -> dict:
    out = {}
    for key, value in json.loads(text).items():
        out[key] = float(value) if value in ("nan", "inf", "-inf") else value
    return out


class Journal:
    """SQLite journal of a sweep at ``path`` (created if missing).

    Example:
        >>> import tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> journal = Journal(f"{folder.name}/journal.sqlite")
        >>> trial_id = journal.add("level", {"final_sparsity": 0.5})
        >>> journal.start(trial_id, f"{folder.name}/trial_0001"); journal.finish(trial_id, {"val/accuracy": 0.9})
        >>> [(trial.status, trial.metrics) for trial in journal.trials()]
        [('done', {'val/accuracy': 0.9})]
        >>> journal.close(); folder.cleanup()
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists()
        if existed and self.path.stat().st_size == 0:
            raise JournalError(self._unreadable("it is empty (0 bytes)"))
        self._connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=FULL")
            if existed:
                check = self._connection.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise sqlite3.DatabaseError(f"integrity check: {check}")
                tables = {row[0] for row in self._connection.execute("SELECT name FROM sqlite_master")}
                if not {"trials", "meta"} <= tables:
                    raise sqlite3.DatabaseError(f"no trials/meta tables (tables: {sorted(tables)})")
            self._connection.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            self._connection.close()
            raise JournalError(self._unreadable(str(error))) from error

    def _unreadable(self, why: str) -> str:
        return (
            f"sweep journal {self.path} is not readable: {why}. It was left as it is, and so were the trial folders "
            f"next to it. Restore it from a backup, or move the sweep folder {self.path.parent} aside and start a "
            "new sweep in another out_dir."
        )

    def close(self) -> None:
        self._connection.close()

    def _write(self, sql: str, parameters: tuple) -> sqlite3.Cursor:
        with self._connection:  # one transaction per state change
            self._connection.execute("BEGIN IMMEDIATE")
            return self._connection.execute(sql, parameters)

    def add(self, stage: str, knobs: dict[str, float]) -> int:
        """Record a new ``queued`` trial; returns its id."""
        cursor = self._write(
            "INSERT INTO trials (stage, knobs, status, queued_at) VALUES (?, ?, 'queued', ?)",
            (stage, json.dumps(knobs), time.time()),
        )
        return int(cursor.lastrowid)

    def start(self, trial_id: int, run_dir: str) -> None:
        """``queued -> running`` in ``run_dir``."""
        self._write(
            "UPDATE trials SET status='running', run_dir=?, started_at=?, finished_at=NULL, error=NULL, "
            "attempts=attempts+1 WHERE id=?",
            (run_dir, time.time(), trial_id),
        )

    def finish(self, trial_id: int, metrics: dict[str, float]) -> None:
        """``running -> done`` with the trial's metrics."""
        self._write(
            "UPDATE trials SET status='done', metrics=?, finished_at=? WHERE id=?",
            (_dumps(metrics), time.time(), trial_id),
        )

    def fail(self, trial_id: int, error: str, metrics: dict[str, float] | None = None) -> None:
        """``running -> failed`` with the error text (a failed trial counts as infeasible)."""
        self._write(
            "UPDATE trials SET status='failed', error=?, metrics=?, finished_at=? WHERE id=?",
            (error, _dumps(metrics or {}), time.time(), trial_id),
        )

    def requeue_running(self) -> list[int]:
        """Put trials left ``running`` by a crashed sweep back to ``queued``; returns their ids."""
        ids = [row[0] for row in self._connection.execute("SELECT id FROM trials WHERE status='running'")]
        if ids:
            self._write("UPDATE trials SET status='queued', started_at=NULL WHERE status='running'", ())
        return ids

    def trials(self, stage: str | None = None, status: str | None = None) -> list[Trial]:
        """Trials in id order, optionally filtered by stage and status."""
        sql, parameters = "SELECT * FROM trials", []
        clauses = []
        if stage is not None:
            clauses.append("stage=?")
            parameters.append(stage)
        if status is not None:
            clauses.append("status=?")
            parameters.append(status)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = self._connection.execute(sql + " ORDER BY id", parameters).fetchall()
        return [
            Trial(
                id=row[0],
                stage=row[1],
                knobs=json.loads(row[2]),
                status=row[3],
                metrics=_loads(row[4]),
                run_dir=row[5],
                error=row[6],
                attempts=row[7],
                queued_at=row[8],
                started_at=row[9],
                finished_at=row[10],
            )
            for row in rows
        ]

    def get_meta(self, key: str) -> Any:
        row = self._connection.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
