"""`harness compare A B | head`: a reader that closes the pipe early ends the command quietly with exit 0."""

from __future__ import annotations

import subprocess
import sys

from synthetic_run import write_synthetic_run


def test_compare_into_a_closed_pipe_exits_0_quietly(tmp_path):
    a = write_synthetic_run(tmp_path / "a", n_test=30, examples=False)
    b = write_synthetic_run(tmp_path / "b", n_test=30, examples=False)
    script = (f"{sys.executable} -m harness compare {a} {b} | head -n 1 > /dev/null; "
              "echo ${PIPESTATUS[0]}")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "0", done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr and "error" not in done.stderr
    assert (b / "comparisons" / "a.json").is_file()  # written before anything was printed
    from harness.run.verify import verify_run

    assert not [m for m in verify_run(b, check_data=False).mismatches if "comparisons" in m]  # listed in SHA256SUMS
