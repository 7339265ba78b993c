"""Build the report's template context from a run directory's files: plain strings, rows and figures.

Everything shown is read from results.json, manifest.json, samples.csv and examples_*.npz; nothing is re-run.
Free text from the plan stays plain text here and is escaped by the template engine.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from harness.report import plots
from harness.report.load import Examples, RunData, parse_float

ROLES = ("naive", "hardened")
DEFAULT_CUTOFF = 0.004
VERSION_ORDER = ("python", "harness", "torch", "foolbox", "eagerpy", "numpy", "scipy", "pydicom", "monai",
                 "scikit-learn")
SPLIT_ORDER = ("train", "val", "test")
PROVENANCE_SHOWN_ELSEWHERE = {"counts", "patients", "content_sha256", "source", "split_method", "skipped",
                              "n_samples"}
MODEL_FIELDS = (("plugin", "model plugin"), ("architecture", "architecture"), ("source", "source"),
                ("n_parameters", "parameters"), ("selected_epoch", "selected epoch"),
                ("training_seconds", "training time (s)"), ("cache_hit", "loaded from cache"),
                ("weights_sha256", "weights sha256"), ("state_dict_sha256", "state dict sha256"))
MAX_TRAINING_LOG_ROWS = 40


# ---------------------------------------------------------------------------------------------- formatting


def pct(value: float | None, digits: int = 1) -> str:
    """0.269 → '26.9%'; None → 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.{digits}f}%"


def num(value: float | None, digits: int = 3) -> str:
    """A rate or score with fixed decimals; None → 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def eps_text(value: float | None) -> str:
    """An epsilon as written in a plan (0.004, 1e-05)."""
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "not found"
    return f"{value:.4g}"


def verbatim(value: Any) -> str:
    """A plan or parameter value as it would be written: true/false/null, numbers exactly, JSON for structures."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def short_hash(value: str | None, n: int = 12) -> str:
    """The first `n` hex digits of a sha256 (or 'n/a')."""
    return value[:n] if value else "n/a"


def basename(path: str) -> str:
    """The last component of a POSIX or Windows path."""
    name = PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name
    return name or path


def reduce_command(argv: list[Any] | None) -> str:
    """The command line with every path reduced to its file name (no directories of the machine leak)."""
    if not argv:
        return "n/a"
    out = []
    for arg in map(str, argv):
        if "=" in arg and ("/" in arg or "\\" in arg):
            key, _, value = arg.partition("=")
            out.append(f"{key}={basename(value)}" if ("/" in value or "\\" in value) else arg)
        elif "/" in arg or "\\" in arg:
            out.append(basename(arg))
        else:
            out.append(arg)
    return " ".join(out)


def utc_text(stamp: str | None) -> str:
    """'2026-11-25T19:42:57Z' → '2026-11-25 19:42:57 UTC'."""
    if not stamp:
        return "n/a"
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})Z?", stamp)
    return f"{match.group(1)} {match.group(2)} UTC" if match else stamp


def closest(values: list[float], target: float) -> float | None:
    """The value closest to `target` (smaller on a tie)."""
    return min(sorted(values), key=lambda v: abs(v - target)) if values else None


# ---------------------------------------------------------------------------------------------- context


class ContextBuilder:
    """Turns RunData into the dictionary the Jinja2 template renders."""

    def __init__(self, run: RunData) -> None:
        self.run = run
        self.results = run.results
        self.manifest = run.manifest
        self.resolved = (self.manifest.get("plan") or {}).get("resolved") or {}
        self.dataset = self.results.get("dataset") or {}
        self.models = {role: self.results.get("models", {}).get(role) for role in ROLES
                       if self.results.get("models", {}).get(role)}
        report_settings = self.resolved.get("report") or {}
        cutoff = report_settings.get("susceptibility_cutoff", DEFAULT_CUTOFF)
        self.cutoff = float(cutoff) if isinstance(cutoff, (int, float)) and cutoff > 0 else DEFAULT_CUTOFF
        self.class_names = list(self.dataset.get("class_names") or
                                (self.manifest.get("dataset") or {}).get("class_names") or [])
        self.native = self.dataset.get("native_units") or (self.manifest.get("dataset") or {}).get("native_units")
        self.attack_ids = self._attack_ids()

    # -- helpers -------------------------------------------------------------------------------------------
    def _attack_ids(self) -> list[str]:
        """Attack ids in plan order, then any the results hold that the plan does not list."""
        ids: list[str] = []
        for item in self.resolved.get("attacks") or []:
            if isinstance(item, dict):
                attack_id = item.get("id", item.get("attack"))
                if isinstance(attack_id, str) and attack_id not in ids:
                    ids.append(attack_id)
        for model in self.models.values():
            for attack_id in model.get("attacks", {}):
                if attack_id not in ids:
                    ids.append(attack_id)
        return ids

    def attack_result(self, role: str, attack_id: str) -> dict[str, Any] | None:
        return (self.models.get(role) or {}).get("attacks", {}).get(attack_id)

    def attack_info(self, attack_id: str) -> dict[str, Any]:
        for role in ROLES:
            found = self.attack_result(role, attack_id)
            if found:
                return found
        return {}

    def native_text(self, eps: float, point: dict[str, Any] | None = None) -> str | None:
        if point and point.get("epsilon_native"):
            return point["epsilon_native"]
        if self.native and self.native.get("per_unit"):
            return f"{eps * float(self.native['per_unit']):.3g} {self.native.get('unit', '')}".strip()
        return None

    def class_name(self, index: Any) -> str:
        try:
            i = int(index)
        except (TypeError, ValueError):
            return str(index)
        return self.class_names[i] if 0 <= i < len(self.class_names) else f"class {i}"

    def attack_label(self, attack_id: str) -> str:
        plugin = self.attack_info(attack_id).get("attack")
        return attack_id if not plugin or plugin == attack_id else f"{attack_id} ({plugin})"

    def point_near_cutoff(self, role: str, attack_id: str) -> dict[str, Any] | None:
        points = (self.attack_result(role, attack_id) or {}).get("points") or []
        eps = closest([p["epsilon"] for p in points], self.cutoff)
        return next((p for p in points if p["epsilon"] == eps), None)

    # -- sections ------------------------------------------------------------------------------------------
    def build(self) -> dict[str, Any]:
        context = {
            "title": self.results.get("plan", {}).get("name") or self.resolved.get("name") or "harness run",
            "cover": self.cover(),
            "summary": self.summary(),
            "scope": {"intended_use": (self.resolved.get("intended_use") or "").strip(),
                      "description": (self.resolved.get("description") or "").strip()},
            "test_plan": self.test_plan(),
            "criteria": self.criteria(),
            "results": self.results_section(),
            "examples": self.examples(),
            "provenance": self.provenance(),
            "environment": self.environment(),
            "cutoff": eps_text(self.cutoff),
            "cutoff_native": self.native_text(self.cutoff),
            "plan_yaml": self.run.plan_yaml,
        }
        context["warnings"] = self.all_warnings()
        return context

    def cover(self) -> dict[str, Any]:
        verdict = self.results.get("verdict")
        status = self.results.get("status", "unknown")
        if verdict is None:
            word, css = "NO VERDICT", "none"
            detail = f"the run did not complete (status: {status}); no verdict was formed"
        else:
            word, css = ("PASS", "pass") if verdict.get("passed") else ("FAIL", "fail")
            detail = f"{verdict.get('n_passed', 0)} of {verdict.get('n_criteria', 0)} acceptance criteria passed"
        models = []
        manifest_models = self.manifest.get("models") or {}
        for role in ROLES:
            info = manifest_models.get(role) or {}
            weights = (self.models.get(role) or {}).get("weights_sha256") or info.get("weights_sha256")
            if not info and role not in self.models:
                continue
            if role == "hardened":
                defence = self.results.get("defence") or {}
                what = f"defence {defence.get('plugin') or (self.resolved.get('defence') or {}).get('plugin', '?')}"
                if defence.get("selected_round") is not None:
                    what += f", round {defence['selected_round']}"
            else:
                what = " / ".join(str(v) for v in (info.get("plugin"), info.get("architecture")) if v) or "n/a"
            models.append({"role": role, "what": what, "weights": short_hash(weights), "weights_full": weights})
        plan = self.manifest.get("plan") or {}
        return {
            "plan_name": self.results.get("plan", {}).get("name") or plan.get("name"),
            "plan_sha": short_hash(self.results.get("plan", {}).get("sha256") or plan.get("sha256")),
            "plan_source": basename(str(plan["source"])) if plan.get("source") else "n/a",
            "models": models,
            "dataset": self.dataset.get("name") or (self.manifest.get("dataset") or {}).get("name") or "n/a",
            "dataset_hash": short_hash(self.dataset.get("content_sha256")),
            "n_test": self.dataset.get("n_test"),
            "run_date": utc_text(self.manifest.get("started_at")),
            "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "harness_version": self.manifest.get("harness_version") or "n/a",
            "verdict_word": word, "verdict_css": css, "verdict_detail": detail, "status": status,
        }

    def summary(self) -> list[str]:
        sentences = []
        naive = self.models.get("naive")
        hardened = self.models.get("hardened")
        dataset = self.dataset.get("name", "the data set")
        if naive:
            clean = naive.get("clean", {})
            n_test = clean.get("n", self.dataset.get("n_test"))
            text = (f"On {n_test} test images of {dataset}, the naive model classifies {pct(clean.get('accuracy'))} "
                    f"correctly without attack (sensitivity {pct(clean.get('sensitivity'))}, specificity "
                    f"{pct(clean.get('specificity'))})")
            if hardened:
                hc = hardened.get("clean", {})
                text += (f"; the hardened model classifies {pct(hc.get('accuracy'))} correctly (sensitivity "
                         f"{pct(hc.get('sensitivity'))}, specificity {pct(hc.get('specificity'))})")
            sentences.append(text + ".")
            parts, eps_used = [], set()
            hardened_parts = []
            for attack_id in self.attack_ids:
                point = self.point_near_cutoff("naive", attack_id)
                if point is None:
                    continue
                eps_used.add(point["epsilon"])
                parts.append((attack_id, point))
                hp = self.point_near_cutoff("hardened", attack_id) if hardened else None
                hardened_parts.append(hp)
            if parts:
                single = len(eps_used) == 1
                eps0 = next(iter(eps_used))
                native = self.native_text(eps0, parts[0][1])
                lead = f"At ε = {eps_text(eps0)}" + (f" ({native})" if native else "") if single else \
                    "At the grid ε closest to the cutoff"
                if single and abs(eps0 - self.cutoff) > 1e-12:
                    lead += f", the grid value closest to the {eps_text(self.cutoff)} cutoff"
                lead += ","

                def item(attack_id: str, point: dict[str, Any]) -> str:
                    where = "" if single else f" at ε = {eps_text(point['epsilon'])}"
                    return f"{pct(point.get('robust_accuracy'))} under {attack_id}{where}"

                text = (f"{lead} the naive model's accuracy is " + _join([item(a, p) for a, p in parts])
                        + f", against {pct(naive.get('clean', {}).get('accuracy'))} without attack")
                if hardened and any(hardened_parts):
                    plugin = (self.results.get("defence") or {}).get("plugin") or "the defence"
                    items = [item(a, hp) for (a, _), hp in zip(parts, hardened_parts, strict=True) if hp]
                    text += (f"; the model hardened by {plugin} reaches " + _join(items)
                             + f" ({pct(hardened.get('clean', {}).get('accuracy'))} without attack)")
                sentences.append(text + ".")
        verdict = self.results.get("verdict")
        if verdict is None:
            sentences.append(f"The run did not complete (status: {self.results.get('status', 'unknown')}), so no "
                             "verdict was formed; the numbers below are those computed before it stopped.")
        elif verdict.get("n_criteria", 0) == 0:
            sentences.append("The plan defines no acceptance criteria, so the verdict PASS is vacuous.")
        else:
            word = "PASS" if verdict.get("passed") else "FAIL"
            sentences.append(f"{verdict.get('n_passed')} of {verdict.get('n_criteria')} pre-registered acceptance "
                             f"criteria passed: the overall verdict is {word}.")
        return sentences

    def test_plan(self) -> dict[str, Any]:
        attacks = []
        resolved_attacks = {(a.get("id") or a.get("attack")): a for a in self.resolved.get("attacks") or []
                            if isinstance(a, dict)}
        for attack_id in self.attack_ids:
            info = self.attack_info(attack_id)
            raw = resolved_attacks.get(attack_id, {})
            params = info.get("params")
            if params is None:  # not run yet: show what the plan says
                params = {k: v for k, v in raw.items() if k not in ("attack", "id", "epsilons")}
            points = info.get("points") or []
            eps_list = [p["epsilon"] for p in points] or raw.get("epsilons") or self.resolved.get("epsilons") or []
            grid = [(eps_text(e), self.native_text(e)) for e in eps_list]
            default_grid = _same_grid(eps_list, self.resolved.get("epsilons") or [])
            kind = info.get("kind", "n/a")
            attacks.append({
                "id": attack_id, "attack": info.get("attack") or raw.get("attack") or "n/a",
                "norm": info.get("norm", "n/a"), "kind": kind,
                "kind_text": {"fixed_epsilon": "fixed ε (attacks within each ε of the grid)",
                              "minimal": "minimal perturbation (smallest flipping ε per image; the grid is read "
                                         "off it)"}.get(kind, kind),
                "params": [(k, verbatim(v)) for k, v in params.items()],
                "grid": grid, "default_grid": default_grid,
            })
        defence = None
        section = self.results.get("defence")
        plan_defence = self.resolved.get("defence")
        if section or plan_defence:
            section = section or {}
            params = section.get("params")
            if params is None and isinstance(plan_defence, dict):
                params = {k: v for k, v in plan_defence.items() if k != "plugin"}
            log = section.get("training_log") or []
            defence = {
                "plugin": section.get("plugin") or (plan_defence or {}).get("plugin", "n/a"),
                "params": [(k, verbatim(v)) for k, v in (params or {}).items()],
                "selected_round": section.get("selected_round"),
                "weights": section.get("selected_weights_sha256"),
                "log": [{"round": r.get("round"), "epsilon": eps_text(r.get("epsilon")),
                         "loss": num(r.get("loss"), 4), "train_accuracy": pct(r.get("train_accuracy")),
                         "val_clean": pct(r.get("val_clean_accuracy")),
                         "val_robust": pct(r.get("val_robust_accuracy")),
                         "seconds": num(r.get("seconds"), 1),
                         "selected": r.get("round") == section.get("selected_round")} for r in log],
            }
        general = [("seed", verbatim(self.resolved.get("seed", "n/a"))),
                   ("device requested", verbatim(self.resolved.get("device", "auto"))),
                   ("batch size", verbatim(self.resolved.get("batch_size", "n/a"))),
                   ("default ε grid", ", ".join(f"{eps_text(e)} = {self.native_text(e)}" if self.native_text(e)
                                               else eps_text(e) for e in self.resolved.get("epsilons") or [])),
                   ("susceptibility cutoff", eps_text(self.cutoff)),
                   ("examples per model", verbatim((self.resolved.get("report") or {}).get("n_examples", 3)))]
        overrides = (self.manifest.get("plan") or {}).get("overrides") or []
        return {"attacks": attacks, "defence": defence, "general": general, "overrides": overrides,
                "has_l2": any(a["norm"] == "l2" for a in attacks),
                "dataset_params": _mapping_rows(self.resolved.get("dataset")),
                "model_params": _mapping_rows(self.resolved.get("model")),
                "models": self.model_rows(),
                "native_note": self._native_note()}

    def _native_note(self) -> str | None:
        if not self.native:
            return None
        note = f"1.0 on [0,1] pixels = {self.native.get('per_unit'):g} {self.native.get('unit', '')}".strip()
        if self.native.get("note"):
            note += f" ({self.native['note']})"
        return note

    def model_rows(self) -> list[dict[str, Any]]:
        out = []
        models = self.manifest.get("models") or {}
        for role in sorted(models, key=lambda r: (ROLES.index(r) if r in ROLES else len(ROLES), r)):
            info = models[role]
            if not isinstance(info, dict):
                continue
            rows = [(label, verbatim(info[key])) for key, label in MODEL_FIELDS if info.get(key) is not None]
            for key in ("weights_path", "path"):
                if isinstance(info.get(key), str):
                    rows.append(("weights file", basename(info[key])))
            rows += model_contract_rows(info)
            log = info.get("training_log") or []
            table = []
            if log and isinstance(log[0], dict):
                columns = [k for k in log[0] if isinstance(log[0][k], (int, float)) or log[0][k] is None]
                for entry in log[:MAX_TRAINING_LOG_ROWS]:
                    table.append([_cell(entry.get(c)) for c in columns])
                log_columns = columns
            else:
                log_columns = []
            out.append({"role": role, "rows": rows, "training": _mapping_rows(info.get("training")),
                        "log_columns": log_columns, "log": table,
                        "log_truncated": max(0, len(log) - MAX_TRAINING_LOG_ROWS)})
        return out

    def criteria(self) -> list[dict[str, Any]]:
        rows = []
        for entry in self.results.get("criteria") or []:
            metric = entry.get("metric", "")
            what = metric
            if entry.get("attack"):
                what += f" under {entry['attack']}"
            if entry.get("epsilon") is not None:
                native = self.native_text(entry["epsilon"])
                what += f" at ε = {eps_text(entry['epsilon'])}" + (f" ({native})" if native else "")
            model = entry.get("model", "naive")
            model_text = "hardened − naive" if model == "change" else model
            op = {">=": "≥", "<=": "≤"}.get(entry.get("op"), entry.get("op", ""))
            measured = entry.get("measured")
            if measured is None:
                verdict_word, css = "NOT MEASURED", "fail"
            else:
                verdict_word, css = ("PASS", "pass") if entry.get("passed") else ("FAIL", "fail")
            rows.append({"id": entry.get("id", ""), "what": what,
                         "model": model_text, "description": (entry.get("description") or "").strip(),
                         "threshold": f"{op} {_metric_value(metric, entry.get('threshold'))}",
                         "measured": _metric_value(metric, measured), "note": entry.get("note"),
                         "verdict": verdict_word, "css": css})
        return rows

    def results_section(self) -> dict[str, Any]:
        roles = [role for role in ROLES if role in self.models]
        clean_rows = []
        for role in roles:
            c = self.models[role].get("clean", {})
            clean_rows.append({"role": role, "n": c.get("n", "n/a"), "accuracy": pct(c.get("accuracy")),
                               "sensitivity": pct(c.get("sensitivity")), "specificity": pct(c.get("specificity")),
                               "auc": num(c.get("roc_auc")), "confusion": c.get("confusion_matrix")})
        attacks = []
        minimal = []
        for attack_id in self.attack_ids:
            info = self.attack_info(attack_id)
            by_role = {role: {p["epsilon"]: p for p in (self.attack_result(role, attack_id) or {}).get("points", [])}
                       for role in roles}
            epsilons = sorted({eps for points in by_role.values() for eps in points})
            rows = []
            for eps in epsilons:
                any_point = next(points[eps] for points in by_role.values() if eps in points)
                cells = []
                for role in roles:
                    p = by_role[role].get(eps)
                    cells.append({"acc": pct(p.get("robust_accuracy")) if p else "–",
                                  "sens": pct(p.get("robust_sensitivity")) if p else "–",
                                  "spec": pct(p.get("robust_specificity")) if p else "–",
                                  "asr": pct(p.get("attack_success_rate")) if p else "–",
                                  "viol": p.get("bound_violations", 0) if p else 0})
                rows.append({"eps": eps_text(eps), "native": self.native_text(eps, any_point) or "–",
                             "cells": cells, "violations": sum(c["viol"] for c in cells),
                             "at_cutoff": abs(eps - self.cutoff) <= 1e-12})
            curves = [plots.Curve(role, sorted(by_role[role]),
                                  [by_role[role][e].get("robust_accuracy") for e in sorted(by_role[role])],
                                  self.models[role].get("clean", {}).get("accuracy"))
                      for role in roles if by_role[role]]
            plot = None
            if curves:
                plot = plots.data_uri(plots.accuracy_plot(
                    attack_id, info.get("norm", "linf"), curves, self.cutoff,
                    float(self.native["per_unit"]) if self.native and self.native.get("per_unit") else None,
                    self.native.get("unit") if self.native else None))
            attacks.append({"id": attack_id, "label": self.attack_label(attack_id), "norm": info.get("norm"),
                            "kind": info.get("kind"), "plot": plot, "rows": rows, "roles": roles,
                            "has_violations": any(r["violations"] for r in rows)})
            if info.get("kind") == "minimal":
                minimal.append(self.minimal_section(attack_id, info, roles))
        return {"roles": roles, "clean": clean_rows, "class_names": self.class_names, "attacks": attacks,
                "minimal": minimal, "susceptibility": self.susceptibility(roles), "indicators": self.indicators(roles),
                "positive_class": self.class_name(self.dataset.get("positive_class", 1))}

    def indicators(self, roles: list[str]) -> list[dict[str, Any]]:
        """Attack-failure indicators per model: each check with its verdict, value and threshold."""
        out = []
        for role in roles:
            section = (self.models.get(role) or {}).get("indicators")
            if not section:
                continue
            checks = [{"id": c.get("id"), "description": c.get("description", ""), "passed": bool(c.get("passed")),
                       "value": _cell(c.get("value")), "threshold": _cell(c.get("threshold")),
                       "detail": c.get("detail") or ""} for c in section.get("checks", [])]
            out.append({"role": role, "credible": bool(section.get("credible")), "checks": checks,
                        "subset": section.get("subset", "")})
        return out

    def _sample_rows(self, role: str, attack_id: str) -> list[dict[str, str]]:
        return [row for row in self.run.samples if row.get("model") == role and row.get("attack") == attack_id]

    def minimal_section(self, attack_id: str, info: dict[str, Any], roles: list[str]) -> dict[str, Any]:
        table = []
        values: dict[str, np.ndarray] = {}
        captions = []
        for role in roles:
            summary = (self.attack_result(role, attack_id) or {}).get("min_epsilon")
            if summary:
                table.append({"role": role, "n": summary.get("n", "n/a"),
                              "not_found": summary.get("n_not_found", "n/a"),
                              **{q: eps_text(summary.get(q)) for q in ("p10", "p25", "p50", "p75", "p90")},
                              "mean": eps_text(summary.get("mean_found"))})
            rows = self._sample_rows(role, attack_id)
            parsed = [parse_float(r.get("min_epsilon")) for r in rows]
            if rows:
                array = np.asarray([v for v in parsed if v is not None], dtype=np.float64)
                values[role] = array
                zero = int((array == 0).sum())
                missing = int(np.isinf(array).sum())
                captions.append(f"{role}: {int((np.isfinite(array) & (array > 0)).sum())} images shown; {zero} "
                                f"misclassified without attack (ε = 0) and {missing} where the attack found no "
                                "adversarial are not on the log axis")
        histogram = None
        if values:
            png = plots.min_epsilon_histogram(attack_id, info.get("norm", "linf"), values, self.cutoff)
            histogram = plots.data_uri(png) if png else None
        return {"id": attack_id, "table": table, "histogram": histogram, "captions": captions}

    def susceptibility(self, roles: list[str]) -> dict[str, Any]:
        """The study's analysis: drop the images whose minimal flipping ε is below the cutoff; what is left?"""
        minimal_ids = [a for a in self.attack_ids if self.attack_info(a).get("kind") == "minimal"]
        fixed_ids = [a for a in self.attack_ids if self.attack_info(a).get("kind") == "fixed_epsilon"]
        rows = []
        fixed_columns = []
        header = set(self.run.samples[0]) if self.run.samples else set()
        for fixed in fixed_ids:
            point = self.point_near_cutoff("naive", fixed) or self.point_near_cutoff("hardened", fixed)
            column = f"success@{point['epsilon']:g}" if point else None
            if column in header:
                fixed_columns.append({"attack": fixed, "eps": eps_text(point["epsilon"]), "column": column})
        for role in roles:
            for attack_id in minimal_ids:
                rows_m = self._sample_rows(role, attack_id)
                if not rows_m:
                    continue
                min_eps = {r["sample_id"]: parse_float(r.get("min_epsilon")) for r in rows_m}
                correct = {r["sample_id"]: r.get("clean_correct") == "1" for r in rows_m}
                labels = {r["sample_id"]: r.get("label") for r in rows_m}
                removed = {s for s, v in min_eps.items() if v is not None and v < self.cutoff}
                kept = [s for s in min_eps if s not in removed]
                n = len(min_eps)
                wrong_removed = sum(1 for s in removed if not correct[s])
                positive = str(self.dataset.get("positive_class", 1))
                entry = {
                    "role": role, "attack": attack_id, "n": n, "removed": len(removed),
                    "removed_wrong": wrong_removed, "removed_flipped": len(removed) - wrong_removed,
                    "removed_positive": sum(1 for s in removed if labels[s] == positive),
                    "kept": len(kept),
                    "measures": [{"what": "accuracy without attack",
                                  "all": pct(_mean([correct[s] for s in min_eps])),
                                  "kept": pct(_mean([correct[s] for s in kept]))}],
                }
                for column in fixed_columns:
                    rows_f = {r["sample_id"]: r for r in self._sample_rows(role, column["attack"])}
                    success = {s: rows_f[s].get(column["column"]) == "1" for s in rows_f
                               if rows_f[s].get(column["column"]) not in (None, "")}
                    all_acc = _mean([not v for v in success.values()])
                    kept_acc = _mean([not success[s] for s in kept if s in success])
                    entry["measures"].append({"what": f"accuracy under {column['attack']} at ε = {column['eps']}",
                                              "all": pct(all_acc), "kept": pct(kept_acc)})
                rows.append(entry)
        return {"rows": rows, "fixed_columns": fixed_columns, "has_minimal": bool(minimal_ids),
                "cutoff": eps_text(self.cutoff), "cutoff_native": self.native_text(self.cutoff),
                "positive": self.class_name(self.dataset.get("positive_class", 1))}

    def examples(self) -> list[dict[str, Any]]:
        out = []
        for role in ROLES:
            ex: Examples | None = self.run.examples.get(role)
            if ex is None:
                continue
            delta = ex.adversarial - ex.clean
            largest = float(np.abs(delta).max()) if delta.size else 0.0
            scale_to = max(ex.epsilon, largest) if ex.epsilon > 0 else largest
            factor = _nice_factor(0.5 / scale_to) if scale_to > 0 else 1.0
            items = []
            for i in range(len(ex.labels)):
                perturbation = np.clip(0.5 + factor * delta[i], 0.0, 1.0)
                flipped = int(ex.adv_pred[i]) != int(ex.labels[i]) and int(ex.clean_pred[i]) == int(ex.labels[i])
                items.append({
                    "sample_id": ex.sample_ids[i] if i < len(ex.sample_ids) else f"#{i}",
                    "label": self.class_name(ex.labels[i]),
                    "clean_uri": plots.data_uri(plots.image_png(ex.clean[i])),
                    "adv_uri": plots.data_uri(plots.image_png(ex.adversarial[i])),
                    "pert_uri": plots.data_uri(plots.image_png(perturbation)),
                    "clean_pred": self.class_name(ex.clean_pred[i]), "clean_conf": pct(float(ex.clean_conf[i])),
                    "adv_pred": self.class_name(ex.adv_pred[i]), "adv_conf": pct(float(ex.adv_conf[i])),
                    "linf": eps_text(float(np.abs(delta[i]).max())),
                    "flipped": flipped,
                    "in_bound": bool(ex.within_bound[i]) if ex.within_bound is not None else True,
                })
            out.append({"role": role, "attack": ex.attack_id, "plugin": ex.attack, "eps": eps_text(ex.epsilon),
                        "native": self.native_text(ex.epsilon), "factor": f"{factor:g}", "shown": items,
                        "n_flipped": sum(1 for it in items if it["flipped"])})
        return out

    def provenance(self) -> dict[str, Any]:
        dataset = self.manifest.get("dataset") or {}
        prov = dataset.get("provenance") or {}
        counts = prov.get("counts") or {}
        classes = list(self.class_names)
        for split_counts in counts.values():
            if isinstance(split_counts, dict):
                classes += [c for c in split_counts if c not in classes]
        splits = [s for s in SPLIT_ORDER if s in counts] + [s for s in counts if s not in SPLIT_ORDER]
        patients = prov.get("patients") if isinstance(prov.get("patients"), dict) else {}
        count_rows = []
        for split in splits:
            per_class = counts.get(split) or {}
            if not isinstance(per_class, dict):
                continue
            count_rows.append({"split": split, "cells": [per_class.get(c, 0) for c in classes],
                               "total": sum(v for v in per_class.values() if isinstance(v, int)),
                               "patients": patients.get(split, "–")})
        source = prov.get("source")
        sources = [verbatim(s) for s in source] if isinstance(source, list) else \
            ([verbatim(source)] if source is not None else [])
        skipped = prov.get("skipped") or []
        if not isinstance(skipped, list):
            skipped = [skipped]
        return {
            "plugin": dataset.get("plugin", "n/a"), "name": dataset.get("name", self.dataset.get("name", "n/a")),
            "classes": classes, "positive": self.class_name(dataset.get("positive_class",
                                                                         self.dataset.get("positive_class", 1))),
            "image_shape": " × ".join(map(str, dataset.get("image_shape") or [])) or "n/a",
            "native": self._native_note(), "sources": sources,
            "content_sha256": prov.get("content_sha256") or self.dataset.get("content_sha256") or "n/a",
            "count_rows": count_rows, "has_patients": bool(patients), "n_samples": prov.get("n_samples"),
            "split_method": prov.get("split_method") or "not stated by the data set plugin",
            "skipped": [verbatim(s) if not isinstance(s, dict) else
                        "; ".join(f"{k}: {verbatim(v)}" for k, v in s.items()) for s in skipped],
            "other": [(k, verbatim(v)) for k, v in prov.items() if k not in PROVENANCE_SHOWN_ELSEWHERE],
        }

    def environment(self) -> dict[str, Any]:
        versions = self.manifest.get("versions") or {}
        ordered = [k for k in VERSION_ORDER if k in versions] + sorted(k for k in versions if k not in VERSION_ORDER)
        device = self.manifest.get("device") or {}
        device_rows = [(label, verbatim(device[key])) for key, label in (
            ("type", "device type"), ("name", "device"), ("gpu_name", "GPU"), ("cuda", "CUDA"),
            ("cudnn", "cuDNN"), ("cpu", "CPU"), ("torch_threads", "torch threads")) if device.get(key) is not None]
        if device.get("type") != "cuda":
            device_rows.append(("CUDA", "not used (CPU run)"))
        platform = self.manifest.get("platform") or {}
        platform_rows = [(label, verbatim(platform[key])) for key, label in (
            ("system", "operating system"), ("release", "kernel release"), ("machine", "machine"),
            ("python_implementation", "Python implementation")) if platform.get(key) is not None]
        determinism = [(k.replace("_", " "), verbatim(v)) for k, v in (self.manifest.get("determinism") or {}).items()]
        seeds = [(k.replace("_", " "), verbatim(v)) for k, v in (self.manifest.get("seeds") or {}).items()]
        timings = self.manifest.get("timings_seconds") or {}
        plan = self.manifest.get("plan") or {}
        return {
            "versions": [(k, versions[k] if versions[k] is not None else "not installed") for k in ordered],
            "device": device_rows, "platform": platform_rows, "determinism": determinism, "seeds": seeds,
            "plugins": [p for p in self.manifest.get("plugins") or [] if isinstance(p, dict)],
            "timings": [(k, f"{v:.2f}") for k, v in timings.items() if isinstance(v, (int, float))],
            "total_time": f"{sum(v for v in timings.values() if isinstance(v, (int, float))):.2f}",
            "started": utc_text(self.manifest.get("started_at")),
            "command": reduce_command(self.manifest.get("command")),
            "plan_source": basename(str(plan["source"])) if plan.get("source") else "n/a",
            "plan_sha": plan.get("sha256") or self.results.get("plan", {}).get("sha256") or "n/a",
            "overrides": plan.get("overrides") or [],
        }

    def all_warnings(self) -> list[str]:
        out = [str(w) for w in self.results.get("warnings") or []]
        status = self.results.get("status")
        if status != "complete":
            out.append(f"The run is not complete (status: {status}); sections may be missing numbers.")
        overrides = (self.manifest.get("plan") or {}).get("overrides") or []
        if overrides:
            out.append("The plan was changed on the command line (recorded in the manifest): "
                       + "; ".join(reduce_command([o]) for o in overrides) + ".")
        for role, info in (self.manifest.get("models") or {}).items():
            if isinstance(info, dict) and info.get("cache_hit"):
                out.append(f"The {role} model's weights were loaded from the harness cache (trained earlier from "
                           f"identical settings and data; weights sha256 {short_hash(info.get('weights_sha256'))}).")
        for role in self.models:
            for attack_id in self.attack_ids:
                total = sum(p.get("bound_violations", 0) for p in (self.attack_result(role, attack_id) or {})
                            .get("points", []))
                already = any(f"{role}/{attack_id}" in w for w in out)
                if total and not already:
                    out.append(f"{role}/{attack_id}: {total} adversarial examples were outside their ε bound and "
                               "were not counted as successes.")
        for criterion in self.results.get("criteria") or []:
            if criterion.get("measured") is None:
                out.append(f"Criterion {criterion.get('id')} could not be measured "
                           f"({criterion.get('note') or 'no value'}); it counts as failed.")
        verdict = self.results.get("verdict") or {}
        if verdict and verdict.get("n_criteria") == 0:
            out.append("The plan defines no acceptance criteria.")
        for role in self.models:
            if role not in self.run.examples:
                out.append(f"No adversarial examples were saved for the {role} model.")
        for role, ex in self.run.examples.items():
            if ex.within_bound is not None and not ex.within_bound.all():
                out.append(f"{int((~ex.within_bound).sum())} of the {role} model's saved examples exceed the ε "
                           "bound of their attack.")
        out += self.run.problems
        return out


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _same_grid(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= 1e-12 for x, y in zip(sorted(a), sorted(b), strict=True))


def _mean(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return verbatim(value)


# -- models branch (issues 21 and 17): how the model was built, fed, checked and kept; port into the model section.
def model_contract_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """Architecture arguments, normalisation and its source, input contract, load checks, possible attacks, copy."""
    rows: list[tuple[str, str]] = []
    arch = info.get("architecture_arguments")
    if isinstance(arch, dict):
        plan_set = ", ".join(arch.get("from_plan") or []) or "none (the library's defaults)"
        rows += [("constructor", str(arch.get("constructor") or arch.get("name", "n/a"))),
                 ("constructor arguments", verbatim(arch.get("arguments") or {})), ("set by the plan", plan_set)]
    norm = info.get("normalization")
    if isinstance(norm, dict):
        values = f"mean {verbatim(norm['mean'])}, std {verbatim(norm['std'])}; " if "mean" in norm else ""
        rows.append(("normalisation", f"{values}from {norm.get('source', 'n/a')}"))
    contract = info.get("input")
    if isinstance(contract, dict):
        shapes = "×".join(map(str, contract.get("data_shape", []))) + " → " + \
            "×".join(map(str, contract.get("model_shape", [])))
        scale = contract.get("scale") or [0, 1]
        rows.append(("input contract", f"{shapes}; [0,1] → [{scale[0]:g}, {scale[1]:g}]"
                                       + ("; one channel replicated" if contract.get("channels_replicated") else "")
                                       + (f"; resize {contract['resize']}" if contract.get("resize") else "")))
        rows.append(("ε units", str(contract.get("epsilon_units", "n/a"))))
    check = info.get("reference_check")
    if isinstance(check, dict):
        if check.get("kind") == "logits":
            text = (f"passed: max |logit difference| {check['max_abs_difference']:.3g} ≤ {check['tolerance']:g} over "
                    f"{check['n_inputs']} inputs ({check['logits']})")
        elif check.get("kind") == "expected_accuracy":
            text = (f"passed: test accuracy {check['measured_accuracy']:.4f} vs expected "
                    f"{check['expected_accuracy']:.4f} (tolerance {check['tolerance']:g})")
        else:
            text = str(check.get("note", "none"))
        rows.append(("reference check", text))
    if isinstance(info.get("onnx_check"), dict):
        onnx_check = info["onnx_check"]
        rows.append(("ONNX load check", f"passed: max |difference| {onnx_check['max_abs_difference']:.3g} against "
                                        f"{onnx_check['compared_with']} on {onnx_check['n_images']} images"))
    if info.get("backend"):
        rows.append(("runs on", str(info["backend"])))
    if info.get("attacks_not_possible"):
        rows.append(("attacks run", ", ".join(info.get("attacks_possible") or []) or "none"))
        rows.append(("attacks not possible", ", ".join(info["attacks_not_possible"])
                     + " (they need input gradients, which this model does not give)"))
    kept = info.get("stored_copy")
    if isinstance(kept, dict):
        rows.append(("tested model in the run directory",
                     f"{kept['path']} ({kept['how']}, sha256 {short_hash(kept.get('sha256'))}…)" if kept.get("path")
                     else str(kept.get("how"))))
    return rows


def _mapping_rows(mapping: Any) -> list[tuple[str, str]]:
    if not isinstance(mapping, dict):
        return []
    return [(str(k), verbatim(v)) for k, v in mapping.items()]


def _metric_value(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric == "median_min_epsilon":
        return f"{value:.4g}"
    return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:g}"


def _nice_factor(raw: float) -> float:
    """Round an amplification factor down to 1, 2 or 5 × a power of ten."""
    if raw <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for step in (5, 2, 1):
        if step * power <= raw:
            return float(step * power)
    return float(power)


def build_context(run: RunData) -> dict[str, Any]:
    """The template context for one run."""
    return ContextBuilder(run).build()


