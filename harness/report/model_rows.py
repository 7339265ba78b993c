"""Rows for the report's model table: how a model was built, fed, checked against a reference and kept."""

from __future__ import annotations

from typing import Any

from harness.report.text import short_hash, verbatim


def model_contract_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """Architecture arguments, normalisation and its source, input contract, load checks, possible attacks, copy."""
    rows: list[tuple[str, str]] = []
    arch = info.get("architecture_arguments")
    if isinstance(arch, dict):
        plan_set = ", ".join(arch.get("from_plan") or []) or ("none: the architecture's defaults (the training "
                                                               "settings the plan sets are listed below)")
        rows += [("constructor", str(arch.get("constructor") or arch.get("name", "n/a"))),
                 ("constructor arguments", verbatim(arch.get("arguments") or {})),
                 ("arguments set by the plan", plan_set)]
    norm = info.get("normalization")
    if isinstance(norm, dict):
        values = f"mean {verbatim(norm['mean'])}, std {verbatim(norm['std'])}; " if "mean" in norm else ""
        rows.append(("normalisation", f"{values}source: {norm.get('source', 'n/a')}"))
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
