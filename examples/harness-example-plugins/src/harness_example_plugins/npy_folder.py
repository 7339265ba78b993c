"""Data-set plugin `npy_folder`: `.npy` images listed in a labels.csv (`file,label,patient_id`).

It shows what every data-set plugin must do: validate its inputs with one-line errors naming the file, return
images in [0,1] as N×C×H×W float32, split by patient, hash the content it loaded, and declare that its ids come
from the source (so the harness replaces them by keyed hashes before anything is written).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness import DataError, DatasetBundle, DatasetContext, TensorSplit, grouped_stratified_split

SPLITS = ("train", "val", "test")


@dataclass
class NpyFolderParams:
    """The plan's `dataset:` keys for this plugin."""

    path: str
    class_names: list[str] = field(default_factory=lambda: ["negative", "positive"])
    split_fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])


class NpyFolder:
    """Images from `<path>/labels.csv`, grouped into train/val/test by patient."""

    name = "npy_folder"
    description = "2-D .npy images in [0,1] listed in labels.csv (file,label,patient_id); split by patient."
    identifiers = "from_source"
    Params = NpyFolderParams

    def load(self, params: NpyFolderParams, context: DatasetContext) -> DatasetBundle:
        """Read every listed image, split by patient, and describe what was loaded."""
        root = Path(params.path)
        root = root if root.is_absolute() else context.base_dir / root
        rows = _read_rows(root / "labels.csv", len(params.class_names))
        images = np.stack([_read_image(root / row["file"]) for row in rows])[:, None]
        labels = np.array([int(row["label"]) for row in rows], dtype=np.int64)
        patients = [row["patient_id"] for row in rows]
        fractions = dict(zip(SPLITS, params.split_fractions, strict=True))
        assignment = grouped_stratified_split(labels, patients, context.seed, fractions)
        splits = {}
        for name in SPLITS:
            idx = np.flatnonzero(assignment == name)
            splits[name] = TensorSplit(torch.from_numpy(images[idx]), labels[idx], [rows[i]["file"] for i in idx],
                                       [patients[i] for i in idx])
        digest = hashlib.sha256(images.tobytes() + labels.tobytes() + "".join(assignment).encode()).hexdigest()
        counts = {name: len(split) for name, split in splits.items()}
        return DatasetBundle(name=self.name, class_names=list(params.class_names), splits=splits,
                             provenance={"source": "npy_folder", "content_sha256": digest, "counts": counts})


def _read_rows(path: Path, n_classes: int) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"npy_folder: {path.name} not found in the data folder")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for line, row in enumerate(rows, start=2):
        if row.get("label", "").strip() not in {str(k) for k in range(n_classes)}:
            raise DataError(f"npy_folder: {path.name}:{line}: label {row.get('label')!r} is not 0..{n_classes - 1}")
    return rows


def _read_image(path: Path) -> np.ndarray:
    try:
        image = np.load(path, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise DataError(f"npy_folder: cannot read {path.name}: {exc}") from None
    if image.ndim != 2 or not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise DataError(f"npy_folder: {path.name} must be a 2-D array of finite values in [0,1]")
    return image
