"""The training data a plan names (`leakage: {reference: PATH}`), loaded with the plan's pixel settings and checked
against the test split (harness.data.fingerprints); also what `harness fingerprint-data` loads."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from harness.data.fingerprints import Fingerprint, is_fingerprint, reference_fingerprint
from harness.plan.params import build_dataclass


def reference_loader(path: Path, plugin_name: str, params: Any, registry: Any) -> tuple[Any, Any]:
    """(plugin, params) that read `path` as the plan reads its own data: the plan's data set plugin with the path
    replaced (no metadata columns; the reference's own split column kept), or the npz plugin at the plan's
    image_size for an .npz."""
    if path.suffix.lower() == ".npz" and plugin_name != "npz":
        plugin = registry.get("dataset", "npz")
        values: dict[str, Any] = {"path": str(path), "image_size": getattr(params, "image_size", None)}
        if dataclasses.is_dataclass(getattr(params, "resize", None)):
            values["resize"] = dataclasses.asdict(params.resize)
        return plugin, build_dataclass(plugin.Params, values, "leakage.reference")
    plugin = registry.get("dataset", plugin_name)
    changes: dict[str, Any] = {"path": str(path)}
    if hasattr(params, "metadata_columns"):
        changes["metadata_columns"] = []
    if getattr(params, "split", None) == "all_test":
        changes["split"] = "auto"  # the reference's own split column says what was training data
    return plugin, dataclasses.replace(params, **changes)


def load_reference(path: Path, shown: str, splits: tuple[str, ...], plugin_name: str, params: Any, registry: Any,
                   context: Any) -> Fingerprint:
    """The reference's signatures (a fingerprint file is read as it is)."""
    if is_fingerprint(path):
        return reference_fingerprint(path, shown, splits, None, None, context)
    plugin, reference_params = reference_loader(path, plugin_name, params, registry)
    return reference_fingerprint(path, shown, splits, plugin, reference_params, context)


def training_data_leakage(plan: Any, registry: Any, dataset: Any, context: Any, in_manifest: dict[str, Any],
                          trains: bool) -> dict[str, Any]:
    """What the report's cover and results.json say about the test split against the model's training data: the
    plan's reference when it names one, else the data set's own train/val splits when the run trains on them,
    else not checked. `leaked_images` is the count a `leaked_images` criterion reads (None: not checked)."""
    from harness.data.fingerprints import NOT_PROVIDED, check_reference
    from harness.errors import DataError

    ref = plan.leakage_reference
    if plan.leakage == "off":
        return {"checked": False, "leaked_images": None, "summary": "not checked (leakage: off)"}
    if ref is not None:
        fingerprint = load_reference(ref.path, ref.written, ref.splits, plan.dataset.plugin, plan.dataset.params,
                                     registry, context)
        found = check_reference(dataset.splits["test"], fingerprint, ref.written)
        if found.n_leaked and plan.leakage == "error":
            raise DataError(f"{found.summary()} (leakage: error)")
        digest = hashlib.sha256(b"".join(fingerprint.signatures.digests)).hexdigest()
        return {"checked": True, "against": "reference", **found.to_json(), "reference_sha256": digest}
    if trains and "exact_duplicates" in in_manifest:
        pairs = ("train→test", "val→test")
        n = sum(int(in_manifest["exact_duplicates"].get(p, 0)) + int(in_manifest["near_duplicates"].get(p, 0))
                for p in pairs)
        return {"checked": True, "against": "the data set's train and val splits", "leaked_images": n,
                "summary": (f"training data checked (the data set's train and val splits): {n} test image"
                            f"{'s' if n != 1 else ''} duplicate{'' if n != 1 else 's'} a training image"
                            if n else "training data checked (the data set's train and val splits): no test image "
                            "duplicates a training image")}
    return {"checked": False, "leaked_images": None, "summary": NOT_PROVIDED}
