"""Leakage checks for external evaluation: the test split against the training data the model was built on.

A plan names that data with `leakage: {reference: PATH}`: a folder or manifest (read by the plan's own data set
plugin with the plan's pixel settings), an .npz data set, or a fingerprint file written by `harness fingerprint-data`
(so a vendor can hand over its training set's signatures without the images). A fingerprint holds, per image, the
two signatures of harness.data.leakage: the sha256 of its float32 pixels as loaded (exact) and its normalised
32×32 greyscale thumbnail (perceptual; float16, coarse content but no names, ids or paths). The test split is
matched by harness.data.leakage.match, the rule the in-manifest check uses; a fingerprint file carries no images to
confirm a near duplicate on, so there the thumbnail correlation itself must reach NEAR_CORRELATION.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.leakage import (
    EXAMPLES,
    METHOD,
    NEAR_CORRELATION,
    THUMBNAIL,
    Signatures,
    correlation,
    match,
    signatures_of,
)
from harness.errors import DataError
from harness.storage.atomic import write_bytes_atomic

FORMAT = "harness-fingerprint"
VERSION = 1
FINGERPRINT_METHOD = (f"{METHOD}; against a fingerprint file (no images to confirm on): the thumbnail correlation "
                      f"≥ {NEAR_CORRELATION}")
NOT_PROVIDED = "training data not provided: leakage not checked"


@dataclass
class Fingerprint:
    """Per-image signatures of a reference set, its image shape as loaded, and (when at hand) its images."""

    signatures: Signatures
    image_shape: tuple[int, ...]
    pipeline: dict[str, Any] = field(default_factory=dict)  # how the images were loaded (plugin, size, resize)
    image: Callable[[int], Any] | None = None  # the reference image of a row, to confirm near duplicates on

    def __len__(self) -> int:
        return len(self.signatures.digests)

    def to_bytes(self) -> bytes:
        """The fingerprint file: an uncompressed-header .npz of digests (N×32 bytes), float16 thumbnails and a
        JSON header."""
        header = {"format": FORMAT, "version": VERSION, "n_images": len(self), "image_shape": list(self.image_shape),
                  "thumbnail": THUMBNAIL, "method": METHOD, "pipeline": self.pipeline}
        buffer = io.BytesIO()
        digests = np.frombuffer(b"".join(self.signatures.digests), dtype=np.uint8).reshape(len(self), 32)
        np.savez_compressed(buffer, header=np.array(json.dumps(header, sort_keys=True)), digests=digests,
                            thumbnails=self.signatures.thumbnails.astype(np.float16))
        return buffer.getvalue()

    def save(self, path: Path) -> None:
        """Write the fingerprint file atomically."""
        write_bytes_atomic(path, self.to_bytes())


def is_fingerprint(path: Path) -> bool:
    """Whether `path` is a fingerprint file (an .npz holding a harness-fingerprint header)."""
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return "header" in data.files and json.loads(str(data["header"])).get("format") == FORMAT
    except (OSError, ValueError, json.JSONDecodeError):
        return False


def read_fingerprint(path: Path, shown: str) -> Fingerprint:
    """A fingerprint file (DataError naming it as `shown` when unreadable or of another format)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            digests, thumbnails = data["digests"], data["thumbnails"].astype(np.float32)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise DataError(f"{shown}: not a readable fingerprint file ({type(exc).__name__}); write one with "
                        "harness fingerprint-data") from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise DataError(f"{shown}: not a version-{VERSION} {FORMAT} file")
    if digests.shape != (header["n_images"], 32) or thumbnails.shape != (header["n_images"], THUMBNAIL**2):
        raise DataError(f"{shown}: the fingerprint's arrays do not match its header (a damaged file?)")
    return Fingerprint(Signatures([bytes(row) for row in digests], thumbnails), tuple(header["image_shape"]),
                       header.get("pipeline") or {})


def fingerprint_splits(splits: Mapping[str, Any], names: Sequence[str], pipeline: Mapping[str, Any]) -> Fingerprint:
    """The signatures of the named splits of a loaded data set, in order, with their images for confirmation."""
    chosen = [(name, splits[name]) for name in names if name in splits and len(splits[name])]
    if not chosen:
        raise DataError(f"the reference data has no images in {' or '.join(names)}")
    parts = [signatures_of(split) for _, split in chosen]
    rows = [(split, i) for _, split in chosen for i in range(len(split))]
    first = chosen[0][1][0][0]
    return Fingerprint(Signatures([d for p in parts for d in p.digests], np.concatenate([p.thumbnails for p in parts])),
                       tuple(int(v) for v in first.shape), dict(pipeline),
                       image=lambda k: rows[k][0][rows[k][1]][0])


@dataclass
class ReferenceLeakage:
    """Test images with a duplicate in the reference (the training data the model was built on)."""

    reference: str  # as the plan wrote it (or its content hash)
    n_reference: int
    exact: int
    near: int
    examples: list[dict[str, Any]]
    method: str
    seconds: float = 0.0

    @property
    def n_leaked(self) -> int:
        """Test images with an exact or near duplicate in the reference."""
        return self.exact + self.near

    def summary(self) -> str:
        """One sentence for the cover, warnings and the report."""
        if not self.n_leaked:
            return (f"training data checked ({self.reference}, {self.n_reference} images): no test image duplicates "
                    "a training image")
        return (f"training-data leakage: {self.n_leaked} test image{'s' if self.n_leaked != 1 else ''} duplicate"
                f"{'' if self.n_leaked != 1 else 's'} an image of the training data ({self.reference}): "
                f"{self.exact} exact, {self.near} near (correlation ≥ {NEAR_CORRELATION}); results on them may "
                "be inflated")

    def to_json(self) -> dict[str, Any]:
        """The manifest's `dataset.leakage.reference` and results.json's `dataset.leakage`."""
        return {"reference": self.reference, "n_reference_images": self.n_reference, "leaked_images": self.n_leaked,
                "exact_duplicates": self.exact, "near_duplicates": self.near, "examples": self.examples,
                "method": self.method, "summary": self.summary(), "seconds": round(self.seconds, 3)}


def check_reference(test: Any, reference: Fingerprint, shown: str) -> ReferenceLeakage:
    """Match the test split against the reference by harness.data.leakage.match (DataError naming the fix when the
    two were loaded at other image shapes: exact signatures are of the pixels as loaded)."""
    started = time.perf_counter()
    shape = tuple(int(v) for v in test[0][0].shape) if len(test) else ()
    if shape and tuple(reference.image_shape) != shape:
        raise DataError(f"leakage reference {shown} holds images of shape {'×'.join(map(str, reference.image_shape))}"
                        f" (C×H×W as loaded), this run's test images are {'×'.join(map(str, shape))}: make the "
                        "fingerprint with the plan's pixel settings (harness fingerprint-data DATA --plan PLAN)")
    confirm = None if reference.image is None else \
        (lambda j, i: correlation(test[j][0], reference.image(i)))  # type: ignore[misc]
    found = match(reference.signatures, signatures_of(test), confirm)
    ids = list(test.sample_ids)
    examples = [{"kind": "exact", "reference_row": i, "test": ids[j]} for j, i in list(found.exact.items())[:EXAMPLES]]
    examples += [{"kind": "near", "correlation": round(r, 4), "reference_row": i, "test": ids[j]}
                 for j, (i, r) in list(found.near.items())[:max(EXAMPLES - len(examples), 0)]]
    method = METHOD if reference.image is not None else FINGERPRINT_METHOD
    return ReferenceLeakage(shown, len(reference), len(found.exact), len(found.near), examples, method,
                            time.perf_counter() - started)


def reference_fingerprint(path: Path, shown: str, splits: Sequence[str], plugin: Any, params: Any,
                          context: Any) -> Fingerprint:
    """The reference as a Fingerprint: a fingerprint file read, or a data set loaded by `plugin` with `params`
    (harness.run.reference chooses them from the plan), its `splits` kept."""
    if is_fingerprint(path):
        return read_fingerprint(path, shown)
    try:
        bundle = plugin.load(params, context)
    except DataError as exc:
        raise DataError(f"leakage reference {shown}: {exc.one_line()}") from None
    described = {"plugin": plugin.name, "image_size": getattr(params, "image_size", None),
                 "channels": getattr(params, "channels", None), "splits": list(splits)}
    return fingerprint_splits(bundle.splits, splits, described)


def content_label(path: Path) -> str:
    """A reference named by content: 'sha256:<12 hex digits>' of the file (a folder: of its sorted file list)."""
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
    else:
        for item in sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()):
            digest.update(item.encode())
    return f"sha256:{digest.hexdigest()[:12]}"

