"""Leakage on the real data sets in ../shared/datasets: the brain-MRI set's byte-identical files are found across
splits when nothing groups them, and none is found where the data set's own grouping keeps them together; distinct
segmented LIDC nodules are not taken for near duplicates."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from support import SHARED_DATASETS, require_shared

from harness.data.leakage import find_leakage
from harness.data.loading import load_dataset
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetBundle, DatasetContext
from harness_plugins.datasets.readers.image_folder import ImageFolderDataset
from harness_plugins.datasets.readers.npz import NpzDataset

BRAIN = SHARED_DATASETS / "brain_mri_tumor_yes_no"


def load(plugin, mapping: dict, tmp_path: Path) -> DatasetBundle:
    params = build_dataclass(plugin.Params, mapping, "dataset")
    return load_dataset(plugin, params, DatasetContext(seed=0, base_dir=SHARED_DATASETS, cache_dir=tmp_path), "salt")


def test_brain_mri_duplicates_cross_splits_only_when_nothing_groups_them(tmp_path):
    require_shared(BRAIN)
    files = sorted(p for p in (BRAIN / "images").rglob("*") if p.is_file())
    copies = Counter(hashlib.sha256(p.read_bytes()).hexdigest() for p in files)
    extra_copies = sum(n - 1 for n in copies.values() if n > 1)  # files that repeat an earlier one: 25
    ungrouped = find_leakage(load(ImageFolderDataset(), {"path": "brain_mri_tumor_yes_no", "image_size": 64,
                                                         "split_column": "none"}, tmp_path).splits)
    # each repeated file is an exact duplicate of an earlier image, across splits or within one
    assert sum(ungrouped.exact.values()) + sum(ungrouped.repeats.values()) == extra_copies > 0
    assert ungrouped.exact["train→test"] > 0 and sum(ungrouped.near.values()) > 0
    grouped = find_leakage(load(ImageFolderDataset(), {"path": "brain_mri_tumor_yes_no", "image_size": 64,
                                                       "group_column": "dup_group"}, tmp_path).splits)
    assert grouped.n_leaked == 0 and grouped.summary() is None  # labels.csv's split keeps duplicates together


def test_distinct_segmented_nodules_are_not_near_duplicates(tmp_path):
    require_shared(SHARED_DATASETS / "lidc_segmented_nodules_64")
    found = find_leakage(load(NpzDataset(), {"path": "lidc_segmented_nodules_64/lidc_segmented_nodules_64.npz"},
                              tmp_path).splits)
    assert found.n_leaked == 0 and found.seconds < 30
