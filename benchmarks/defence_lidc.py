"""Naive vs hardened small CNN on the LIDC-derived nodule set: robust accuracy at ε=0.004 under FGSM, PGD and BIM.

Builds a plan (npz data set → train small_cnn → iterative_adversarial_training), runs it through the Runner and
prints a Markdown table of clean and robust accuracy for both models, the defence's round log and wall times.

Usage: .venv/bin/python benchmarks/defence_lidc.py [--max-per-split N|0] [--naive-epochs N]
           [--stages 0.002:2,0.004:4] [--threads N] [--out DIR] [--json out.json]
The defaults are the reduced run of docs/defence-benchmark.md (about 10 minutes on 2 CPU cores). The study's CT
curriculum on the full training set is --max-per-split 0 --stages 0.001:150,0.002:50 (hours on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets" / "lidc_segmented_nodules_64" / "lidc_segmented_nodules_64.npz"
EPSILON = 0.004
ATTACKS = [
    {"attack": "fgsm"},
    {"attack": "pgd_linf", "steps": 10, "rel_stepsize": 0.25, "random_start": True},  # the study's PGD
    {"attack": "bim_linf", "steps": 10, "rel_stepsize": 0.1},  # the study's BIM
]
LABELS = {"fgsm": "FGSM", "pgd_linf": "PGD (10 × ε/4, random start)", "bim_linf": "BIM (10 × ε/10)"}


def parse_stages(text: str) -> list[dict[str, float | int]]:
    """'0.001:4,0.002:4' → [{epsilon: 0.001, rounds: 4}, {epsilon: 0.002, rounds: 4}]."""
    stages = []
    for part in text.split(","):
        epsilon, rounds = part.split(":")
        stages.append({"epsilon": float(epsilon), "rounds": int(rounds)})
    return stages


def build_plan(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark plan as a mapping (also written into the output folder as YAML)."""
    dataset: dict[str, Any] = {"plugin": "npz", "path": str(args.data), "class_names": ["benign", "malignant"]}
    if args.max_per_split:
        dataset["max_per_split"] = args.max_per_split
    return {
        "harness": 1, "name": "defence_lidc", "seed": args.seed, "device": args.device, "batch_size": 256,
        "dataset": dataset,
        "model": {"plugin": "train", "architecture": "small_cnn", "epochs": args.naive_epochs,
                  "learning_rate": 0.002, "batch_size": 64},
        "epsilons": [EPSILON],
        "attacks": ATTACKS,
        "defence": {"plugin": "iterative_adversarial_training", "stages": parse_stages(args.stages),
                    "batch_size": 128, "steps": 7, "rel_stepsize": 0.25, "learning_rate": args.learning_rate,
                    "selection_epsilon": EPSILON},
        "acceptance": [{"metric": "robust_accuracy", "model": "change", "attack": "pgd_linf", "epsilon": EPSILON,
                        "min": 0.0}],
    }


def run(plan_data: dict[str, Any], out: Path, cache: Path) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Run the plan with its own weight cache (so naive training is timed); (results, manifest, wall seconds)."""
    from harness.plan.schema import load_plan_text
    from harness.registry.manager import default_registry
    from harness.results.model import thaw
    from harness.run.runner import RunConfig, Runner

    text = yaml.safe_dump(plan_data, sort_keys=False)
    out.mkdir(parents=True, exist_ok=True)
    (out / "defence_lidc.yaml").write_text(text)
    plan = load_plan_text(text, base_dir=REPO, source="benchmarks/defence_lidc.py")
    started = time.perf_counter()
    result = Runner(plan, default_registry(), RunConfig(out_root=out, cache_dir=cache, progress=False)).run()
    return result.document.to_json(), thaw(result.manifest), time.perf_counter() - started


def robust_at(model: dict[str, Any], attack: str, metric: str = "robust_accuracy") -> float:
    """A metric (default robust accuracy) of one attack at the benchmark epsilon."""
    return next(p[metric] for p in model["attacks"][attack]["points"] if abs(p["epsilon"] - EPSILON) < 1e-12)


def table(results: dict[str, Any]) -> list[str]:
    """Markdown rows: clean and robust accuracy, naive vs hardened vs change."""
    naive, hardened = results["models"]["naive"], results["models"]["hardened"]
    rows = [("clean accuracy", naive["clean"]["accuracy"], hardened["clean"]["accuracy"])]
    rows += [(f"robust accuracy, {LABELS[a['attack']]} @ ε={EPSILON:g}", robust_at(naive, a["attack"]),
              robust_at(hardened, a["attack"])) for a in ATTACKS]
    rows += [(f"clean {m}", naive["clean"][m], hardened["clean"][m]) for m in ("sensitivity", "specificity")]
    rows += [(f"robust {m}, PGD @ ε={EPSILON:g}", robust_at(naive, "pgd_linf", f"robust_{m}"),
              robust_at(hardened, "pgd_linf", f"robust_{m}")) for m in ("sensitivity", "specificity")]
    lines = ["| test split (n={}) | naive | hardened | change |".format(results["dataset"]["n_test"]),
             "|---|---:|---:|---:|"]
    lines += [f"| {name} | {a:.3f} | {b:.3f} | {b - a:+.3f} |" for name, a, b in rows]
    return lines


def round_log(results: dict[str, Any]) -> list[str]:
    """Markdown rows of the defence's per-round validation log."""
    defence = results["defence"]
    lines = ["| round | ε | loss | adv. train acc | val clean | val robust (PGD ε=0.004) | s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for e in defence["training_log"]:
        mark = " ←" if e["round"] == defence["selected_round"] else ""
        lines.append(f"| {e['round']}{mark} | {_fmt(e['epsilon'], 'g')} | {_fmt(e['loss'], '.4f')} | "
                     f"{_fmt(e['train_accuracy'], '.3f')} | {e['val_clean_accuracy']:.3f} | "
                     f"{e['val_robust_accuracy']:.3f} | {e['seconds']:.1f} |")
    return lines


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def timings(manifest: dict[str, Any], wall: float) -> list[str]:
    """Wall time per stage, in seconds."""
    t = manifest["timings_seconds"]
    evaluation = sum(v for k, v in t.items() if k.startswith(("naive:", "hardened:")))
    return ["| stage | seconds |", "|---|---:|", f"| data set | {t.get('dataset', 0):.0f} |",
            f"| naive training | {t.get('model', 0):.0f} |", f"| hardening (defence) | {t.get('defence', 0):.0f} |",
            f"| evaluation (clean + 3 attacks, both models) | {evaluation:.0f} |", f"| total | {wall:.0f} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--max-per-split", type=int, default=1000, help="cap each split (whole patients); 0: none")
    parser.add_argument("--naive-epochs", type=int, default=10)
    parser.add_argument("--stages", default="0.002:2,0.004:4", help="epsilon:rounds,... (study: 0.001:150,0.002:50)")
    parser.add_argument("--learning-rate", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=20221)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="weight cache (default: fresh, under --out)")
    parser.add_argument("--json", type=Path, help="also write results and timings as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        results, manifest, wall = run(build_plan(args), out, args.cache_dir or out / "cache")
    device = manifest["device"]
    print(f"defence_lidc: {device.get('cpu') or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__} ({device.get('torch_threads')} threads), device {device.get('name')}; "
          f"command: {' '.join(sys.argv)}")
    defence = results["defence"]
    print(f"selected round {defence['selected_round']} of {len(defence['training_log']) - 1}\n")
    print("\n".join(table(results) + [""] + round_log(results) + [""] + timings(manifest, wall)))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "timings": manifest["timings_seconds"], "wall": wall},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
