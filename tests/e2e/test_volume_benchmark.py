"""benchmarks/volume_throughput.py on tiny volumes, so its table and JSON cannot rot (no timed assertions)."""

from __future__ import annotations

import json
import subprocess
import sys

from support import REPO


def test_volume_throughput_writes_a_row_per_size(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "volume_throughput.py"), "--sizes", "8", "12",
                           "--n", "2", "--json", str(out)], capture_output=True, text=True, check=True)
    assert "| 8³ |" in done.stdout and "| 12³ |" in done.stdout
    rows = json.loads(out.read_text())
    assert [r["volume"] for r in rows] == ["8³", "12³"]
    for row in rows:
        assert row["images_per_s"] > 0 and row["images_per_cpu_s"] > 0 and row["peak_rss_mb"] > 0
        assert row["batch"] >= 1
        assert row["input_mib_per_batch"] > 0 and row["attack"].startswith("PGD-10")
