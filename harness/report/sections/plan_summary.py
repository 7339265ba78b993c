"""The test plan: general settings, each attack's parameters and grid, the defence, the model and data set."""

from __future__ import annotations

from typing import Any

from harness.formatting import eps_text, num, pct
from harness.plan.epsilons import EpsilonGrid
from harness.report.inputs import ROLES, ReportInput
from harness.report.model_rows import model_contract_rows
from harness.report.text import basename, cell, mapping_rows, reduce_command, verbatim
from harness.results.model import thaw

TITLE = "Test plan"
KIND_TEXT = {"fixed_epsilon": "fixed ε (attacks within each ε of the grid)",
             "minimal": "minimal perturbation (smallest flipping ε per image; the grid is read off it)"}
MODEL_FIELDS = (("plugin", "model plugin"), ("architecture", "architecture"), ("source", "source"),
                ("n_parameters", "parameters"), ("selected_epoch", "selected epoch"),
                ("training_seconds", "training time (s)"), ("cache_hit", "loaded from cache"),
                ("weights_sha256", "weights sha256"), ("state_dict_sha256", "state dict sha256"))
MAX_TRAINING_LOG_ROWS = 40


def _grid_text(report: ReportInput, epsilons: list[float]) -> list[tuple[str, str | None]]:
    return [(eps_text(eps), report.native_text(eps)) for eps in epsilons]


def _log_eps(report: ReportInput, eps: Any) -> str:
    """A training log's epsilon with its native-unit value ('n/a' where the round had none)."""
    return report.eps_native(float(eps)) if isinstance(eps, (int, float)) else eps_text(eps)


def attacks(report: ReportInput) -> list[dict[str, Any]]:
    """Each attack's plugin, norm, kind, parameters (verbatim) and epsilon grid."""
    out = []
    planned = {(a.get("id") or a.get("attack")): a for a in report.resolved.get("attacks") or [] if isinstance(a, dict)}
    grids = {a.id: a.epsilons for a in report.plan.attacks}
    default_grid = EpsilonGrid.of(report.plan.epsilons)
    for attack_id in report.run_attack_ids:
        result, raw = report.attack(attack_id), planned.get(attack_id, {})
        if result is not None:
            params, epsilons = thaw(result.params), [p.epsilon for p in result.points]
        else:  # not run yet: show what the plan says
            params = {k: v for k, v in raw.items() if k not in ("attack", "id", "epsilons")}
            epsilons = []
        epsilons = epsilons or list(grids.get(attack_id, ()))
        kind = result.kind if result else "n/a"
        out.append({"id": attack_id, "attack": (result.attack if result else None) or raw.get("attack") or "n/a",
                    "norm": result.norm if result else "n/a", "kind": kind, "kind_text": KIND_TEXT.get(kind, kind),
                    "params": [(k, verbatim(v)) for k, v in params.items()],
                    "grid": _grid_text(report, epsilons), "default_grid": EpsilonGrid.of(epsilons) == default_grid})
    return out


def defence(report: ReportInput) -> dict[str, Any] | None:
    """The defence's plugin, parameters, selected round and training log, or None without a defence."""
    result, planned = report.run.defence, report.resolved.get("defence")
    if result is None and not planned:
        return None
    if result is not None:
        plugin, params, selected = result.plugin, thaw(result.params), result.selected_round
        weights, log = result.selected_weights_sha256, result.training_log
    else:
        plugin = (planned or {}).get("plugin", "n/a")
        params = {k: v for k, v in planned.items() if k != "plugin"} if isinstance(planned, dict) else {}
        selected, weights, log = None, None, ()
    rows = [{"round": r.get("round"), "epsilon": _log_eps(report, r.get("epsilon")), "loss": num(r.get("loss"), 4),
             "train_accuracy": pct(r.get("train_accuracy")), "val_clean": pct(r.get("val_clean_accuracy")),
             "val_robust": pct(r.get("val_robust_accuracy")), "seconds": num(r.get("seconds"), 1),
             "selected": r.get("round") == selected} for r in log]
    return {"plugin": plugin, "params": [(k, verbatim(v)) for k, v in params.items()], "selected_round": selected,
            "weights": weights, "log": rows}


def training_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """The training settings verbatim, with what an unset (null) setting means instead of 'null'."""
    unset = {"seed": f"not set: the plan's seed ({verbatim(info.get('seed', 'n/a'))})",
             "num_threads": "not set: the run's --threads (torch's default without it)"}
    return [(key, unset.get(key, "not set") if value == "null" else value)
            for key, value in mapping_rows(info.get("training"))]


def models(report: ReportInput) -> list[dict[str, Any]]:
    """Each model as provided (manifest): settings, weights file name and training log."""
    out = []
    recorded = report.manifest.models
    for role in sorted(recorded, key=lambda r: (ROLES.index(r) if r in ROLES else len(ROLES), r)):
        info = recorded[role]
        if not isinstance(info, dict):
            continue
        rows = [(label, verbatim(info[key])) for key, label in MODEL_FIELDS if info.get(key) is not None]
        rows += [("weights file", basename(info[key])) for key in ("weights_path", "path")
                 if isinstance(info.get(key), str)]
        rows += model_contract_rows(info)
        log = info.get("training_log") or []
        columns = [k for k in log[0] if isinstance(log[0][k], (int, float)) or log[0][k] is None] \
            if log and isinstance(log[0], dict) else []
        table = [[_log_eps(report, entry.get(c)) if c == "epsilon" else cell(entry.get(c)) for c in columns]
                 for entry in log[:MAX_TRAINING_LOG_ROWS]] if columns else []
        out.append({"role": role, "rows": rows, "training": training_rows(info),
                    "log_columns": columns, "log": table, "log_truncated": max(0, len(log) - MAX_TRAINING_LOG_ROWS)})
    return out


def build(report: ReportInput) -> dict[str, Any]:
    """Everything the plan set, verbatim, with the epsilons also in native units."""
    resolved, plan = report.resolved, report.plan
    default_grid = ", ".join(f"{eps_text(e)} = {native}" if (native := report.native_text(e)) else eps_text(e)
                             for e in plan.epsilons)
    general = [("seed", verbatim(plan.seed)),
               ("device requested", verbatim(plan.device)),
               ("batch size", verbatim(plan.batch_size)),
               ("default ε grid", default_grid),
               ("susceptibility cutoff", eps_text(report.cutoff)),
               ("examples per model", verbatim(plan.n_examples))]
    return {"attacks": attacks(report), "defence": defence(report), "general": general,
            "overrides": [reduce_command([o]) for o in report.overrides],
            "dataset_params": mapping_rows(resolved.get("dataset")),
            "model_params": mapping_rows(resolved.get("model")),
            "models": models(report), "native_note": report.native_note()}
