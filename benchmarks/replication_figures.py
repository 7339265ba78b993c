"""Accuracy-versus-epsilon figures and tables for docs/replication.md from finished run directories.

    .venv/bin/python benchmarks/replication_figures.py RUN_DIR [RUN_DIR ...] --out docs/replication

For each run, one PNG per attack (naive and hardened curves, clean accuracy dashed; the report's own plot) named
`<plan name>__<attack id>.png`, and on stdout Markdown tables: robust accuracy per epsilon per model; for each
attack in --intervals (default pgd_linf) naive and hardened accuracy with their intervals and the run's paired
exact McNemar test per epsilon; the per-subgroup (per-class) view; and the corruption errors with the mCE.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.report.plots import Curve, accuracy_panels

ROLES = ("naive", "hardened")


def read_results(run_dir: Path) -> dict[str, Any]:
    """results.json of a complete run; a clear error for anything else."""
    path = run_dir / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: cannot read results ({exc})") from None
    if results.get("status") not in ("passed", "failed", "complete"):  # complete: results schema v1
        raise SystemExit(f"{path}: run is not complete (status {results.get('status')!r})")
    return results


def curves_for(results: dict[str, Any], attack_id: str) -> list[Curve]:
    """One curve per model that ran this attack."""
    curves = []
    for role in ROLES:
        model = results["models"].get(role)
        if not model or attack_id not in model["attacks"]:
            continue
        points = model["attacks"][attack_id]["points"]
        curves.append(Curve(role, [p["epsilon"] for p in points], [p["robust_accuracy"] for p in points],
                            model["clean"]["accuracy"]))
    return curves


def markdown_table(results: dict[str, Any]) -> str:
    """Rows `attack, model` × columns epsilon, robust accuracy to three decimals; clean accuracy first."""
    naive = results["models"]["naive"]
    attacks = [a for a, s in naive["attacks"].items() if s["points"] and s.get("kind", "fixed") != "minimal"]
    grid = sorted({p["epsilon"] for a in attacks for p in naive["attacks"][a]["points"]})
    lines = ["| attack, model | clean | " + " | ".join(f"{e:g}" for e in grid) + " |",
             "|---|---:|" + "---:|" * len(grid)]
    for attack_id in attacks:
        for role in ROLES:
            model = results["models"].get(role)
            if not model or attack_id not in model["attacks"]:
                continue
            by_eps = {p["epsilon"]: p["robust_accuracy"] for p in model["attacks"][attack_id]["points"]}
            cells = [f"{by_eps[e]:.3f}" if e in by_eps else "–" for e in grid]
            lines.append(f"| {attack_id}, {role} | {model['clean']['accuracy']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _with_interval(value: float | None, interval: dict[str, Any] | None) -> str:
    """'0.754 [0.716–0.789]' (the Wilson interval stored with the value), or '–'."""
    if value is None:
        return "–"
    if not interval:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval['low']:.3f}–{interval['high']:.3f}]"


def interval_table(results: dict[str, Any], attack_id: str) -> str:
    """Per epsilon (clean first): naive and hardened accuracy with intervals, and the paired McNemar test."""
    models = {role: results["models"].get(role) for role in ROLES}
    naive = models["naive"]
    if not naive or attack_id not in naive["attacks"]:
        return ""
    paired = {(c.get("attack"), c.get("epsilon")): c for c in results.get("comparisons") or []
              if c.get("a") == "naive" and c.get("b") == "hardened"}
    lines = [f"| {attack_id} ε | naive accuracy [95 % CI] | hardened accuracy [95 % CI] | hardened − naive "
             "(only naive / only hardened right) | McNemar p |", "|---|---:|---:|---:|---:|"]

    def row(label: str, key: tuple[Any, Any], cells: list[str]) -> None:
        c = paired.get(key)
        diff = "–" if c is None else f"{c['difference'] * 100:+.1f} pts ({c['only_a_correct']} / {c['only_b_correct']})"
        p_value = "–" if c is None else f"{c['p_value']:.3g}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {diff} | {p_value} |")

    row("clean", (None, None), [_with_interval(m["clean"]["accuracy"], m["clean"].get("intervals", {}).get("accuracy"))
                                if m else "–" for m in models.values()])
    for point in naive["attacks"][attack_id]["points"]:
        cells = []
        for model in models.values():
            match = next((q for q in (model or {}).get("attacks", {}).get(attack_id, {}).get("points", [])
                          if q["epsilon"] == point["epsilon"]), None)
            cells.append("–" if match is None else _with_interval(
                match["robust_accuracy"], match.get("intervals", {}).get("robust_accuracy")))
        row(f"{point['epsilon']:g}", (attack_id, point["epsilon"]), cells)
    return "\n".join(lines)


def subgroup_table(results: dict[str, Any], attack_id: str, epsilon: float) -> str:
    """Per subgroup value (e.g. per class): clean and attacked accuracy of both models, with intervals."""
    naive = results["models"]["naive"]
    if not naive.get("subgroups"):
        return ""
    lines = [f"| subgroup | n | naive clean | naive {attack_id} @ {epsilon:g} | hardened clean | "
             f"hardened {attack_id} @ {epsilon:g} |", "|---|---:|---:|---:|---:|---:|"]
    for attribute, values in naive["subgroups"].items():
        for value in sorted(values):
            cells, n = [], values[value]["clean"].get("n")
            for role in ROLES:
                model = (results["models"].get(role) or {}).get("subgroups", {}).get(attribute, {}).get(value)
                if model is None:
                    cells += ["–", "–"]
                    continue
                clean = model["clean"]
                cells.append(_with_interval(clean["accuracy"], clean.get("intervals", {}).get("accuracy")))
                match = next((q for q in model["attacks"].get(attack_id, {}).get("points", [])
                              if abs(q["epsilon"] - epsilon) < 1e-12), None)
                cells.append("–" if match is None else _with_interval(
                    match["robust_accuracy"], match.get("intervals", {}).get("robust_accuracy")))
            lines.append(f"| {attribute} = {value} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def corruption_table(results: dict[str, Any]) -> str:
    """Each corruption's corruption error (mean error over severities ÷ clean error) per model, and the mCE."""
    naive = results["models"]["naive"]
    if not naive.get("corruptions"):
        return ""
    models = {role: results["models"].get(role) or {} for role in ROLES}
    lines = ["| corruption | naive CE | hardened CE |", "|---|---:|---:|"]

    def fmt(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    for corruption_id in naive["corruptions"]:
        cells = [fmt((m.get("corruptions") or {}).get(corruption_id, {}).get("corruption_error"))
                 for m in models.values()]
        lines.append(f"| {corruption_id} | " + " | ".join(cells) + " |")
    lines.append("| **mCE** | " + " | ".join(f"**{fmt(m.get('mean_corruption_error'))}**" for m in models.values())
                 + " |")
    return "\n".join(lines)
def accuracy_plot(attack_id: str, norm: str, curves: list[Curve]) -> bytes:
    """Accuracy under one attack against epsilon, one line per model (the report's panel, alone in its figure)."""
    return accuracy_panels([(attack_id, norm, curves)], None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG figures")
    parser.add_argument("--attacks", nargs="*", help="attack ids to plot (default: every fixed-epsilon attack)")
    parser.add_argument("--intervals", nargs="*", default=["pgd_linf"],
                        help="attack ids tabulated with intervals and McNemar (default: pgd_linf)")
    parser.add_argument("--subgroup-epsilon", type=float, default=0.004,
                        help="epsilon of the per-subgroup table (default 0.004)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for run_dir in args.run_dirs:
        results = read_results(run_dir)
        name = results["plan"]["name"] if "plan" in results else run_dir.name.rsplit("-", 3)[0]
        print(f"\n### {name} ({run_dir.name})\n\n{markdown_table(results)}")
        for attack_id in args.intervals:
            table = interval_table(results, attack_id)
            if table:
                print(f"\n{table}")
        for attack_id in args.intervals[:1]:
            table = subgroup_table(results, attack_id, args.subgroup_epsilon)
            if table:
                print(f"\n{table}")
        table = corruption_table(results)
        if table:
            print(f"\n{table}")
        naive = results["models"]["naive"]
        for attack_id, summary in naive["attacks"].items():
            if args.attacks and attack_id not in args.attacks:
                continue
            if summary.get("kind", "fixed") == "minimal":
                continue
            png = accuracy_plot(attack_id, summary.get("norm", "linf"), curves_for(results, attack_id))
            target = args.out / f"{name}__{attack_id}.png"
            target.write_bytes(png)
            print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
