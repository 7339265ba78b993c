"""Leakage beyond patient ids: the same image, or nearly the same, in two of train, val and test.

Public image sets often hold one picture under two names, or the same scan from two source collections; grouping by
patient cannot see that. Every image gets a signature where its pixels are decoded: the sha256 of its float32
C×H×W pixels as loaded (exact duplicates) and a THUMBNAIL×THUMBNAIL greyscale thumbnail (area average), centred
and scaled to unit length, whose dot products are Pearson correlations. A near duplicate (a re-encoded, rescaled
or slightly edited copy) is an image whose best-matching thumbnail in the other split correlates at CANDIDATE or
more, confirmed by a Pearson correlation of NEAR_CORRELATION or more between the two images as loaded. Measured
on ../shared/datasets: the brain-MRI set's near-duplicate copies correlate at ≥ 0.9997 as loaded, while distinct
segmented LIDC nodules on black backgrounds reach thumbnail correlations of 0.998 but at most 0.995 as loaded.
A split may carry `signatures` computed while it decoded its images (the file readers do); otherwise they are
computed from its images here.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

THUMBNAIL = 32
CANDIDATE = 0.99  # thumbnail correlation that makes a pair a candidate
NEAR_CORRELATION = 0.998  # correlation of the images as loaded that confirms a candidate
PAIRS = (("train", "test"), ("val", "test"), ("train", "val"))  # (earlier, later): images of `later` are counted
EXAMPLES = 20  # de-identified example pairs kept in the manifest
METHOD = (f"exact: sha256 of each image's float32 pixels as loaded; near (not exact): the best {THUMBNAIL}×{THUMBNAIL} "
          f"greyscale-thumbnail match correlates ≥ {CANDIDATE} and the two images as loaded correlate ≥ "
          f"{NEAR_CORRELATION} (Pearson)")
_CHUNK = 2048


@dataclass
class Signatures:
    """Per-image duplicate signatures of one split: pixel digests and normalised thumbnails (N×THUMBNAIL²)."""

    digests: list[bytes]
    thumbnails: np.ndarray  # float32; a flat image's row is zero (it has no correlation with anything)


def digest(image: np.ndarray) -> bytes:
    """sha256 of one image's float32 C×H×W pixels (what the readers also hash into a data set's content hash)."""
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.float32).tobytes()).digest()


def thumbnails(images: torch.Tensor) -> np.ndarray:
    """N×C×H×W images → N×THUMBNAIL² greyscale thumbnails, each centred and scaled to unit length (zero if flat).

    Volumes (N×C×D×H×W) are averaged over depth first; the near-duplicate check then compares whole volumes.
    """
    grey = images.to(torch.float32).mean(dim=1, keepdim=True)
    if grey.ndim == 5:
        grey = grey.mean(dim=2)
    small = F.adaptive_avg_pool2d(grey, THUMBNAIL).flatten(1).to(torch.float64)
    small = small - small.mean(dim=1, keepdim=True)
    norms = small.norm(dim=1, keepdim=True)
    return torch.where(norms > 1e-9, small / norms.clamp_min(1e-12), 0.0).to(torch.float32).numpy()


def thumbnail(image: np.ndarray) -> np.ndarray:
    """One C×H×W image's normalised thumbnail (a row of `thumbnails`)."""
    return thumbnails(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None])[0]


def signatures_of(split: Any, batch_size: int = 256) -> Signatures:
    """The split's own `signatures` when it carries them, else computed from its images (one pass)."""
    carried = getattr(split, "signatures", None)
    if isinstance(carried, Signatures):
        return carried
    digests: list[bytes] = []
    rows: list[np.ndarray] = []
    for images in _image_batches(split, batch_size):
        digests += [digest(image) for image in images.numpy()]
        rows.append(thumbnails(images))
    return Signatures(digests, np.concatenate(rows) if rows else np.zeros((0, THUMBNAIL**2), np.float32))


def _image_batches(split: Any, batch_size: int) -> Iterator[torch.Tensor]:
    stored = getattr(split, "images", None)
    for start in range(0, len(split), batch_size):
        stop = min(start + batch_size, len(split))
        if isinstance(stored, torch.Tensor):
            yield stored[start:stop].to(torch.float32)
        else:
            yield torch.stack([torch.as_tensor(split[i][0], dtype=torch.float32) for i in range(start, stop)])


@dataclass
class Leakage:
    """Duplicates across splits (and exact repeats within one), counted as images of the later split."""

    exact: dict[str, int]  # 'train→test': test images with a byte-identical (pixel-identical) train image
    near: dict[str, int]  # the same for near duplicates that are not exact
    repeats: dict[str, int]  # per split: images whose pixels repeat an earlier image of the same split
    examples: list[dict[str, Any]] = field(default_factory=list)  # de-identified sample ids of some pairs
    seconds: float = 0.0

    @property
    def n_leaked(self) -> int:
        """Images of val or test with a duplicate in an earlier split (exact or near)."""
        return sum(self.exact.values()) + sum(self.near.values())

    def summary(self) -> str | None:
        """One sentence for warnings and errors, or None when no split shares an image with another."""
        if not self.n_leaked:
            return None
        parts = [f"{n} {pair.split('→')[1]} image{'s' if n != 1 else ''} {'have' if n != 1 else 'has'} an exact "
                 f"duplicate in {pair.split('→')[0]}" for pair, n in self.exact.items() if n]
        parts += [f"{n} {pair.split('→')[1]} image{'s' if n != 1 else ''} {'have' if n != 1 else 'has'} a near "
                  f"duplicate in {pair.split('→')[0]}" for pair, n in self.near.items() if n]
        return (f"data leakage across splits: {'; '.join(parts)} (near: correlation ≥ {NEAR_CORRELATION} as loaded); "
                "results on those images may be inflated: put duplicates in one split (e.g. a group column)")

    def to_json(self) -> dict[str, Any]:
        """The manifest's `dataset.leakage` section."""
        return {"summary": self.summary(), "exact_duplicates": self.exact, "near_duplicates": self.near,
                "repeats_within_split": self.repeats, "examples": self.examples, "method": METHOD,
                "seconds": round(self.seconds, 3)}


@dataclass
class Matches:
    """Images of a later set with a duplicate in an earlier one: row → the earlier image's row (and, for near
    duplicates, the confirming correlation)."""

    exact: dict[int, int]
    near: dict[int, tuple[int, float]]

    @property
    def rows(self) -> list[int]:
        """Every matched row of the later set, in order."""
        return sorted({*self.exact, *self.near})


def match(first: Signatures, second: Signatures, confirm: Callable[[int, int], float] | None) -> Matches:
    """The one duplicate rule (METHOD): each image of `second` against the images of `first`. Exact: the same pixel
    digest. Near (not exact): the best thumbnail correlation is ≥ CANDIDATE and `confirm(row, partner)` (the
    correlation of the two images as loaded) is ≥ NEAR_CORRELATION; without images to confirm on (a fingerprint
    file), the thumbnail correlation itself must reach NEAR_CORRELATION."""
    seen: dict[bytes, int] = {}
    for i, d in enumerate(first.digests):
        seen.setdefault(d, i)  # the first of repeated images names the pair
    exact = {j: seen[d] for j, d in enumerate(second.digests) if d in seen}
    best, partner = _best_correlation(second.thumbnails, first.thumbnails)
    near = {}
    for j in np.flatnonzero(best >= CANDIDATE):
        j = int(j)
        if j in exact:
            continue
        r = confirm(j, int(partner[j])) if confirm is not None else float(best[j])
        if r >= NEAR_CORRELATION:
            near[j] = (int(partner[j]), r)
    return Matches(exact, near)


def find_leakage(splits: Mapping[str, Any]) -> Leakage:
    """Count exact and near duplicates across train/val/test (and exact repeats within each split)."""
    started = time.perf_counter()
    signatures = {name: signatures_of(split) for name, split in splits.items() if len(split)}
    ids = {name: list(splits[name].sample_ids) for name in signatures}
    exact, near, examples = {}, {}, []
    for earlier, later in PAIRS:
        if earlier not in signatures or later not in signatures:
            continue
        pair = f"{earlier}→{later}"
        found = match(signatures[earlier], signatures[later],
                      lambda j, i, e=earlier, la=later: correlation(splits[la][j][0], splits[e][i][0]))
        examples += [{"kind": "exact", earlier: ids[earlier][i], later: ids[later][j]}
                     for j, i in list(found.exact.items())[:EXAMPLES - len(examples)]]
        examples += [{"kind": "near", "correlation": round(r, 4), earlier: ids[earlier][i], later: ids[later][j]}
                     for j, (i, r) in list(found.near.items())[:max(EXAMPLES - len(examples), 0)]]
        exact[pair], near[pair] = len(found.exact), len(found.near)
    repeats = {name: len(s.digests) - len(set(s.digests)) for name, s in signatures.items()}
    return Leakage(exact, near, repeats, examples, time.perf_counter() - started)


def correlation(a: Any, b: Any) -> float:
    """Pearson correlation of two images' pixels (0 when either is flat)."""
    x = torch.as_tensor(a, dtype=torch.float64).flatten()
    y = torch.as_tensor(b, dtype=torch.float64).flatten()
    x, y = x - x.mean(), y - y.mean()
    scale = float(x.norm() * y.norm())
    return float(x @ y) / scale if scale > 1e-12 else 0.0


def _best_correlation(rows: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, its largest correlation with any of `others` and that one's index (in chunks of rows)."""
    best = np.full(len(rows), -np.inf, dtype=np.float32)
    partner = np.zeros(len(rows), dtype=np.int64)
    if not len(rows) or not len(others):
        return best, partner
    other = torch.from_numpy(others)
    for start in range(0, len(rows), _CHUNK):
        scores = torch.from_numpy(rows[start:start + _CHUNK]) @ other.T
        value, index = scores.max(dim=1)
        best[start:start + _CHUNK], partner[start:start + _CHUNK] = value.numpy(), index.numpy()
    return best, partner
