"""A corruption strip for the report: one test image, clean and at each severity of each corruption, with the
model's predictions, saved as corruption_examples_<role>.npz (the report reads it with
harness.report.saved_corruption_examples).

The image is the first test image of the positive class (else the first test image), the same for every model,
so the strips of the naive and the hardened model show the same pixels.
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


def example_index(split: Split, positive_class: int) -> int:
    """The first test image of the positive class, else 0."""
    positive = np.flatnonzero(np.asarray(split.labels) == positive_class)
    return int(positive[0]) if len(positive) else 0


def save_corruption_examples(run_dir: Path, role: str, model: Any, split: Split, specs: list[CorruptionSpec],
                             registry: Any, context: CorruptionContext, positive_class: int, device: Any) -> Path:
    """Corrupt one test image at every severity of every corruption, classify each, and save the strip."""
    import torch

    from harness.data.batches import batch_logits

    index = example_index(split, positive_class)
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
              "preds": preds, "confs": confs}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path = Path(run_dir) / FILE_PATTERN.format(role=role)
    write_bytes_atomic(path, buffer.getvalue())
    return path
