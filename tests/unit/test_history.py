"""The run history: one SQLite file (WAL) per output directory, safe for concurrent writers; `harness runs`."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from baseline_runs import DATA, load, write_run

from harness.cli.main import main
from harness.results.history import HistoryError, history_path, latest_pass, list_runs, record_run
from harness.storage.filelock import file_lock, lock_path_for


def test_a_finished_run_is_recorded_with_its_hashes_verdict_and_key_metrics(tmp_path):
    run_dir = write_run(tmp_path / "runs" / "plan-1", weights="ab" * 32)
    path = record_run(tmp_path / "runs", load(run_dir))
    assert path == tmp_path / "runs" / "history.sqlite"
    (entry,) = list_runs(tmp_path / "runs")
    assert entry.path == run_dir and entry.plan_name == "plan" and entry.plan_sha256 == "bb" * 32
    assert (entry.data_sha256, entry.model_sha256, entry.hardened_sha256) == (DATA, "ab" * 32, None)
    assert entry.plan_file_sha256 == "cc" * 32 and entry.started_at == "2026-01-01T00:00:00Z"
    assert entry.passed and entry.status == "passed" and (entry.n_passed, entry.n_criteria) == (1, 1)
    assert entry.metrics["clean"]["naive"]["clean_accuracy"] == 0.8
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("SELECT run_dir FROM runs").fetchone()[0] == "plan-1"  # by name: movable


def test_recording_a_run_again_updates_it_and_the_folder_can_move(tmp_path):
    runs = tmp_path / "runs"
    run_dir = write_run(runs / "plan-1")
    record_run(runs, load(run_dir))
    record_run(runs, load(run_dir))  # e.g. a resumed run
    assert len(list_runs(runs)) == 1
    moved = tmp_path / "moved"
    shutil.move(runs, moved)
    assert list_runs(moved)[0].path == moved / "plan-1" and (moved / "plan-1").is_dir()


def test_unfinished_runs_are_not_recorded_and_a_foreign_schema_is_refused(tmp_path):
    with pytest.raises(HistoryError, match="has not finished"):
        record_run(tmp_path, load(write_run(tmp_path / "r", status="running")))
    (tmp_path / "other").mkdir()
    with sqlite3.connect(history_path(tmp_path / "other")) as connection:
        connection.execute("PRAGMA user_version = 7")
    with pytest.raises(HistoryError, match="schema version 7; this harness reads 1"):
        list_runs(tmp_path / "other")
    assert list_runs(tmp_path / "nothing-here") == []


def test_latest_pass_is_the_newest_passing_run_of_the_plan_on_the_same_data(tmp_path):
    runs = tmp_path / "runs"
    for name, kwargs in [("old-pass", {}), ("new-pass", {}), ("newest-fail", {"passed": False}),
                         ("other-data", {"data": "ee" * 32}), ("other-plan", {"plan": "other"})]:
        record_run(runs, load(write_run(runs / name, **kwargs)))  # within a second: the order of recording decides
    assert latest_pass(runs, "plan", DATA).path == runs / "new-pass"
    assert latest_pass(runs, "plan", "ee" * 32).path == runs / "other-data"
    assert latest_pass(runs, "plan", "ff" * 32) is None
    assert [e.path.name for e in list_runs(runs, "plan")] == ["other-data", "newest-fail", "new-pass", "old-pass"]


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from harness.results.view import RunResults
    from harness.results.history import record_run
    runs, go, which = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    run = RunResults.load(runs / "template")
    (go.parent / f"ready-{which}").touch()
    while not go.exists():
        time.sleep(0.001)
    start = float(go.read_text())
    for k in range(FRESH):  # both processes meet at each new output folder, whose history neither has created
        time.sleep(max(0.0, start + 0.05 * k - time.time()))
        for i in range(PER_FOLDER):
            run._run_dir = runs / f"{which}-{k:02d}-{i:02d}"
            record_run(runs / f"out{k:02d}", run)
""")
FRESH, PER_FOLDER, WRITERS = 20, 3, ("a", "b")


def test_processes_recording_at_once_lose_nothing(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "template")
    go = tmp_path / "go"
    script = WRITER.replace("FRESH", str(FRESH)).replace("PER_FOLDER", str(PER_FOLDER))
    writers = [subprocess.Popen([sys.executable, "-c", script, str(runs), str(go), which], stderr=subprocess.PIPE,
                                text=True) for which in WRITERS]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{which}").exists() for which in WRITERS) and time.monotonic() < deadline:
        time.sleep(0.01)  # both have imported everything and wait on the same start signal
    go.with_suffix(".tmp").write_text(str(time.time() + 0.2))
    go.with_suffix(".tmp").rename(go)
    errors = [writer.communicate(timeout=120)[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0] * len(WRITERS), errors
    for k in range(FRESH):
        names = {e.path.name for e in list_runs(runs / f"out{k:02d}")}
        assert names == {f"{which}-{k:02d}-{i:02d}" for which in WRITERS for i in range(PER_FOLDER)}
    with sqlite3.connect(history_path(runs / "out00")) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_new_history_is_set_up_under_a_file_lock(tmp_path):
    """SQLite answers two connections switching one new file to WAL at once with 'database is locked' instead of
    waiting (2 to 7 of 100 simultaneous starts of two processes, measured here), so the setup takes a file lock."""
    runs = tmp_path / "runs"
    run = load(write_run(runs / "plan-1"))
    recorded = threading.Event()
    with file_lock(lock_path_for(history_path(runs))):
        writer = threading.Thread(target=lambda: (record_run(runs, run), recorded.set()))
        writer.start()
        assert not recorded.wait(0.5)  # the setup of the new file waits for the lock
    writer.join(30)
    assert recorded.is_set() and [e.path for e in list_runs(runs)] == [runs / "plan-1"]
    record_run(runs, run)  # a file already set up is used without the lock
    with file_lock(lock_path_for(history_path(runs))):
        record_run(runs, run)


def test_harness_runs_lists_the_history(tmp_path, capsys):
    runs = tmp_path / "runs"
    record_run(runs, load(write_run(runs / "plan-20260101-000000-bbbbbbbb")))
    record_run(runs, load(write_run(runs / "other-20260101-000001-bbbbbbbb", plan="other", passed=False)))
    (runs / "other-20260101-000001-bbbbbbbb" / "results.json").unlink()
    shutil.rmtree(runs / "other-20260101-000001-bbbbbbbb")
    assert main(["runs", "--out", str(runs), "--plan", "plan"]) == 0
    out = capsys.readouterr().out
    assert "PASS 1/1" in out and "80.0%" in out and DATA[:8] in out and "other" not in out
    assert main(["runs", "--out", str(runs), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(e["plan_name"], e["status"], e["exists"]) for e in listed] == [("other", "failed", False),
                                                                           ("plan", "passed", True)]
    assert main(["runs", "--out", str(tmp_path / "empty")]) == 0
    assert "no runs recorded in" in capsys.readouterr().out
    assert Path(listed[1]["run_dir"]).name == "plan-20260101-000000-bbbbbbbb"
