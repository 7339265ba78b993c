"""Compact terminal tables: clean metrics, robust accuracy per attack and epsilon, and the verdict."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _value(value: float | None, metric: str) -> str:
    if value is None:
        return "n/a"
    if "epsilon" in metric:
        return f"{value:.4g}"
    return f"{value:.3f}"


def print_summary(console: Console, results: dict[str, Any], run_dir: str) -> None:
    """Print the clean metrics, the robust-accuracy grid and the acceptance verdict."""
    native = (results.get("dataset") or {}).get("native_units")
    for role, model in results.get("models", {}).items():
        clean = model["clean"]
        console.print(f"[bold]{role} model[/bold], test n={clean['n']}: accuracy {_pct(clean['accuracy'])}, "
                      f"sensitivity {_pct(clean['sensitivity'])}, specificity {_pct(clean['specificity'])}, "
                      f"ROC AUC {_value(clean['roc_auc'], 'auc')}")
        epsilons = sorted({p["epsilon"] for a in model["attacks"].values() for p in a["points"]})
        table = Table(title=f"Robust accuracy ({role})", title_justify="left")
        table.add_column("attack")
        for eps in epsilons:
            label = f"ε={eps:g}"
            if native:
                label += f"\n{eps * native['per_unit']:.3g} {native['unit']}"
            table.add_column(label, justify="right")
        table.add_column("median min ε", justify="right")
        for attack_id, attack in model["attacks"].items():
            by_eps = {p["epsilon"]: p for p in attack["points"]}
            cells = [_pct(by_eps[e]["robust_accuracy"]) if e in by_eps else "" for e in epsilons]
            median = attack.get("min_epsilon", {}).get("median") if attack.get("min_epsilon") else None
            cells.append(_value(median, "epsilon") if attack.get("min_epsilon") else "")
            table.add_row(escape(attack_id), *cells)
        console.print(table)
    criteria = results.get("criteria") or []
    if criteria:
        table = Table(title="Acceptance criteria", title_justify="left")
        for column in ("criterion", "threshold", "measured", "verdict"):
            table.add_column(column, justify="left" if column == "criterion" else "right")
        for entry in criteria:
            mark = "[green]PASS[/green]" if entry["passed"] else "[red]FAIL[/red]"
            table.add_row(escape(entry["id"]), f"{entry['op']} {entry['threshold']:g}",
                          _value(entry["measured"], entry["metric"]), mark)
        console.print(table)
    v = results.get("verdict") or {}
    if v:
        word = "[bold green]PASS[/bold green]" if v["passed"] else "[bold red]FAIL[/bold red]"
        console.print(f"Verdict: {word} ({v['n_passed']}/{v['n_criteria']} criteria passed)")
    for warning in results.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    console.print(f"Run directory: {escape(run_dir)}")
