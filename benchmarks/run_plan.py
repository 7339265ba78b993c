"""Wall time and peak memory of `harness run PLAN`, cold (empty weight cache: trains) and warm (cached weights).

Usage: .venv/bin/python benchmarks/run_plan.py [specs/ct_nodule.yaml] [--json out.json]
Targets for specs/ct_nodule.yaml on a 2-core machine: cold < 180 s, warm < 90 s, peak memory < 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"cold": 180.0, "warm": 90.0}
MEMORY_TARGET_MB = 2048.0


def measure(plan: Path, cache_dir: Path, out_dir: Path) -> dict[str, float | int]:
    """Run the plan once in a child process; wall seconds, peak RSS (MB) and exit code."""
    env = {**os.environ, "HARNESS_CACHE_DIR": str(cache_dir)}
    command = [sys.executable, "-m", "harness", "run", str(plan), "--out", str(out_dir), "--no-progress"]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode not in (0, 1):
        raise SystemExit(f"harness run failed ({process.returncode}): {stderr.strip()}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "exit_code": process.returncode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", nargs="?", type=Path, default=REPO / "specs" / "ct_nodule.yaml")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "runs"
        rows["cold"] = measure(args.plan, cache, out)
        rows["warm"] = measure(args.plan, cache, out)
    print(f"harness run {args.plan.name} on {os.cpu_count()} CPU cores")
    print(f"{'run':<6}{'wall s':>9}{'target s':>10}{'peak RSS MB':>13}{'target MB':>11}{'exit':>6}")
    for name, row in rows.items():
        print(f"{name:<6}{row['seconds']:>9.1f}{TARGETS[name]:>10.0f}{row['peak_rss_mb']:>13.0f}"
              f"{MEMORY_TARGET_MB:>11.0f}{row['exit_code']:>6}")
    print(f"warm/cold wall-time ratio: {rows['warm']['seconds'] / rows['cold']['seconds']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
