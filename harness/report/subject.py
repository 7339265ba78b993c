"""The device under test as the report states it: the plan's `subject:` (harness.plan.subject), what is missing,
and whether the tested model is the harness's own demonstration model."""

from __future__ import annotations

from typing import Any

from harness.plan.subject import SUBJECT_KEYS, Subject
from harness.report.inputs import ReportInput

NOT_STATED = "not stated"
DEMONSTRATION = "demonstration model: a network trained by the harness from this plan, not a product"
LABELS = {"name": "Product", "version": "Version", "manufacturer": "Manufacturer"}


def subject_of(report: ReportInput) -> Subject | None:
    """The subject results.json records, else the resolved plan's `subject:` (None when neither states one)."""
    recorded = report.run.document.plan.subject
    if recorded:
        return Subject.from_json(dict(recorded))
    raw = report.resolved.get("subject")
    try:
        return Subject.from_json(raw) if isinstance(raw, dict) else None
    except (TypeError, ValueError):
        return None


def trained_by_harness(report: ReportInput) -> bool:
    """Whether the naive model was trained by the harness from the plan (the built-in demonstration model)."""
    return report.manifest.model("naive").get("source") == "trained"


def synthetic_data(report: ReportInput) -> bool:
    """Whether the data set plugin declares its images generated (synthetic ids)."""
    return report.manifest_dataset.get("identifiers") == "synthetic"


def device_under_test(report: ReportInput) -> dict[str, Any]:
    """The title block: product, version and manufacturer (each 'not stated' when missing), the intended use,
    indications and contraindications, and the demonstration-model statement when it applies."""
    subject = subject_of(report) or Subject(intended_use=str(report.resolved.get("intended_use") or "").strip())
    demonstration = trained_by_harness(report)
    rows = [{"what": LABELS[key], "value": getattr(subject, key) or NOT_STATED, "missing": not getattr(subject, key)}
            for key in ("name", "version", "manufacturer")]
    title = " ".join(part for part in (subject.name, subject.version and f"version {subject.version}") if part)
    return {
        "title": title or None, "name": subject.name or None, "version": subject.version or None,
        "manufacturer": subject.manufacturer or None, "rows": rows,
        "stated": any(getattr(subject, k) for k in SUBJECT_KEYS if k != "intended_use"),
        "demonstration": DEMONSTRATION if demonstration else None,
        "intended_use": subject.intended_use or None,
        "indications": list(subject.indications), "contraindications": list(subject.contraindications),
        "synthetic_claim": bool(subject.intended_use) and synthetic_data(report),
    }
