"""Data provenance: where the data came from, its content hash, counts per split and class, skipped files."""

from __future__ import annotations

from typing import Any

from harness.report.inputs import ReportInput
from harness.report.text import verbatim

TITLE = "Data provenance"
SPLIT_ORDER = ("train", "val", "test")
SHOWN_ELSEWHERE = {"counts", "patients", "content_sha256", "source", "split_method", "skipped", "n_samples",
                   "geometry"}


def count_rows(counts: dict[str, Any], classes: list[str], patients: dict[str, Any]) -> list[dict[str, Any]]:
    """Images per split and class, the split's total and its patients."""
    splits = [s for s in SPLIT_ORDER if s in counts] + [s for s in counts if s not in SPLIT_ORDER]
    rows = []
    for split in splits:
        per_class = counts.get(split) or {}
        if isinstance(per_class, dict):
            rows.append({"split": split, "cells": [per_class.get(c, 0) for c in classes],
                         "total": sum(v for v in per_class.values() if isinstance(v, int)),
                         "patients": patients.get(split, "–")})
    return rows


def build(report: ReportInput) -> dict[str, Any]:
    """What the data set plugin reported about its data (manifest), nothing about individual patients."""
    dataset = report.manifest_dataset
    prov = dataset.get("provenance") or {}
    counts = prov.get("counts") or {}
    classes = list(report.class_names)
    for split_counts in counts.values():
        if isinstance(split_counts, dict):
            classes += [c for c in split_counts if c not in classes]
    patients = prov.get("patients") if isinstance(prov.get("patients"), dict) else {}
    source = prov.get("source")
    sources = [verbatim(s) for s in source] if isinstance(source, list) else \
        ([verbatim(source)] if source is not None else [])
    skipped = prov.get("skipped") or []
    if not isinstance(skipped, list):
        skipped = [skipped]
    summary = report.run.dataset
    leakage = dataset.get("leakage") or {}
    return {
        "synthetic_ids": dataset.get("identifiers") == "synthetic",
        "leakage": leakage.get("summary") or (f"none found ({leakage['method']})" if leakage.get("method") else
                                              "not recorded"),
        "training_data": (leakage.get("training_data") or {}).get("summary"),
        "training_examples": [verbatim(e) for e in (leakage.get("training_data") or {}).get("examples") or []],
        "plugin": dataset.get("plugin", "n/a"),
        "name": dataset.get("name", summary.name if summary else "n/a"),
        "classes": classes, "positive": report.class_name(dataset.get("positive_class", report.positive_class)),
        "image_shape": " × ".join(map(str, dataset.get("image_shape") or [])) or "n/a",
        "shape_axes": "C × D × H × W" if len(dataset.get("image_shape") or []) == 4 else "C × H × W",
        "voxel_spacing": (" × ".join(f"{v:g}" for v in dataset["voxel_spacing_mm"]) + " mm (D × H × W)"
                          if dataset.get("voxel_spacing_mm") else None),
        "native": report.native_note(), "sources": sources,
        "content_sha256": prov.get("content_sha256") or (summary.content_sha256 if summary else None) or "n/a",
        "count_rows": count_rows(counts, classes, patients), "has_patients": bool(patients),
        "n_samples": prov.get("n_samples"),
        "split_method": prov.get("split_method") or "not stated by the data set plugin",
        "skipped": [verbatim(s) if not isinstance(s, dict) else "; ".join(f"{k}: {verbatim(v)}" for k, v in s.items())
                    for s in skipped],
        "other": [(k, verbatim(v)) for k, v in prov.items() if k not in SHOWN_ELSEWHERE],
        "geometry": (prov.get("geometry") or {}).get("summary") if isinstance(prov.get("geometry"), dict) else None,
        "declared_safe": [verbatim(a) for a in (report.manifest.extra.get("statistics") or {}).get(
            "declared_not_identifiers") or []],
    }
