"""A corruption strip for the report: one test image, clean and at each severity of each corruption, with the
model's predictions, saved as corruption_examples_<role>.npz (the report reads it with
harness.report.saved_corruption_examples).

The image is chosen by EXAMPLE_RULE: the test image whose naive-model prediction changes at the most severities, read
from corruption_samples.csv, the same for every model, so the strips of the naive and the hardened model show the
same pixels.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from harness.corruptions.evaluate import severity_params
from harness.plan.corruptions import CorruptionSpec
from harness.registry.contracts import CorruptionContext, Split
from harness.registry.severities import SEVERITY_LEVELS
from harness.results.build import softmax
from harness.storage.atomic import write_bytes_atomic

FILE_PATTERN = "corruption_examples_{role}.npz"


EXAMPLE_RULE = ("the test image whose naive-model prediction differs from its clean prediction at the most "
                "corruption severities (ties: the first in test order of the positive class, then of any class)")


def example_index(split: Split, positive_class: int, changes: dict[str, int] | None = None) -> int:
    """The strip's image by EXAMPLE_RULE: most prediction changes over the corruptions' severities (`changes`, by
    sample id, from corruption_samples.csv); without any change, the first test image of the positive class, else 0."""
    labels = np.asarray(split.labels)
    order = [*np.flatnonzero(labels == positive_class), *np.flatnonzero(labels != positive_class)]
    counts = changes or {}
    ranked = [(counts.get(str(split.sample_ids[i]), 0), -rank, int(i)) for rank, i in enumerate(order)]
    return max(ranked)[2] if ranked else 0


def prediction_changes(rows: list[dict[str, str]], role: str = "naive") -> dict[str, int]:
    """For each sample id: at how many corruption severities `role`'s prediction differs from its clean one."""
    counts: dict[str, int] = {}
    for row in rows:
        if row.get("model") != role:
            continue
        clean = row.get("clean_prediction")
        changed = sum(1 for key, value in row.items() if key.startswith("prediction@") and value not in ("", clean))
        counts[row["sample_id"]] = counts.get(row["sample_id"], 0) + changed
    return counts


def save_corruption_examples(run_dir: Path, role: str, model: Any, split: Split, specs: list[CorruptionSpec],
                             registry: Any, context: CorruptionContext, positive_class: int, device: Any) -> Path:
    """Corrupt one test image (EXAMPLE_RULE, read from the run's corruption_samples.csv) at every severity of every
    corruption, classify each, and save the strip."""
    import torch

    from harness.data.batches import batch_logits
    from harness.results.corruption_samples import FILE_NAME, read_corruption_samples

    samples = Path(run_dir) / FILE_NAME
    rows = read_corruption_samples(samples) if samples.is_file() else []
    index = example_index(split, positive_class, prediction_changes(rows))
    image, label = split[index]
    levels = len(SEVERITY_LEVELS)
    images = np.zeros((len(specs), levels, *image.shape), dtype=np.float32)
    ran = np.zeros((len(specs), levels), dtype=bool)
    preds = np.full((len(specs), levels), -1, dtype=np.int64)
    confs = np.zeros((len(specs), levels), dtype=np.float64)
    clean_prob = softmax(batch_logits(model, image[None], device))[0]
    for i, spec in enumerate(specs):
        plugin = registry.get("corruption", spec.corruption)
        batch = torch.cat([plugin.apply(image[None], [index], p, context) for p in severity_params(plugin, spec)])
        prob = softmax(batch_logits(model, batch, device, f"images corrupted by {spec.id}"))
        slots = [level - 1 for level in spec.severities]
        images[i, slots] = batch.cpu().numpy()
        ran[i, slots] = True
        preds[i, slots] = prob.argmax(axis=1)
        confs[i, slots] = prob.max(axis=1)
    arrays = {"role": np.asarray(role), "sample_id": np.asarray(str(split.sample_ids[index])),
              "label": np.asarray(int(label)), "clean": image.cpu().numpy().astype(np.float32),
              "clean_pred": np.asarray(int(clean_prob.argmax())), "clean_conf": np.asarray(float(clean_prob.max())),
              "ids": np.asarray([spec.id for spec in specs], dtype=np.str_), "images": images, "ran": ran,
              "preds": preds, "confs": confs, "rule": np.asarray(EXAMPLE_RULE)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path = Path(run_dir) / FILE_PATTERN.format(role=role)
    write_bytes_atomic(path, buffer.getvalue())
    return path
