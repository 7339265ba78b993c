"""SHA256SUMS: the hash of every file in a run directory, in `sha256sum` format, written last.

`cd RUN_DIR && sha256sum -c SHA256SUMS` checks it with coreutils alone; `harness verify RUN_DIR` checks it too and
also names files added since. The run's lock file (held while a process runs in the directory) and leftover
temporary files of atomic writes are not evidence and are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.storage.atomic import write_text_atomic
from harness.storage.hashing import file_sha256
from harness.storage.rundir import RUN_LOCK

SUMS_FILE = "SHA256SUMS"
VERIFY_COMMAND = "cd RUN_DIR && sha256sum -c SHA256SUMS   (or: harness verify RUN_DIR)"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
_TEMPORARY = re.compile(r"^\..+\.tmp$")  # atomic writes' temporary files (harness.storage.atomic)


@dataclass(frozen=True)
class SumsProblem:
    """One file whose content does not match SHA256SUMS, or that SHA256SUMS does not list."""

    path: str  # relative to the run directory, with '/'
    problem: str  # 'changed', 'missing' or 'not listed'

    def line(self) -> str:
        """One line for the console, naming the file."""
        return {"changed": f"{self.path}: content changed since SHA256SUMS was written (sha256 differs)",
                "missing": f"{self.path}: listed in SHA256SUMS but missing",
                "not listed": f"{self.path}: not listed in SHA256SUMS (added after the run)"}[self.problem]


def evidence_files(run_dir: Path) -> list[str]:
    """Every file of the run directory that SHA256SUMS covers, relative with '/', sorted."""
    run_dir = Path(run_dir)
    out = []
    for path in run_dir.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        name = path.name
        if path.parent == run_dir and name in (SUMS_FILE, RUN_LOCK):
            continue
        if _TEMPORARY.match(name) or name.endswith(".lock"):
            continue
        out.append(path.relative_to(run_dir).as_posix())
    return sorted(out)


def read_sums(run_dir: Path) -> dict[str, str]:
    """SHA256SUMS as {relative path: hex sha256}; FileNotFoundError when there is none, ValueError on a bad line."""
    sums: dict[str, str] = {}
    text = (Path(run_dir) / SUMS_FILE).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{SUMS_FILE} line {number} is not '<sha256>  <file>'")
        sums[match.group(2)] = match.group(1)
    return sums


def _write(run_dir: Path, sums: dict[str, str]) -> None:
    text = "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))
    write_text_atomic(Path(run_dir) / SUMS_FILE, text)


def write_sums(run_dir: Path) -> dict[str, str]:
    """Hash every evidence file and write SHA256SUMS (atomically); call it after the last file is written."""
    run_dir = Path(run_dir)
    sums = {name: file_sha256(run_dir / name) for name in evidence_files(run_dir)}
    _write(run_dir, sums)
    return sums


def update_sums(run_dir: Path, names: list[str]) -> bool:
    """Re-hash only `names` (files a later command rewrote or added, e.g. a re-rendered report) in an existing
    SHA256SUMS; every other line is kept, so a file changed by hand still fails. False when there is no SHA256SUMS."""
    run_dir = Path(run_dir)
    try:
        sums = read_sums(run_dir)
    except (FileNotFoundError, ValueError):
        return False
    for name in names:
        path = run_dir / name
        if path.is_file():
            sums[name] = file_sha256(path)
        else:
            sums.pop(name, None)
    _write(run_dir, sums)
    return True


def check_sums(run_dir: Path) -> list[SumsProblem]:
    """Every file that differs from SHA256SUMS, is missing, or is not listed (FileNotFoundError/ValueError as
    read_sums raises them)."""
    run_dir = Path(run_dir)
    sums = read_sums(run_dir)
    problems = []
    for name, digest in sorted(sums.items()):
        path = run_dir / name
        if not path.is_file():
            problems.append(SumsProblem(name, "missing"))
        elif file_sha256(path) != digest:
            problems.append(SumsProblem(name, "changed"))
    problems += [SumsProblem(name, "not listed") for name in evidence_files(run_dir) if name not in sums]
    return problems
