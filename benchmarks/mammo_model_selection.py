"""Which naive model for specs/real/mammogram_cbis.yaml: candidate recipes trained from scratch, chosen on val AUC.

    HARNESS_SHARED_DATASETS=/work/shared/datasets OMP_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/mammo_model_selection.py [--recipes NAME ...] [--epochs-scale F] [--json F]

Each recipe goes through the `train` model plugin exactly as a plan's `model:` section would (same seed, same
augmentation, epoch kept by validation ROC AUC). The table ranks the recipes by their best **validation** AUC, the
only number the choice may use; test AUC (DeLong 95 % interval) and accuracy (Wilson) are printed for the record,
so that a reader can see what the choice reached, not to choose by. About 20 minutes for all five on one CPU core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from harness.data.loading import load_dataset
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetContext, ModelContext
from harness.registry.manager import default_registry
from harness.stats.auc import delong_auc
from harness.stats.intervals import binomial_interval
from harness_plugins.models import providers, training

SEED = 20221  # the plan's seed
AUGMENT = {"hflip": True, "vflip": True, "rotate90": True, "intensity_jitter": 0.1}  # the plan's augmentation
RECIPES: dict[str, dict[str, Any]] = {  # name → image size, architecture, epochs
    "3 blocks 16/32/64, 64 px (plan before 2026-12-06)": {"size": 64, "arch": "small_cnn", "epochs": 40},
    "3 blocks 32/64/128, 64 px": {"size": 64, "arch": {"name": "small_cnn", "widths": [32, 64, 128]}, "epochs": 50},
    "4 blocks 16/32/64/128, 128 px": {"size": 128, "arch": {"name": "small_cnn", "widths": [16, 32, 64, 128]},
                                      "epochs": 50},
    "4 blocks 16/32/64/128, 64 px": {"size": 64, "arch": {"name": "small_cnn", "widths": [16, 32, 64, 128]},
                                     "epochs": 80},
    "5 blocks 16/32/64/128/128, 64 px (the plan)": {"size": 64,
                                                     "arch": {"name": "small_cnn", "widths": [16, 32, 64, 128, 128]},
                                                     "epochs": 80},
}


def data_path() -> Path:
    """The shared CBIS-DDSM mass crops, from HARNESS_SHARED_DATASETS."""
    root = os.environ.get("HARNESS_SHARED_DATASETS")
    if not root or not (Path(root) / "mammo_cbis_mass_roi" / "labels.csv").is_file():
        raise SystemExit("set HARNESS_SHARED_DATASETS to the folder that holds mammo_cbis_mass_roi/")
    return Path(root) / "mammo_cbis_mass_roi"


def train_recipe(recipe: dict[str, Any], epochs: int, cache: Path) -> dict[str, Any]:
    """Train one recipe through the `train` plugin; its selected epoch, val AUC and the test figures."""
    registry = default_registry()
    plugin = registry.get("dataset", "image_folder")
    params = {"path": str(data_path()), "class_names": ["benign", "malignant"], "image_size": recipe["size"],
              "channels": 1, "group_column": "patient_id"}
    bundle = load_dataset(plugin, build_dataclass(plugin.Params, params, key="dataset"),
                          DatasetContext(seed=SEED, base_dir=Path("."), cache_dir=cache), "mammo_cbis_mass_roi")
    context = ModelContext(dataset=bundle, device=torch.device("cpu"), seed=SEED, base_dir=cache, cache_dir=cache,
                           architectures=registry.of_kind("architecture"), log=lambda _: None)
    train_params = build_dataclass(training.TrainParams, {
        "architecture": recipe["arch"], "epochs": epochs, "learning_rate": 1e-3, "batch_size": 32,
        "select_metric": "auc", "num_threads": 1, "augment": AUGMENT}, key="model")
    start = time.perf_counter()
    model = providers.TrainProvider().provide(train_params, context)
    seconds = time.perf_counter() - start
    _, _, (labels, probs) = training.evaluate_scores(model.module, bundle.splits["test"], torch.device("cpu"), 64)
    log, selected = model.provenance["training_log"], model.provenance["selected_epoch"]
    auc = delong_auc(labels == 1, probs[:, 1])
    correct = int((probs.argmax(1) == labels).sum())
    accuracy = binomial_interval(correct, len(labels))
    return {"epochs": epochs, "selected_epoch": selected, "val_auc": log[selected - 1]["val_auc"],
            "test_auc": auc.auc, "test_auc_ci": [auc.low, auc.high], "test_accuracy": correct / len(labels),
            "test_accuracy_ci": [accuracy.low, accuracy.high], "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    """Train the chosen recipes, print the table ranked by validation AUC."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="*", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="scale every recipe's epochs (a quick look)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "harness-mammo-selection",
                        help="the data set's decoded cache (no model weights are kept)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name in args.recipes:
        recipe = RECIPES[name]
        rows[name] = train_recipe(recipe, max(1, round(recipe["epochs"] * args.epochs_scale)), args.cache)
        print(f"trained {name}: val AUC {rows[name]['val_auc']:.3f}", file=sys.stderr, flush=True)
    print("| recipe (small_cnn, from scratch) | epochs (kept) | val AUC (the choice) | test AUC [95 % CI] "
          "| test accuracy [95 % CI] | train s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in sorted(rows.items(), key=lambda item: -item[1]["val_auc"]):
        print(f"| {name} | {row['epochs']} ({row['selected_epoch']}) | {row['val_auc']:.3f} "
              f"| {row['test_auc']:.3f} [{row['test_auc_ci'][0]:.3f}–{row['test_auc_ci'][1]:.3f}] "
              f"| {row['test_accuracy']:.3f} [{row['test_accuracy_ci'][0]:.3f}–{row['test_accuracy_ci'][1]:.3f}] "
              f"| {row['seconds']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
