"""The core's own checks on any dataset plugin's output, before a model sees it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.data.splits import SPLIT_NAMES
from harness.errors import DataError
from harness.registry.contracts import DatasetBundle

SUPPLIED_HINT = "a supplied model (state_dict, torchscript, onnx) without a defence needs only a test split"


def validate_dataset(dataset: DatasetBundle, trainers: Sequence[str] = ()) -> None:
    """Splits present and labels in range; train data only where something trains on it.

    (harness.data.loading.load_dataset has already checked that no patient crosses splits.)

    `trainers` names what will train on the train/val splits (e.g. "model plugin 'train'", "defence
    'adversarial_training'"); with none, a test split alone is enough.
    """
    needed = SPLIT_NAMES if trainers else ("test",)
    for name in needed:
        if name not in dataset.splits:
            raise DataError(f"data set '{dataset.name}' has no {name} split"
                            + (f" ({trainers[0]} trains on it)" if name != "test" else ""))
    if len(dataset.splits["test"]) == 0:
        raise DataError(f"data set '{dataset.name}' has an empty test split")
    if trainers and len(dataset.splits["train"]) == 0:
        raise DataError(f"data set '{dataset.name}' has an empty train split, but {' and '.join(trainers)} "
                        f"train{'s' if len(trainers) == 1 else ''} on it ({SUPPLIED_HINT})")
    k = len(dataset.class_names)
    for name, split in dataset.splits.items():
        labels = np.asarray(split.labels)
        if len(labels) and (labels.min() < 0 or labels.max() >= k):
            raise DataError(f"data set '{dataset.name}' split {name} has labels outside 0..{k - 1}")
