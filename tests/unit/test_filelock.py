"""harness.storage.filelock: two processes contending for one lock never overlap, and a held lock times out."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.storage.filelock import LockTimeout, file_lock, lock_path_for


def _critical_section(lock: str, log: str, name: str, hold: float) -> None:
    """Append enter/exit marks to `log` while holding the lock; read-modify-write a counter to detect races."""
    counter = Path(log).with_suffix(".count")
    for _ in range(3):
        with file_lock(Path(lock), timeout=30):
            with open(log, "a") as handle:
                handle.write(f"enter {name}\n")
            value = int(counter.read_text()) if counter.exists() else 0
            time.sleep(hold)
            counter.write_text(str(value + 1))
            with open(log, "a") as handle:
                handle.write(f"exit {name}\n")


def _hold(lock: str, ready: str, seconds: float) -> None:
    with file_lock(Path(lock), timeout=5):
        Path(ready).touch()
        time.sleep(seconds)


def test_two_processes_never_hold_the_lock_together(tmp_path):
    lock, log = tmp_path / "cache" / "w.pt.lock", tmp_path / "log.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_critical_section, args=(str(lock), str(log), name, 0.05)) for name in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    marks = log.read_text().split("\n")[:-1]
    assert len(marks) == 12
    for enter, leave in zip(marks[::2], marks[1::2], strict=True):  # strictly nested: enter X is followed by exit X
        assert enter.startswith("enter") and leave == enter.replace("enter", "exit")
    assert (tmp_path / "log.count").read_text() == "6"  # no lost update


def test_lock_times_out_while_another_process_holds_it(tmp_path):
    lock, ready = tmp_path / "x.lock", tmp_path / "ready"
    holder = mp.get_context("spawn").Process(target=_hold, args=(str(lock), str(ready), 3.0))
    holder.start()
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline and holder.is_alive()
            time.sleep(0.02)
        start = time.monotonic()
        with pytest.raises(LockTimeout, match="timed out") as info:
            with file_lock(lock, timeout=0.3):
                pass
        assert 0.25 <= time.monotonic() - start < 2.5
        assert isinstance(info.value, HarnessError) and "\n" not in info.value.one_line()
    finally:
        holder.join(30)
    with file_lock(lock, timeout=1):  # released when the holder exits
        pass


def test_reentry_after_release_and_lock_path(tmp_path):
    target = tmp_path / "models" / "abc.pt"
    assert lock_path_for(target) == tmp_path / "models" / "abc.pt.lock"
    for _ in range(2):
        with file_lock(lock_path_for(target), timeout=0) as held:
            assert held.exists()
