"""The cover: verdict, plan, models, data set and run identity, and the contents."""

from __future__ import annotations

import time
from typing import Any

from harness.report.inputs import ROLES, ReportInput
from harness.report.text import basename, short_hash, utc_text

TITLE = None


def build(report: ReportInput) -> dict[str, Any]:
    """The cover's identity table and verdict box."""
    run, manifest = report.run, report.manifest
    word, css = report.verdict_word()
    stopped = report.stop_description()
    if run.verdict is None:
        detail = f"{stopped}; no verdict was formed"
    else:
        detail = f"{run.verdict.n_passed} of {run.verdict.n_criteria} acceptance criteria passed" + (
            f"; then {stopped}" if stopped else "")
    models = []
    manifest_models = manifest.get("models") or {}
    for role in ROLES:
        info = manifest_models.get(role) or {}
        model = report.model(role)
        if not info and model is None:
            continue
        weights = (model.weights_sha256 if model else None) or info.get("weights_sha256")
        if role == "hardened":
            defence = run.defence
            what = f"defence {defence.plugin if defence else (report.resolved.get('defence') or {}).get('plugin', '?')}"
            if defence and defence.selected_round is not None:
                what += f", round {defence.selected_round}"
        else:
            what = " / ".join(str(v) for v in (info.get("plugin"), info.get("architecture")) if v) or "n/a"
        models.append({"role": role, "what": what, "weights": short_hash(weights), "weights_full": weights})
    plan = manifest.get("plan") or {}
    dataset = run.dataset
    return {
        "plan_name": run.plan_name or plan.get("name"),
        "plan_sha": short_hash(report.plan_sha256),
        "plan_source": basename(str(plan["source"])) if plan.get("source") else "n/a",
        "models": models,
        "dataset": dataset.name if dataset else report.manifest_dataset.get("name") or "n/a",
        "dataset_hash": short_hash(dataset.content_sha256 if dataset else None),
        "n_test": dataset.n_test if dataset else None,
        "run_date": utc_text(manifest.get("started_at")),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "harness_version": report.harness_version,
        "verdict_word": word, "verdict_css": css, "verdict_detail": detail, "status": run.status,
    }
