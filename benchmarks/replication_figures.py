"""Accuracy-versus-epsilon figures and tables for docs/replication.md from finished run directories.

    .venv/bin/python benchmarks/replication_figures.py RUN_DIR [RUN_DIR ...] --out docs/replication

For each run, one PNG per attack (naive and hardened curves, clean accuracy dashed; the report's own plot) named
`<plan name>__<attack id>.png`, and on stdout a Markdown table of robust accuracy per epsilon per model.
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


def accuracy_plot(attack_id: str, norm: str, curves: list[Curve]) -> bytes:
    """Accuracy under one attack against epsilon, one line per model (the report's panel, alone in its figure)."""
    return accuracy_panels([(attack_id, norm, curves)], None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG figures")
    parser.add_argument("--attacks", nargs="*", help="attack ids to plot (default: every fixed-epsilon attack)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for run_dir in args.run_dirs:
        results = read_results(run_dir)
        name = results["plan"]["name"] if "plan" in results else run_dir.name.rsplit("-", 3)[0]
        print(f"\n### {name} ({run_dir.name})\n\n{markdown_table(results)}")
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
