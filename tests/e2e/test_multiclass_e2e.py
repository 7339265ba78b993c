"""The shipped four-class brain-MRI spec end to end (reduced): per-class results with intervals, macro sensitivity,
criteria naming a class, and the report's per-class table."""

from __future__ import annotations

import re

import pytest
from report_layout import read_layout, words_past_margins
from support import REPO

from harness.plan.schema import load_plan
from harness.registry.manager import default_registry
from harness.report.context import build_context
from harness.report.load import load_report
from harness.report.render import render_html, render_report
from harness.run.runner import RunConfig, Runner

pytestmark = pytest.mark.slow  # trains a model


def test_the_four_class_spec_runs_end_to_end(tmp_path):
    plan = load_plan(REPO / "specs" / "brain_mri_4class.yaml",
                     ["dataset.n_patients=120", "model.epochs=2", "attacks.1.steps=3"])
    result = Runner(plan, default_registry(), RunConfig(out_root=tmp_path, cache_dir=tmp_path / "cache",
                                                     progress=False, echo=lambda m: None)).run()
    naive = result.raw["models"]["naive"]
    assert list(naive["classes"]) == ["no_tumour", "glioma", "meningioma", "pituitary"]
    assert len(naive["clean"]["confusion_matrix"]) == 4 and naive["clean"]["macro_sensitivity"] is not None
    for one in naive["classes"].values():
        assert "sensitivity" in one["clean"]["intervals"]
        assert all("robust_sensitivity" in p for p in one["attacks"]["pgd_linf"]["points"])
    ids = [c["id"] for c in result.raw["criteria"]]
    assert "class[glioma]::pgd_linf[eps=0.002]::robust_sensitivity>=0.30" in ids
    text = " ".join(re.sub(r"<[^>]+>", " ", render_html(build_context(load_report(result.run_dir)))).split())
    assert "Per class (one-vs-rest)" in text and "meningioma" in text
    # the per-class table follows the data set's class order and counts each class's own test images (results.json
    # stores `classes` with sorted keys, which once shifted every count by one row of the confusion matrix)
    table = text[text.index("naive: class test images"):]
    counts = {name: sum(row) for name, row in zip(naive["classes"], naive["clean"]["confusion_matrix"], strict=True)}
    starts = [table.index(f" {name} {counts[name]} ") for name in ("no_tumour", "glioma", "meningioma", "pituitary")]
    assert starts == sorted(starts), counts
    _, pdf = render_report(result.run_dir)
    layout = read_layout(pdf, tmp_path / "pages")
    assert not words_past_margins(layout)  # a four-class confusion matrix once ran past the right margin
