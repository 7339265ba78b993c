"""The report's corruption pages: robustness profile, natural corruptions (hardened against naive) and the example
strip, from a toy run with the fake Darken corruption and a hardened model written into its results."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from test_corruption_stage import run_plan

from harness.report import render_report
from harness.report.context import build_sections
from harness.report.load import load_report
from harness.report.render import build_context, render_html
from harness.results.model import ResultsDocument
from harness.storage.atomic import write_json_atomic


def _with_hardened(run_dir: Path) -> None:
    """A hardened model that is as accurate on clean images but loses more under the strongest darkening."""
    path = run_dir / "results.json"
    document = ResultsDocument.from_json(json.loads(path.read_text()))
    naive = document.model("naive")
    darken = naive.corruptions["darken"]
    worse = replace(darken, points=(*darken.points[:-1], replace(darken.points[-1], accuracy=0.2, relative_drop=0.8)))
    hardened = naive.with_corruption("darken", worse, naive.mean_corruption_error)
    write_json_atomic(path, document.with_model("hardened", hardened).to_json())


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = run_plan(tmp_path_factory.mktemp("toy"))
    _with_hardened(run.run_dir)
    return run.run_dir


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_corruption_sections_follow_the_summary_and_the_adversarial_examples(toy_run):
    names = [s.name for s in build_sections(load_report(toy_run))]
    assert names.index("robustness_profile") == names.index("summary") + 1
    assert names.index("corruptions") == names.index("examples") + 1
    assert names.index("corruption_examples") == names.index("corruptions") + 1


def test_profile_sets_attacks_and_corruptions_side_by_side(toy_run):
    sections = {s.name: s.context for s in build_sections(load_report(toy_run))}
    profile = sections["robustness_profile"]
    labels = [row["label"] for row in profile["rows"]]
    assert labels == ["clean", "worst case of 2 attacks, ε = 0.004 (0.4 HU)",  # the headline: every attack per image
                      "shift, ε = 0.004 (0.4 HU)", "shift_big, ε = 0.2 (20 HU)",
                      "darken, severities 1–5", "darken_steady, severities 1, 4"]
    darken = next(row for row in profile["rows"] if row["label"].startswith("darken,"))
    assert darken["change"] == "-6.0"  # severity 5 fell from 50 % to 20 %: -30 points over 5 severities
    assert profile["plot"].startswith("data:image/png;base64,")


def test_hardened_against_naive_is_judged_beyond_clean_accuracy(toy_run):
    html = render_html(build_context(load_report(toy_run)))
    text = _text(html)
    assert ("On natural corruptions, hardening by the defence changed accuracy by -4.3 percentage points on average "
            "(higher at 0, lower at 1 of 7 corruption and severity points), against +0.0 on clean images.") in text
    assert "so hardening hurt natural robustness beyond its effect on clean accuracy." in text
    assert '<td class="num down">-30.0</td>' in html


def test_corruption_tables_and_criteria_name_severity_and_unit(toy_run):
    text = _text(render_html(build_context(load_report(toy_run))))
    assert "1 slight 2 mild 3 moderate 4 strong 5 severe CE" in text  # each severity with its name
    # the parameter with its unit, then per severity its value, accuracy, interval, sensitivity and specificity
    assert "darken any; amount [of the range]; jitter: 0.02 naive 0.05 100.0% 72%–100% se 100% · sp 100%" in text
    assert "0.15 60.0% 31%–83% se 20% · sp 100%" in text
    assert "accuracy under darken at severity 3 (0.15 of the range)" in text
    assert "relative_drop under every corruption at severity 4" in text
    assert "worst of 2 corruptions: darken" in text


def test_example_strip_captions_each_severity_with_predictions(toy_run):
    sections = {s.name: s.context for s in build_sections(load_report(toy_run))}
    strip = sections["corruption_examples"]
    assert [row["id"] for row in strip["rows"]] == ["darken", "darken_steady"]
    steady = strip["rows"][1]["cells"]
    assert [cell is None for cell in steady] == [False, True, True, False, True]
    assert steady[3]["value"] == "0.2 of the range"
    assert [p["role"] for p in steady[0]["predictions"]] == ["naive"]  # only the naive model saved a strip
    assert strip["label"] == "bright"


def test_pdf_has_the_corruption_pages(toy_run, tmp_path):
    pdftotext = shutil.which("pdftotext")
    assert pdftotext, "pdftotext (poppler-utils) is needed; install.sh installs it"
    run_dir = tmp_path / "run"
    shutil.copytree(toy_run, run_dir)
    _, pdf = render_report(run_dir)
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    for heading in ("2. Robustness profile", "Natural corruptions", "Corruption examples", "Hardened against naive"):
        assert heading in text, heading


def test_runs_without_corruptions_have_no_corruption_pages(tmp_path):
    run = run_plan(tmp_path, ["corruptions=[]", "acceptance=[]"])
    names = {s.name for s in build_sections(load_report(run.run_dir))}
    assert not names & {"robustness_profile", "corruptions", "corruption_examples"}
    assert "corruptions" not in json.loads((run.run_dir / "results.json").read_text())["models"]["naive"]
