"""Leakage beyond patient ids: exact and near duplicates across train/val/test are counted, warned about or refused."""

from __future__ import annotations

import json

import fake_plugins
import numpy as np
import pytest
import torch
from fake_plugins import fake_registry
from test_plan import VALID

from harness.data.leakage import Signatures, find_leakage, signatures_of
from harness.errors import DataError
from harness.plan.schema import load_plan_text
from harness.registry.contracts import TensorSplit
from harness.report.load import load_report
from harness.report.sections import provenance
from harness.run.runner import RunConfig, Runner

RNG = np.random.default_rng(0)


def texture() -> np.ndarray:
    return RNG.uniform(0, 1, (1, 16, 16)).astype(np.float32)


def blob(row: int, col: int, size: int) -> np.ndarray:
    """A small bright square on black: thumbnails of two different blobs correlate highly."""
    image = np.zeros((1, 16, 16), dtype=np.float32)
    image[0, row:row + size, col:col + size] = 0.8
    return image


def split(images: list[np.ndarray], prefix: str) -> TensorSplit:
    ids = [f"{prefix}{i}" for i in range(len(images))]
    return TensorSplit(torch.from_numpy(np.stack(images)), np.zeros(len(images), dtype=np.int64), ids, ids)


def test_exact_and_near_duplicates_across_splits_are_counted():
    a, b, c = texture(), texture(), texture()
    near_b = np.clip(0.9 * b + 0.05 + RNG.normal(0, 0.002, b.shape), 0, 1).astype(np.float32)  # re-encoded copy
    splits = {"train": split([a, b, c, a, blob(4, 4, 3)], "tr"),
              "val": split([texture(), c], "va"),
              "test": split([a.copy(), near_b, texture(), blob(5, 4, 3)], "te")}
    found = find_leakage(splits)
    assert found.exact == {"train→test": 1, "val→test": 0, "train→val": 1}
    assert found.near == {"train→test": 1, "val→test": 0, "train→val": 0}  # the two blobs are different images
    assert found.repeats == {"train": 1, "val": 0, "test": 0}
    assert {"kind": "exact", "train": "tr0", "test": "te0"} in found.examples
    near = next(e for e in found.examples if e["kind"] == "near")
    assert (near["train"], near["test"]) == ("tr1", "te1") and near["correlation"] >= 0.998
    assert found.summary().startswith("data leakage across splits: 1 test image has an exact duplicate in train; "
                                      "1 val image has an exact duplicate in train; 1 test image has a near "
                                      "duplicate in train (near: correlation ≥ 0.998 as loaded)")


def test_no_duplicates_no_summary_and_flat_images_are_only_exact_duplicates():
    flat, other_flat = np.full((1, 16, 16), 0.2, np.float32), np.full((1, 16, 16), 0.7, np.float32)
    found = find_leakage({"train": split([flat, texture()], "tr"), "test": split([other_flat, texture()], "te")})
    assert found.n_leaked == 0 and found.summary() is None
    assert find_leakage({"train": split([flat], "tr"), "test": split([flat.copy()], "te")}).exact["train→test"] == 1


def test_signatures_a_split_carries_are_used_instead_of_its_images():
    class Carried(TensorSplit):
        def __getitem__(self, index):
            raise AssertionError("the images should not be read again")

    images = [texture(), texture()]
    carried = Carried(torch.from_numpy(np.stack(images)), np.zeros(2), ["a", "b"], ["a", "b"])
    carried.signatures = signatures_of(split(images, "x"))
    assert isinstance(signatures_of(carried), Signatures)
    found = find_leakage({"train": carried, "test": split([images[1].copy()], "te")})
    assert found.exact["train→test"] == 1


@pytest.fixture
def leaky_toy(monkeypatch):
    """The toy data set with its first test image copied into train."""
    original = fake_plugins.ToyData.load

    def load(self, params, context):
        bundle = original(self, params, context)
        bundle.splits["train"].images[0] = bundle.splits["test"].images[0]
        return bundle

    monkeypatch.setattr(fake_plugins.ToyData, "load", load)


def run_toy(tmp_path, overrides):
    registry = fake_registry()
    plan = load_plan_text(VALID, overrides, registry=registry, base_dir=tmp_path)
    return Runner(plan, registry, RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None)).run()


def test_a_run_warns_by_default_refuses_with_error_and_skips_with_off(tmp_path, leaky_toy):
    warned = run_toy(tmp_path / "warn", [])
    assert any(w.startswith("data: data leakage across splits: 1 test image has an exact duplicate in train")
               for w in warned.warnings)
    leakage = json.loads((warned.run_dir / "manifest.json").read_text())["dataset"]["leakage"]
    assert leakage["exact_duplicates"]["train→test"] == 1 and leakage["examples"][0]["kind"] == "exact"
    shown = provenance.build(load_report(warned.run_dir))["leakage"]  # the report's data provenance section
    assert shown.startswith("data leakage across splits: 1 test image has an exact duplicate in train")
    with pytest.raises(DataError, match=r"1 test image has an exact duplicate in train.*\(leakage: error; leakage: "
                                        r"warn runs anyway\)"):
        run_toy(tmp_path / "error", ["leakage=error"])
    off = run_toy(tmp_path / "off", ["leakage=off"])
    assert not any("leakage" in w for w in off.warnings)
    assert off.manifest["dataset"]["leakage"]["method"] == "not checked (leakage: off)"
