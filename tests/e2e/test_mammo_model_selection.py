"""benchmarks/mammo_model_selection.py on real CBIS-DDSM crops at a few epochs, so its table cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support import REPO

RECIPE = "5 blocks 16/32/64/128/128, 64 px (the plan)"


def test_the_selection_table_ranks_recipes_by_validation_auc(tmp_path, shared_datasets) -> None:  # noqa: ANN001
    out = tmp_path / "rows.json"
    env = {**os.environ, "HARNESS_SHARED_DATASETS": str(shared_datasets), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mammo_model_selection.py"), "--recipes",
                           RECIPE, "3 blocks 16/32/64, 64 px (plan before 2026-12-06)", "--epochs-scale", "0.03",
                           "--cache", str(tmp_path / "cache"), "--json", str(out)],
                          capture_output=True, text=True, check=True, env=env)
    rows = json.loads(out.read_text())
    assert set(rows) == {RECIPE, "3 blocks 16/32/64, 64 px (plan before 2026-12-06)"}
    table = [line for line in done.stdout.splitlines() if line.startswith("| ") and "recipe" not in line]
    val = [float(line.split("|")[3]) for line in table]
    assert val == sorted(val, reverse=True) and len(table) == 2  # ranked by the validation AUC, the choice
    for row in rows.values():
        assert 1 <= row["selected_epoch"] <= row["epochs"] and 0 <= row["val_auc"] <= 1
        low, high = row["test_auc_ci"]
        assert low <= row["test_auc"] <= high
