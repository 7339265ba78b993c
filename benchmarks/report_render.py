"""Wall time of rendering the validation report (HTML + PDF) from a synthetic run directory.

    .venv/bin/python benchmarks/report_render.py                 # 3 attacks × 20 epsilons, naive + hardened
    .venv/bin/python benchmarks/report_render.py --n-eps 5 --n-test 2000 --repeat 3

Prints one row per stage (read the run directory, build the context and figures, render HTML, lay out the PDF)
and the end-to-end time of harness.report.render_report, which must stay under 10 s for 3 attacks × 20 epsilons.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_SECONDS = 10.0


def _page_count(pdf: Path) -> str:
    """Pages of the PDF according to pdfinfo (poppler-utils), or '?' without it."""
    tool = shutil.which("pdfinfo")
    if not tool:
        return "?"
    output = subprocess.run([tool, str(pdf)], capture_output=True, text=True).stdout
    match = re.search(r"^Pages:\s+(\d+)", output, re.MULTILINE)
    return match.group(1) if match else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-eps", type=int, default=20, help="epsilons per attack (default 20)")
    parser.add_argument("--n-test", type=int, default=500, help="test images (rows of samples.csv per attack)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (the first also warms imports)")
    args = parser.parse_args()

    start = time.perf_counter()
    from harness.report import render_report
    from harness.report.context import build_context
    from harness.report.load import load_report
    from harness.report.render import html_to_pdf, render_html
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the synthetic run is a test fixture
    from synthetic_run import ATTACKS, write_synthetic_run

    import_seconds = time.perf_counter() - start
    stages: dict[str, list[float]] = {"read run directory": [], "context + figures": [], "HTML": [], "PDF layout": [],
                                      "render_report (end to end)": []}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = write_synthetic_run(Path(tmp) / "run", n_test=args.n_test, n_eps=args.n_eps)
        size_kb = 0.0
        for _ in range(max(args.repeat, 1)):
            t0 = time.perf_counter()
            run = load_report(run_dir)
            t1 = time.perf_counter()
            context = build_context(run)
            t2 = time.perf_counter()
            html = render_html(context)
            t3 = time.perf_counter()
            pdf = html_to_pdf(html)
            t4 = time.perf_counter()
            render_report(run_dir)
            t5 = time.perf_counter()
            for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                stages[name].append(seconds)
            size_kb = len(pdf) / 1024
        pages = _page_count(run_dir / "report.pdf")

    print(f"report render: {len(ATTACKS)} attacks × {args.n_eps} epsilons, naive + hardened, {args.n_test} test "
          f"images, {args.repeat} runs (imports {import_seconds:.2f} s, PDF {size_kb:.0f} KiB, {pages} pages)")
    print(f"{'stage':<30} {'median s':>9} {'min s':>8} {'max s':>8}")
    for name, values in stages.items():
        print(f"{name:<30} {statistics.median(values):>9.2f} {min(values):>8.2f} {max(values):>8.2f}")
    worst = max(stages["render_report (end to end)"])
    verdict = "within" if worst < BUDGET_SECONDS else "OVER"
    print(f"end-to-end worst case {worst:.2f} s: {verdict} the {BUDGET_SECONDS:g} s budget")
    return 0 if worst < BUDGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
