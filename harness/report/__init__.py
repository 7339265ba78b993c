"""The validation report for pre-deployment review: HTML and PDF rendered from a run directory.

`render_report(run_dir)` reads results.json, manifest.json, samples.csv and examples_*.npz and writes
report.html and report.pdf beside them; it never re-runs anything.
"""

from __future__ import annotations

from harness.report.render import render_report

__all__ = ["render_report"]
