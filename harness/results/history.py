"""The run history: an SQLite file beside the run directories with one row per finished run.

One file per output directory (`<out>/history.sqlite`, set up under `history.sqlite.lock`), in WAL mode so that
readers never block the writer; each write is one short `BEGIN IMMEDIATE` transaction with a busy timeout, so CI
jobs on one machine that finish at once wait for each other instead of failing (WAL needs a local file system, not
NFS). Run directories inside the output directory are recorded by name, so the folder can be moved or cached whole.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.results.status import JUDGED, PASSED
from harness.storage.filelock import file_lock, lock_path_for
from harness.storage.hashing import file_sha256

if TYPE_CHECKING:
    from harness.results.view import RunResults

HISTORY_FILE = "history.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_dir TEXT PRIMARY KEY,       -- the run directory: its name when inside the history's folder, else absolute
    plan_name TEXT NOT NULL,
    plan_sha256 TEXT NOT NULL,      -- the resolved plan (canonical JSON)
    plan_file_sha256 TEXT,          -- the plan file as written
    data_sha256 TEXT,               -- the data set's content hash
    model_sha256 TEXT,              -- the naive model's weights
    hardened_sha256 TEXT,           -- the hardened model's weights, when the plan has a defence
    status TEXT NOT NULL,           -- passed, failed or inconclusive (harness.results.status) when recorded
    n_passed INTEGER NOT NULL,
    n_criteria INTEGER NOT NULL,
    started_at TEXT,
    finished_at TEXT NOT NULL,      -- UTC, when the run was recorded
    harness_version TEXT,
    metrics TEXT NOT NULL           -- JSON: clean metrics per model role, each criterion's measured value, and
                                    -- `subject`: the device under test the plan states (or null), and
                                    -- `results_sha256`: the results id, sha256 of results.json (absent before)
);
CREATE INDEX IF NOT EXISTS runs_by_plan_data ON runs (plan_name, data_sha256, status, finished_at);
"""
_COLUMNS = ("run_dir", "plan_name", "plan_sha256", "plan_file_sha256", "data_sha256", "model_sha256",
            "hardened_sha256", "status", "n_passed", "n_criteria", "started_at", "finished_at", "harness_version",
            "metrics")


class HistoryError(HarnessError):
    """The run history cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class HistoryEntry:
    """One finished run as the history records it."""

    path: Path  # the run directory
    plan_name: str
    plan_sha256: str
    plan_file_sha256: str | None
    data_sha256: str | None
    model_sha256: str | None
    hardened_sha256: str | None
    status: str  # passed, failed or inconclusive
    n_passed: int
    n_criteria: int
    started_at: str | None
    finished_at: str
    harness_version: str | None
    metrics: dict[str, Any]

    @property
    def results_sha256(self) -> str | None:
        """The results id (sha256 of the run's results.json when recorded); None for runs recorded before it was."""
        found = self.metrics.get("results_sha256")
        return found if isinstance(found, str) else None

    @property
    def passed(self) -> bool:
        """Whether the run passed when it was recorded."""
        return self.status == PASSED


def history_path(out_root: Path) -> Path:
    """The history file of an output directory."""
    return Path(out_root) / HISTORY_FILE


@contextlib.contextmanager
def _connect(path: Path, create: bool) -> Iterator[sqlite3.Connection]:
    """A connection to a history in WAL mode with the schema in place (HistoryError naming the file on any SQLite
    error). Setting up a new file is serialised by a file lock: SQLite answers two connections switching one file to
    WAL at once with 'database is locked' instead of waiting."""
    if not create and not path.is_file():
        raise FileNotFoundError(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise HistoryError(f"cannot open the run history {path}: {exc}") from None
    try:
        connection.row_factory = sqlite3.Row
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if not _ready(connection, path):
            with file_lock(lock_path_for(path), timeout=BUSY_TIMEOUT_S):
                if not _ready(connection, path):
                    connection.execute("PRAGMA journal_mode = WAL")
                    with _transaction(connection):
                        _create(connection)
        yield connection
    except sqlite3.Error as exc:
        raise HistoryError(f"the run history {path} cannot be used: {exc}") from None
    finally:
        connection.close()


def _ready(connection: sqlite3.Connection, path: Path) -> bool:
    """Whether the file is in WAL mode with this schema (HistoryError for another schema version)."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, SCHEMA_VERSION):
        raise HistoryError(f"the run history {path} has schema version {version}; this harness reads {SCHEMA_VERSION}")
    return version == SCHEMA_VERSION and connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _create(connection: sqlite3.Connection) -> None:
    """The table, its index and the schema version (inside the caller's transaction; a no-op when present)."""
    for statement in filter(str.strip, _SCHEMA.split(";")):
        connection.execute(statement)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT: the write lock is taken up front, so concurrent writers queue on the busy timeout."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _stored_path(out_root: Path, run_dir: Path) -> str:
    """The run directory's name when it lies in the history's folder, else its absolute path."""
    run_dir, root = Path(run_dir).resolve(), Path(out_root).resolve()
    return run_dir.name if run_dir.parent == root else str(run_dir)


def entry_values(run: RunResults) -> dict[str, Any]:
    """The columns of one finished run (run_dir aside)."""
    document, manifest = run.document, run.record
    verdict = document.verdict
    if document.status not in JUDGED or verdict is None:
        raise HistoryError(f"{run.run_dir} has not finished, so it is not recorded in the run history")
    from harness.plan.metrics import CLEAN, metrics_in

    metrics = {"clean": {role: {metric.name: metric.read(model) for metric in metrics_in(CLEAN)}
                         for role, model in document.models.items()},
               "criteria": {c.id: c.measured for c in document.criteria},
               "subject": dict(document.plan.subject) if document.plan.subject else None,
               "results_sha256": _results_id(run)}
    hardened = document.models.get("hardened")
    naive = document.models.get("naive")
    return {"plan_name": document.plan.name, "plan_sha256": document.plan.sha256,
            "plan_file_sha256": manifest.plan.file_sha256,
            "data_sha256": document.dataset.content_sha256 if document.dataset else None,
            "model_sha256": naive.weights_sha256 if naive else None,
            "hardened_sha256": hardened.weights_sha256 if hardened else None,
            "status": document.status, "n_passed": verdict.n_passed, "n_criteria": verdict.n_criteria,
            "started_at": manifest.started_at, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "harness_version": manifest.harness_version, "metrics": json.dumps(metrics, sort_keys=True)}


def _results_id(run: RunResults) -> str | None:
    """sha256 of the run directory's results.json as written, or None where the file cannot be read."""
    try:
        return file_sha256(Path(run.run_dir) / "results.json")
    except OSError:
        return None


def record_run(out_root: Path, run: RunResults) -> Path:
    """Add (or, for a resumed run, update) a finished run in the output directory's history; the history file."""
    path = history_path(out_root)
    values = {"run_dir": _stored_path(out_root, run.run_dir), **entry_values(run)}
    columns = ", ".join(_COLUMNS)
    updates = ", ".join(f"{column} = excluded.{column}" for column in _COLUMNS if column != "run_dir")
    with _connect(path, create=True) as connection, _transaction(connection):
        connection.execute(f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
                           f"ON CONFLICT (run_dir) DO UPDATE SET {updates}", [values[c] for c in _COLUMNS])
    return path


def list_runs(out_root: Path, plan_name: str | None = None) -> list[HistoryEntry]:
    """Every recorded run, newest first (only one plan's with `plan_name`); empty without a history file."""
    query = f"SELECT {', '.join(_COLUMNS)} FROM runs"
    query += " WHERE plan_name = ?" if plan_name else ""
    return _select(out_root, query + " ORDER BY finished_at DESC, rowid DESC", [plan_name] if plan_name else [])


def latest_pass(out_root: Path, plan_name: str, data_sha256: str | None) -> HistoryEntry | None:
    """The newest run of a plan on the same data (content hash) recorded with status passed, or None."""
    query = (f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE plan_name = ? AND data_sha256 IS ? AND status = ? "
             "ORDER BY finished_at DESC, rowid DESC LIMIT 1")
    found = _select(out_root, query, [plan_name, data_sha256, PASSED])
    return found[0] if found else None


def _select(out_root: Path, query: str, parameters: list[Any]) -> list[HistoryEntry]:
    path = history_path(out_root)
    try:
        with _connect(path, create=False) as connection:
            rows = connection.execute(query, parameters).fetchall()
    except FileNotFoundError:
        return []
    return [_entry(out_root, row) for row in rows]


def _entry(out_root: Path, row: sqlite3.Row) -> HistoryEntry:
    values = dict(row)
    stored = Path(values.pop("run_dir"))
    return HistoryEntry(path=stored if stored.is_absolute() else Path(out_root) / stored,
                        metrics=json.loads(values.pop("metrics")), **values)
