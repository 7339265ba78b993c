"""The report a reviewer signs (issue 25): device under test, limitations, legible type, ids that wrap cleanly."""

from __future__ import annotations

import subprocess

import pytest
from report_layout import MAX_SMALL_SHARE, read_layout, small_type_share, small_words, tool, type_size
from synthetic_run import write_synthetic_run

from harness.errors import PlanError
from harness.plan.subject import Subject, parse_subject
from harness.report import render_report
from harness.report.text import breakable_id

SUBJECT = {"name": "NoduleScope", "version": "2.1", "manufacturer": "Example Imaging Ltd",
           "intended_use": "Characterise solid pulmonary nodules on chest CT.",
           "indications": ["adults with an incidental solid nodule of 6-30 mm"],
           "contraindications": "paediatric patients"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A synthetic run with no subject: the model is trained by the harness (a demonstration model)."""
    run = write_synthetic_run(tmp_path_factory.mktemp("demo") / "run", n_test=40)
    _, pdf = render_report(run)
    text = subprocess.run([tool("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    return {"text": text, "layout": read_layout(pdf, tmp_path_factory.mktemp("pages")), "run": run}


def _one_line(text: str) -> str:
    return " ".join(text.replace("\u200b", "").split())


def test_a_stated_subject_is_the_title_block_and_in_results(tmp_path):
    run = write_synthetic_run(tmp_path / "run", n_test=30, subject=SUBJECT, examples=False)
    html, _ = render_report(run)
    page = html.read_text()
    assert '<h1 class="cover-title">NoduleScope</h1>' in page and "version 2.1 ·" in page
    assert "Example Imaging Ltd" in page
    assert "adults with an incidental solid nodule of 6-30 mm" in page and "paediatric patients" in page
    assert page.count("Characterise solid pulmonary nodules on chest CT.") == 3  # cover, Intended use, Appendix A
    assert "does not state an intended use" not in page
    import json
    assert json.loads((run / "results.json").read_text())["plan"]["subject"]["name"] == "NoduleScope"


def test_a_supplied_model_without_subject_says_not_stated_in_red(tmp_path):
    import json
    run = write_synthetic_run(tmp_path / "run", n_test=30, examples=False)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["models"]["naive"]["source"] = "torchscript"
    (run / "manifest.json").write_text(json.dumps(manifest))
    html, _ = render_report(run)
    page = html.read_text()
    assert page.count('<span class="warn">not stated</span>') == 3  # product, version, manufacturer
    assert "demonstration model" not in page


def test_the_harness_trained_model_is_called_a_demonstration_model(demo):
    cover = _one_line(demo["text"].split("1. Summary")[0])
    assert "demonstration model: a network trained by the harness" in cover
    assert "test images are a generated phantom: its results describe the model on the phantom" in cover


def test_limitations_are_built_from_the_run(demo):
    text = _one_line(demo["text"])
    section = text[text.index("Limitations What this run cannot show"):]
    assert "40 test images from 40 patients" in section
    assert "ε = 0.004 is 6 HU per pixel" in section and "σ 10–40 HU" in section and "source:" in section
    assert "white-box" in section and "No transfer attacks" in section
    assert "Subgroups: none evaluated" in section and "Natural corruptions: none evaluated" in section
    assert "weights of the naive model loaded from the harness cache" in section


def test_type_is_legible(demo):
    layout = demo["layout"]
    assert small_type_share(layout) <= MAX_SMALL_SHARE, [w.text for w in small_words(layout)][:20]
    smaller = small_words(layout, 7.5)  # nothing under the table size of 7.5 pt
    assert not smaller, [(w.page, w.text, round(type_size(w), 2)) for w in smaller][:20]
    sizes = sorted(type_size(w) for w in layout.words)
    assert sizes[len(sizes) // 2] >= 7.45  # half of all words at table size or larger


def test_ids_break_only_between_parts():
    shown = breakable_id("pgd_linf[eps=0.004]::robust_accuracy>=0.60")
    assert "0.004" in shown and "0.60" in shown  # numbers stay whole
    assert shown.replace("\u200b", "") == "pgd_linf[eps=0.004]::robust_accuracy>=0.60"
    assert shown.count("\u200b") >= 4


def test_subject_is_validated_with_the_key_named():
    errors = []

    def error(message, key):
        errors.append((message, key))
        return PlanError(message, key=key)

    with pytest.raises(PlanError):
        parse_subject({"version": 2.1}, error)
    assert errors[-1] == ('expected a string, got 2.1 (quote it: version: "2.1")', "subject.version")
    with pytest.raises(PlanError):
        parse_subject({"model": "x"}, error)
    assert errors[-1][1] == "subject.model"
    assert parse_subject(None, error, "Decision support.") == Subject(intended_use="Decision support.")
    assert parse_subject({"name": "A", "indications": "one"}, error).indications == ("one",)


def test_lowest_accuracy_has_one_source_over_every_attack(demo):
    from harness.report.load import load_report
    from harness.report.worst_case import attack_points, lowest_accuracy

    report = load_report(demo["run"])
    points = attack_points(report, "naive")
    kinds = {report.attack(a).kind for a, _ in points}
    assert kinds == {"fixed_epsilon", "minimal"}  # minimal attacks (FMN) count too
    lowest = lowest_accuracy(report, "naive")
    assert lowest.accuracy == min(p.robust_accuracy for _, p in points)


def test_plan_git_provenance_is_recorded_and_reported(tmp_path):
    import json
    import shutil

    from harness.report.load import load_report
    from harness.report.sections.criteria import build as criteria
    from harness.run.environment import plan_git_provenance

    if not shutil.which("git"):
        pytest.skip("git is not installed")
    plan = tmp_path / "repo" / "plan.yaml"
    plan.parent.mkdir()
    plan.write_text("harness: 1\n")
    assert plan_git_provenance(str(plan)) == {"tracked": False, "why": "not under version control"}
    git = ["git", "-C", str(plan.parent), "-c", "user.name=QA Lead", "-c", "user.email=qa@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    assert plan_git_provenance(str(plan))["why"] == "in a git repository but never committed"
    subprocess.run([*git, "add", "plan.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "criteria"], check=True)
    found = plan_git_provenance(str(plan))
    assert found["tracked"] and found["author"] == "QA Lead" and found["modified"] is False
    plan.write_text("harness: 1\n# changed\n")
    assert plan_git_provenance(str(plan))["modified"] is True

    run = write_synthetic_run(tmp_path / "run", n_test=20, examples=False)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["plan"]["git"] = found
    (run / "manifest.json").write_text(json.dumps(manifest))
    section = criteria(load_report(run))
    assert section["preregistration"] == (f"Acceptance criteria fixed in commit {found['commit'][:12]} on "
                                          f"{found['date'][:10]} by QA Lead; the plan file was unmodified since.")
    assert section["n_without_rationale"] == 3  # the synthetic plan gives one of its four criteria a reason


def test_training_settings_read_plainly():
    from harness.report.model_rows import model_contract_rows
    from harness.report.sections.plan_summary import training_rows

    info = {"seed": 20221, "training": {"epochs": 12, "seed": None, "num_threads": None},
            "architecture_arguments": {"name": "small_cnn", "arguments": {"widths": [16]}, "from_plan": []},
            "normalization": {"mean": [0.4], "std": [0.1], "source": "computed by training"}}
    assert training_rows(info) == [("epochs", "12"), ("seed", "not set: the plan's seed (20221)"),
                                   ("num_threads", "not set: the run's --threads (torch's default without it)")]
    rows = dict(model_contract_rows(info))
    assert rows["arguments set by the plan"].startswith("none: the architecture's defaults")
    assert rows["normalisation"] == "mean [0.4], std [0.1]; source: computed by training"
    assert "null" not in " ".join(v for _, v in training_rows(info))


def test_the_ids_claim_follows_the_plugin(demo):
    text = _one_line((demo["run"] / "report.html").read_text())
    assert "the data set plugin declares them synthetic" in text  # the synthetic run's ids are generated
    assert "Sample and patient ids in outputs are keyed hashes" not in text


def test_indicator_thresholds_carry_their_direction():
    from harness.report.sections.indicators import threshold_text
    from harness.results.model import IndicatorCheck

    assert threshold_text(IndicatorCheck("monotone", "", True, 0.0, 0.05, "")) == "≤ 0.05"
    assert threshold_text(IndicatorCheck("more_iterations", "", False, 0.156, 0.05, "")) == "≤ 0.05"
    assert threshold_text(IndicatorCheck("box", "", True, 0.95, 0.9, "")) == "≥ 0.9"
    assert threshold_text(IndicatorCheck("box", "", False, 0.5, 0.9, "")) == "≥ 0.9"


def test_the_corruption_strip_shows_the_image_whose_prediction_changes_most():
    from types import SimpleNamespace

    import numpy as np

    from harness.corruptions.examples import example_index, prediction_changes

    split = SimpleNamespace(labels=np.array([0, 1, 1, 0]), sample_ids=["a", "b", "c", "d"])
    rows = [{"model": "naive", "corruption": "noise", "sample_id": sid, "clean_prediction": "1",
             **{f"prediction@{k}": p for k, p in zip(range(1, 6), preds, strict=True)}}
            for sid, preds in (("a", "11111"), ("b", "11100"), ("c", "11110"), ("d", "00000"))]
    rows.append({"model": "hardened", "sample_id": "a", "clean_prediction": "1", "prediction@1": "0"})
    changes = prediction_changes(rows)
    assert changes == {"a": 0, "b": 2, "c": 1, "d": 5}
    assert example_index(split, 1, changes) == 3  # d changes at every severity
    assert example_index(split, 1, {"a": 2, "c": 2}) == 2  # a tie goes to the positive class first
    assert example_index(split, 1, {}) == 1  # no change anywhere: the first positive image


def test_the_worst_case_is_not_listed_as_a_planned_attack(tmp_path):
    """The worst case over attacks is a result, not an attack: the test plan and the threat model name only attacks."""
    from harness.report.load import load_report
    from harness.report.sections.limitations import threat_model
    from harness.report.sections.plan_summary import attacks

    run = write_synthetic_run(tmp_path / "run", n_test=30, examples=False, worst=True)
    report = load_report(run)
    assert report.attack_ids[0] == "any"  # the results tables lead with it
    assert [a["id"] for a in attacks(report)] == ["fgsm", "pgd_linf", "fmn_linf"]
    assert "(fgsm, pgd_linf, fmn_linf)" in threat_model(report) and "any" not in threat_model(report).split(")")[0]


def test_a_failed_bound_criterion_on_the_cover_stays_inside_the_page(tmp_path):
    """A real run's failed criterion (long id, one-sided bound with a clustered interval) once ran past the margin."""
    import json

    from report_layout import words_past_margins

    run = write_synthetic_run(tmp_path / "run", n_test=30, examples=False, seal=False)
    results = json.loads((run / "results.json").read_text())
    failed = next(c for c in results["criteria"] if not c["passed"])
    failed.update(judged_on="lower", bound_value=0.271, confidence=0.95,
                  interval="Wilson score, patient-clustered, design effect 1.04",
                  id="pgd_linf[eps=0.004]::lower(robust_accuracy)>=0.60")
    (run / "results.json").write_text(json.dumps(results))
    _, pdf = render_report(run)
    layout = read_layout(pdf, tmp_path / "pages")
    cover = pdftotext_page(pdf, 1)
    assert "design effect 1.04" in _one_line(cover) and "(60%)" in cover.replace(" ", "")
    assert not [w for w in words_past_margins(layout) if w.startswith("page 1")], words_past_margins(layout)


def pdftotext_page(pdf, page: int) -> str:  # noqa: ANN001
    """One page's text."""
    return subprocess.run([tool("pdftotext"), "-layout", "-f", str(page), "-l", str(page), str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout
