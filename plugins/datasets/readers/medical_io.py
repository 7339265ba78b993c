"""Shared machinery of the file-based medical data sets (dicom, image_folder).

Listing (class folders or a manifest CSV), labels, patient grouping, the streaming scan that validates and hashes
every image, the pixel pipeline after decoding (ROI crop, channels, resize), lazy splits and provenance. A plugin
supplies only a `Reader` that lists a file's images and decodes one of them to float32 C×H×W in [0,1], refusing
non-finite values (`finite_or_problem`) before it clips them.

Every file is opened through one `Files` object: it checks the plan's sandbox on the file's real path and names the
file in messages and provenance only as the core's de-identified label (DatasetContext.name_file), never by its
name, which may carry a patient's.

content_sha256 is taken over the pixels as the model sees them: for each split in order, its name, then per
sample the sha256 of its float32 C×H×W bytes (after windowing, crop, channels and resize) and its int64 label,
after the image shape. It changes when a window, size or split changes, and not when files are re-encoded
losslessly or moved.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from harness.data.leakage import Signatures, digest, thumbnail
from harness.data.metadata import UNKNOWN
from harness.data.splits import SPLIT_NAMES, grouped_stratified_split
from harness.errors import DataError, PlanError
from harness.registry.contracts import DatasetBundle, DatasetContext, NativeUnits
from harness.storage.deid import SHOW_PATHS_HINT
from harness_plugins.datasets.common import class_counts, describe_fractions, fractions_from_list, group_counts
from harness_plugins.datasets.readers.geometry import Geometry, ResizeParams, resize  # the one resize home

ROI_COLUMNS = ("roi_x", "roi_y", "roi_size")
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as PIL's convert('L')
CONTENT_HASH = ("sha256 over the image shape, then per split (train, val, test) its name and, per sample, the sha256 "
                "of its float32 C×H×W pixels as loaded (after windowing, crop, channels, resize) and its int64 label")


class FileProblem(Exception):
    """A file that cannot be used; the message is the reason (one line, no paths)."""


@dataclass
class MedicalParams:
    """Settings shared by the dicom and image_folder data sets."""

    path: str  # a folder (class subfolders, or with a labels.csv) or a manifest .csv; relative to the plan
    class_names: list[str] | None = None  # label names in index order; default: folder names / manifest labels
    positive_class: str | None = None  # default: the class with index 1
    image_size: int | None = field(default=None, metadata={"min": 4, "max": 4096})  # square resize
    resize: ResizeParams = field(default_factory=ResizeParams)  # pad (default when the aspect differs), crop, stretch
    channels: Literal[1, 3] = 1
    on_error: Literal["fail", "skip"] = "fail"  # skip: unusable files are listed in provenance['skipped']
    path_column: str = "path"
    label_column: str = "label"
    split: Literal["auto", "all_test"] = "auto"  # all_test: a locked external test set (supplied models only)
    split_column: str = "split"  # used when the manifest has it; otherwise a patient-grouped split
    group_column: str | None = None  # patient/group column; default 'patient_id' when the manifest has it
    split_seed: int | None = None  # default: the plan's seed
    split_fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15], metadata={"min": 0})
    cache_decoded: bool | Literal["auto"] = "auto"  # auto: keep decoded images when they fit cache_limit_mb
    cache_limit_mb: float = field(default=256.0, metadata={"min": 0})
    name: str | None = None  # the data set's name in reports; default: the plugin name
    metadata_columns: list[str] = field(default_factory=list)  # manifest columns given as subgroup attributes

    def __post_init__(self) -> None:
        fractions_from_list(self.split_fractions, "dataset.split_fractions")
        if self.class_names is not None:
            if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
                raise PlanError(f"expected two or more distinct class names, got {self.class_names}",
                                key="dataset.class_names")
            if self.positive_class is not None and self.positive_class not in self.class_names:
                raise PlanError(f"'{self.positive_class}' is not one of class_names {self.class_names}",
                                key="dataset.positive_class")


# ------------------------------------------------------------------------------------------------ listing


@dataclass(frozen=True)
class Entry:
    """One listed file: its path relative to the data root, label, and what the manifest says about it."""

    rel: str
    label: int
    where: str  # for messages: the manifest line, or the file's de-identified label
    group: str | None = None
    split: str | None = None
    roi: tuple[int, int, int] | None = None  # centre x (column), centre y (row), side length
    metadata: tuple[tuple[str, str], ...] = ()  # (column, value) of the plan's metadata_columns


@dataclass
class Listing:
    """Every file the data set lists, with its class names and how patients and splits were found."""

    root: Path
    manifest: Path | None
    entries: list[Entry]
    class_names: list[str]
    grouping: str
    has_splits: bool


def resolve_source(text: str, base_dir: Path) -> tuple[Path, Path | None]:
    """The data root and the manifest CSV (the given .csv, or <folder>/labels.csv when present)."""
    path = Path(os.path.expanduser(text))
    path = Path(os.path.abspath(path if path.is_absolute() else base_dir / path))
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(f"{text}: expected a folder or a manifest .csv file")
        return path.parent, path
    if path.is_dir():
        manifest = path / "labels.csv"
        return path, (manifest if manifest.is_file() else None)
    raise DataError(f"data path {text} does not exist" + ("" if Path(text).is_absolute() else
                                                          " (relative to the plan's folder)"))


def list_source(plugin: str, params: MedicalParams, context: DatasetContext, accept: Callable[[Path], bool],
                default_grouping: str) -> Listing:
    """List the data set's files from its manifest or its class folders."""
    root, manifest = resolve_source(params.path, context.base_dir)
    if manifest is not None:
        return _manifest_listing(plugin, params, root, manifest, default_grouping, context.name_file)
    if params.metadata_columns:
        raise PlanError(f"metadata_columns {params.metadata_columns} name columns of a manifest CSV, but "
                        f"{params.path} is a folder without labels.csv", key="dataset.metadata_columns")
    return _folder_listing(plugin, params, root, accept, default_grouping, context.name_file)


def _folder_listing(plugin: str, params: MedicalParams, root: Path, accept: Callable[[Path], bool],
                    default_grouping: str, name: Callable[[str], str]) -> Listing:
    """root/<class>/**/<file>: the class is the first folder under the root."""
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and accept(p) and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not rels:
        raise DataError(f"{plugin}: no matching files under {params.path}")
    loose = [r for r in rels if "/" not in r]
    if loose:
        raise DataError(f"{plugin}: {name(loose[0])} under {params.path} is not inside a class folder; put files "
                        "in <root>/<class>/ or give a manifest CSV (path,label)")
    folders = sorted({r.split("/", 1)[0] for r in rels})
    names = list(params.class_names or folders)
    for folder in folders:
        if folder not in names:
            raise DataError(f"{plugin}: folder '{folder}' under {params.path} is not one of the classes {names}")
    entries = [Entry(rel, names.index(rel.split("/", 1)[0]), where=name(rel)) for rel in rels]
    return Listing(root, None, entries, names, default_grouping, has_splits=False)


def _manifest_listing(plugin: str, params: MedicalParams, root: Path, manifest: Path,
                      default_grouping: str, name: Callable[[str], str]) -> Listing:
    """Rows of a manifest CSV: path (relative to the CSV), label, optional patient, split and ROI columns."""
    header, rows = _read_csv(manifest)
    for column in (params.path_column, params.label_column):
        if column not in header:
            raise DataError(f"{manifest}: no '{column}' column (columns: {', '.join(header)})")
    for column in params.metadata_columns:
        if column not in header:
            raise DataError(f"{manifest}: no '{column}' column for metadata_columns (columns: {', '.join(header)})")
    if params.group_column and params.group_column not in header:
        raise DataError(f"{manifest}: no '{params.group_column}' column for group_column "
                        f"(columns: {', '.join(header)})")
    group_column = params.group_column or ("patient_id" if "patient_id" in header else None)
    split_column = params.split_column if params.split_column in header else None
    roi = all(c in header for c in ROI_COLUMNS)
    names = list(params.class_names or _infer_classes([row[params.label_column] for _, row in rows]))
    entries, seen = [], {}
    for line, row in rows:
        where = f"{manifest} line {line}"
        entry = Entry(
            rel=_relative(row[params.path_column], root, where, name),
            label=_label(row[params.label_column], names, where),
            where=where,
            group=(row.get(group_column) or "").strip() or None if group_column else None,
            split=_split_value(row[split_column], where) if split_column else None,
            roi=_roi(row, where) if roi else None,
            metadata=tuple((column, row.get(column, "")) for column in params.metadata_columns))
        key = (entry.rel, entry.roi)
        if key in seen:
            raise DataError(f"{where}: repeats line {seen[key]} (same file and ROI)")
        seen[key] = line
        entries.append(entry)
    if not entries:
        raise DataError(f"{manifest}: the manifest lists no files")
    grouping = f"manifest column '{group_column}'" if group_column else default_grouping
    return Listing(root, manifest, entries, names, grouping, has_splits=split_column is not None)


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and (line number, row) pairs; blank rows are ignored."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
                    for row in reader if any((v or "").strip() for v in row.values() if isinstance(v, str))]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the manifest: {exc}") from None
    return header, rows


def _infer_classes(labels: Sequence[str]) -> list[str]:
    """Distinct manifest labels, numerically sorted when they are all integers."""
    values = sorted(set(labels))
    if all(re.fullmatch(r"-?\d+", v) for v in values):
        return sorted(values, key=int)
    return values


def _label(value: str, names: Sequence[str], where: str) -> int:
    """A class name or an integer index into the plan's classes."""
    if value in names:
        return names.index(value)
    if re.fullmatch(r"\d+", value) and int(value) < len(names):
        return int(value)
    raise DataError(f"{where}: label {value!r} is not one of the classes {list(names)} "
                    f"(or an index 0..{len(names) - 1})")


def _split_value(value: str, where: str) -> str:
    split = value.strip().lower()
    if split not in SPLIT_NAMES:
        raise DataError(f"{where}: split {value!r} is not one of {', '.join(SPLIT_NAMES)}")
    return split


def _roi(row: dict[str, str], where: str) -> tuple[int, int, int] | None:
    values = [row[c] for c in ROI_COLUMNS]
    if not any(values):
        return None
    try:
        x, y, size = (int(round(float(v))) for v in values)
    except ValueError:
        raise DataError(f"{where}: {', '.join(ROI_COLUMNS)} must all be numbers, got {values}") from None
    if size < 1:
        raise DataError(f"{where}: roi_size must be ≥ 1, got {size}")
    return x, y, size


def _relative(value: str, root: Path, where: str, name: Callable[[str], str]) -> str:
    """A manifest path as a POSIX path relative to the data root; paths leaving the root are refused."""
    if not value:
        raise DataError(f"{where}: empty path")
    full = Path(os.path.normpath(Path(value) if Path(value).is_absolute() else root / value))
    try:
        return full.relative_to(root).as_posix()
    except ValueError:
        raise DataError(f"{where}: the path of {name(value)} is outside the data folder (the manifest's folder)"
                        ) from None


# ------------------------------------------------------------------------------------------------ pixels


def crop_roi(image: np.ndarray, roi: tuple[int, int, int] | None) -> np.ndarray:
    """A roi_size square centred on (roi_x, roi_y), whose centre must lie in the image; parts of the square outside
    the image are black (0), as when a lesion lies near the image's edge."""
    if roi is None:
        return image
    x, y, size = roi
    channels, height, width = image.shape
    if not (0 <= x < width and 0 <= y < height):
        raise FileProblem(f"the ROI centre (roi_x={x}, roi_y={y}) lies outside the image ({width}×{height}, "
                          f"width×height: roi_x must be 0..{width - 1}, roi_y 0..{height - 1})")
    top, left = y - size // 2, x - size // 2
    out = np.zeros((channels, size, size), dtype=np.float32)
    y0, y1, x0, x1 = max(top, 0), min(top + size, height), max(left, 0), min(left + size, width)
    if y0 < y1 and x0 < x1:
        out[:, y0 - top:y1 - top, x0 - left:x1 - left] = image[:, y0:y1, x0:x1]
    return out


def finite_or_problem(values: np.ndarray) -> np.ndarray:
    """`values` unchanged; FileProblem when any is NaN or ±Inf (a reader calls it before clipping, which would
    hide an Inf as 0 or 1)."""
    bad = values.size - int(np.count_nonzero(np.isfinite(values)))
    if bad:
        raise FileProblem(f"the pixel data contain {bad} NaN or Inf value{'s' if bad != 1 else ''} "
                          f"(of {values.size})")
    return values


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """1 → 3 by repetition, 3 → 1 by BT.601 luma."""
    if image.shape[0] == channels:
        return image
    if channels == 3:
        return np.repeat(image[:1], 3, axis=0)
    return np.tensordot(LUMA, image[:3], axes=1)[None].astype(np.float32)


@dataclass(frozen=True)
class Pipeline:
    """What happens to every decoded image: ROI crop, channel conversion, resize (harness_plugins.datasets.readers
    .geometry: pad, crop or stretch, counted in `geometry`)."""

    image_size: int | None
    channels: int
    resize: ResizeParams = field(default_factory=ResizeParams)
    geometry: Geometry | None = None

    def __call__(self, image: np.ndarray, roi: tuple[int, int, int] | None) -> np.ndarray:
        image = to_channels(crop_roi(image, roi), self.channels)
        if self.geometry is not None:
            self.geometry.record(image.shape[1], image.shape[2])
        return np.ascontiguousarray(resize(image, self.image_size, self.resize), dtype=np.float32)


# ------------------------------------------------------------------------------------------------ scan


@dataclass
class FileInfo:
    """What a reader found in a file's header: its images (frames), default patient, stable key and notes."""

    frames: list[int | None]
    group: str | None = None
    key: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    subgroups: dict[str, str] = field(default_factory=dict)  # bucketed header attributes (never names or ids)


class Reader(Protocol):
    """A file format: inspect a file's header, and decode one image to float32 C×H×W in [0,1]."""

    def inspect(self, path: Path) -> FileInfo: ...

    def read(self, path: Path, frame: int | None) -> np.ndarray: ...


@dataclass
class Sample:
    """One image of the data set after the scan (pixels are not kept here)."""

    entry: Entry
    frame: int | None
    key: str | None
    group_raw: str
    digest: bytes
    thumbnail: np.ndarray  # for the core's duplicate search (harness.data.leakage)
    subgroups: dict[str, str] = field(default_factory=dict)  # header attributes, then the manifest's columns


@dataclass
class Scan:
    """The result of the streaming pass over every file."""

    samples: list[Sample]
    skipped: list[dict[str, str]]
    shape: tuple[int, int, int]
    metas: list[dict[str, Any]]
    n_files: int
    cache: list[np.ndarray | None] | None


@dataclass(frozen=True)
class Files:
    """The one way to a data set's files: the sandbox check on each file's real path, decoding, the pipeline, and
    the de-identified label that names a file in messages and provenance."""

    plugin: str
    root: Path
    reader: Reader
    pipeline: Pipeline
    context: DatasetContext
    escaping: set[str] = field(default_factory=set)  # files whose real path leaves the data folder (symlinks)

    def name(self, rel: str) -> str:
        """The file's de-identified label (with its folder-relative path only when the plan says show_paths)."""
        return self.context.name_file(rel)

    def path(self, rel: str) -> Path:
        """The file's real path; DataError when the plan's sandbox is on and it leads outside (never skipped)."""
        try:
            real = self.context.check_file(self.root / rel, rel)
        except DataError as exc:
            raise DataError(f"{self.plugin}: {exc}") from None
        if not Path(real).is_relative_to(os.path.realpath(self.root)):
            self.escaping.add(rel)  # followed (no sandbox): recorded in provenance and warned about
        return real

    def inspect(self, rel: str) -> FileInfo:
        """The reader's look at the file's header."""
        return self.reader.inspect(self.path(rel))

    def image(self, rel: str, frame: int | None, roi: tuple[int, int, int] | None) -> np.ndarray:
        """One image as the model sees it: decoded (finite, in [0,1]), cropped, converted and resized."""
        return self.pipeline(self.reader.read(self.path(rel), frame), roi)

    def hint(self) -> str:
        """How to see a named file's path, for error messages (empty when paths are shown)."""
        return "" if self.context.show_paths else f" ({SHOW_PATHS_HINT})"


class _Cache:
    """Decoded images kept during the scan: all (true), none (false), or while under the limit (auto)."""

    def __init__(self, mode: bool | str, limit_mb: float, n_entries: int) -> None:
        self.mode, self.limit, self.n_entries, self.bytes = mode, limit_mb * 2**20, n_entries, 0
        self.images: list[np.ndarray | None] | None = [] if mode is not False else None

    def add(self, image: np.ndarray, per_file: int) -> None:
        """Keep `image`, or drop the cache once auto mode (or its first estimate) exceeds the limit."""
        if self.images is None:
            return
        if self.mode == "auto" and not self.images and image.nbytes * per_file * self.n_entries > self.limit:
            self.images = None  # the estimate from the first file already exceeds the limit: stream throughout
            return
        self.images.append(image)
        self.bytes += image.nbytes
        if self.mode == "auto" and self.bytes > self.limit:
            self.images = None


def scan(plugin: str, params: MedicalParams, listing: Listing, files: Files) -> Scan:
    """Decode every image once, streaming: validate, hash, and keep pixels only if caching."""
    samples: list[Sample] = []
    skipped: list[dict[str, str]] = []
    metas: list[dict[str, Any]] = []
    cache = _Cache(params.cache_decoded, params.cache_limit_mb, len(listing.entries))
    first: tuple[str, tuple[int, ...]] | None = None
    for entry in listing.entries:
        try:
            info = files.inspect(entry.rel)
            images = [(frame, files.image(entry.rel, frame, entry.roi)) for frame in info.frames]
        except FileProblem as problem:
            if params.on_error == "fail":
                where = f"{entry.where}, {files.name(entry.rel)}" if listing.manifest else \
                    f"{files.name(entry.rel)}"  # a manifest's line is how its author finds the file
                hint = "" if listing.manifest else files.hint()
                raise DataError(f"{plugin}: {where}: {problem}{hint}") from None
            skipped.append({"file": files.name(entry.rel), "reason": str(problem)})
            continue
        metas.append({**info.meta, "roi_size": entry.roi[2] if entry.roi else None})
        group = entry.group or info.group or f"file:{entry.rel}"
        for frame, image in images:
            first = first or (entry.rel, image.shape)
            _check_size(plugin, files, entry.rel, image.shape, *first)
            samples.append(Sample(entry, frame, info.key, group, digest(image), thumbnail(image),
                                  {**info.subgroups, **dict(entry.metadata)}))
            cache.add(image, len(images))
    if not samples:
        hint = f"; all {len(skipped)} files were skipped, e.g. {skipped[0]['file']}: {skipped[0]['reason']}" \
            if skipped else ""
        raise DataError(f"{plugin}: no usable images under {params.path}{hint}")
    return Scan(samples, skipped, tuple(first[1]), metas, len(metas), cache.images)


def _check_size(plugin: str, files: Files, rel: str, shape: tuple[int, ...], first: str,
                first_shape: tuple[int, ...]) -> None:
    if shape != first_shape:
        raise DataError(f"{plugin}: {files.name(rel)} is {_size(shape)} but {files.name(first)} is "
                        f"{_size(first_shape)}; set image_size to resize every image to one size")


def _size(shape: Sequence[int]) -> str:
    return f"{shape[-1]}×{shape[-2]} (width×height, {shape[0]} channel{'s' if shape[0] > 1 else ''})"


def short_reason(exc: BaseException, *paths: Path) -> str:
    """An exception as one short line, without the file paths or names it may quote (they can carry PHI)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for path in paths:
        text = text.replace(str(path), "<file>").replace(Path(path).name, "<file>")
    return text if len(text) <= 300 else text[:297] + "..."


# ------------------------------------------------------------------------------------------------ splits


class LazySplit(torch.utils.data.Dataset):
    """A split that decodes each image on demand, or serves it from the decoded cache (`images`).

    `signatures` (harness.data.leakage) were computed while the scan decoded the images, so the core's duplicate
    search does not decode them again."""

    def __init__(self, files: Files, samples: Sequence[Sample], sample_ids: Sequence[str], group_ids: Sequence[str],
                 shape: tuple[int, int, int], images: torch.Tensor | None = None) -> None:
        self.files, self.shape = files, shape
        self.items = [(s.entry.rel, s.frame, s.entry.roi) for s in samples]
        self.metadata = sample_metadata(samples)
        self.labels = np.asarray([s.entry.label for s in samples], dtype=np.int64)
        self.sample_ids, self.group_ids = list(sample_ids), list(group_ids)
        self.images = images  # N×C×H×W when cached (the training loop's fast path), else None
        self.signatures = Signatures([s.digest for s in samples],
                                     np.stack([s.thumbnail for s in samples]) if samples else
                                     np.zeros((0, 0), dtype=np.float32))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.images is not None:
            return self.images[index], int(self.labels[index])
        rel, frame, roi = self.items[index]
        try:
            image = self.files.image(rel, frame, roi)
        except FileProblem as problem:
            raise DataError(f"{self.files.name(rel)}: {problem} (it was readable when the data set was loaded)"
                            f"{self.files.hint()}") from None
        if image.shape != self.shape:
            raise DataError(f"{self.files.name(rel)}: now {_size(image.shape)}, was {_size(self.shape)} when the "
                            f"data set was loaded{self.files.hint()}")
        return torch.from_numpy(image), int(self.labels[index])


def sample_metadata(samples: Sequence[Sample]) -> dict[str, list[str]]:
    """Subgroup attributes per sample (harness.registry.contracts.Split.metadata); 'unknown' where missing."""
    names = sorted({name for s in samples for name in s.subgroups})
    return {name: [s.subgroups.get(name) or UNKNOWN for s in samples] for name in names}


def assign_splits(plugin: str, params: MedicalParams, listing: Listing, samples: Sequence[Sample],
                  group_ids: Sequence[str], seed: int) -> tuple[np.ndarray, str]:
    """Per-sample split names (from the manifest, or grouped and stratified) and how they were made."""
    if params.split == "all_test":
        assigned = sorted({s.entry.split for s in samples if s.entry.split not in (None, "test")})
        if assigned:
            raise PlanError(f"split: all_test, but the manifest's '{params.split_column}' column puts rows in "
                            f"{' and '.join(assigned)}; remove one of the two", key="dataset.split")
        assignment = np.array(["test"] * len(samples))
        method = "all rows are test (split: all_test)"
    elif listing.has_splits:
        assignment = np.array([s.entry.split for s in samples])
        method = f"from the manifest's '{params.split_column}' column ({listing.manifest.name})"
    else:
        fractions = fractions_from_list(params.split_fractions, "dataset.split_fractions")
        labels = [s.entry.label for s in samples]
        assignment = grouped_stratified_split(labels, group_ids, seed, fractions)
        method = (f"patient-grouped, label-stratified (harness.data.splits.grouped_stratified_split, seed {seed}, "
                  f"fractions {describe_fractions(fractions)})")
    if not np.any(assignment == "test"):
        raise DataError(f"{plugin}: the test split is empty ({method}); add data, change the split, or use "
                        "split: all_test for a test-only set")
    return assignment, method


# ------------------------------------------------------------------------------------------------ bundle


def load_bundle(plugin: str, params: MedicalParams, context: DatasetContext, reader: Reader,
                accept: Callable[[Path], bool], default_grouping: str,
                describe: Callable[[Scan], tuple[NativeUnits | None, dict[str, Any]]]) -> DatasetBundle:
    """List, scan, split and wrap a file-based data set; `describe` adds native units and format provenance."""
    listing = list_source(plugin, params, context, accept, default_grouping)
    geometry = Geometry(params.image_size, params.resize)
    files = Files(plugin, listing.root, reader, Pipeline(params.image_size, params.channels, params.resize, geometry),
                  context)
    result = scan(plugin, params, listing, files)
    resized = geometry.to_json()  # the scan's images only (a lazy split decodes them again later)
    _check_classes(plugin, listing, result.samples)
    sample_ids = _sample_ids(result.samples)
    group_ids = [str(s.group_raw) for s in result.samples]
    seed = context.seed if params.split_seed is None else params.split_seed
    assignment, method = assign_splits(plugin, params, listing, result.samples, group_ids, seed)
    splits = {}
    for name in SPLIT_NAMES:
        idx = np.flatnonzero(assignment == name)
        images = _stack(result.cache, idx, result.shape)
        splits[name] = LazySplit(files, [result.samples[i] for i in idx], [sample_ids[i] for i in idx],
                                 [group_ids[i] for i in idx], result.shape, images)
    native_units, extra = describe(result)
    provenance = {
        "source": params.path,
        "manifest": listing.manifest.name if listing.manifest else None,
        "content_sha256": content_sha256(result, assignment),
        "content_hash": CONTENT_HASH,
        "counts": class_counts(splits, listing.class_names),
        "patients": group_counts(splits),
        "n_samples": len(result.samples),
        "n_files": result.n_files,
        "image_shape": list(result.shape),
        "split_method": method,
        "grouping": listing.grouping,
        "skipped": result.skipped,
        "n_skipped": len(result.skipped),
        "cache_decoded": result.cache is not None,
        "geometry": resized,
        "escaping_links": sorted(files.name(rel) for rel in files.escaping),
        **extra,
    }
    return DatasetBundle(name=params.name or plugin, class_names=list(listing.class_names), splits=splits,
                         provenance=provenance, native_units=native_units,
                         positive_class=_positive(params, listing.class_names))


def _check_classes(plugin: str, listing: Listing, samples: Sequence[Sample]) -> None:
    counts = Counter(s.entry.label for s in samples)
    for k, name in enumerate(listing.class_names):
        if counts[k] == 0:
            raise DataError(f"{plugin}: class '{name}' has no images under {listing.root}"
                            + (" (after skipping unusable files)" if len(samples) < len(listing.entries) else ""))


def _sample_ids(samples: Sequence[Sample]) -> list[str]:
    """Each file's stable key (e.g. SOPInstanceUID) when unique, else its relative path (hashed by the core)."""
    keys = Counter(s.key for s in samples if s.key)
    ids = []
    for s in samples:
        base = s.key if s.key and keys[s.key] == 1 else f"path:{s.entry.rel}"
        if s.frame is not None:
            base += f"#frame{s.frame}"
        if s.entry.roi is not None:
            base += "#roi{},{},{}".format(*s.entry.roi)
        ids.append(base)
    return ids


def _stack(cache: list[np.ndarray | None] | None, idx: np.ndarray,
           shape: tuple[int, int, int]) -> torch.Tensor | None:
    """One split's cached images as a tensor; each array is released once copied (peak ≈ cache + one split)."""
    if cache is None:
        return None
    images = torch.empty((len(idx), *shape), dtype=torch.float32)
    for row, i in enumerate(idx):
        images[row] = torch.from_numpy(cache[i])
        cache[i] = None
    return images


def content_sha256(result: Scan, assignment: np.ndarray) -> str:
    """See the module docstring: shape, then per split its name and each sample's pixel digest and label."""
    digest = hashlib.sha256(repr(tuple(result.shape)).encode())
    for name in SPLIT_NAMES:
        digest.update(name.encode())
        for i in np.flatnonzero(assignment == name):
            digest.update(result.samples[i].digest)
            digest.update(np.int64(result.samples[i].entry.label).tobytes())
    return digest.hexdigest()


def _positive(params: MedicalParams, class_names: Sequence[str]) -> int:
    if params.positive_class is None:
        return 1 if len(class_names) > 1 else 0
    if params.positive_class not in class_names:
        raise PlanError(f"'{params.positive_class}' is not one of the classes {list(class_names)}",
                        key="dataset.positive_class")
    return list(class_names).index(params.positive_class)


def tally(metas: Sequence[dict[str, Any]], key: str) -> dict[str, int]:
    """How many files had each value of one meta field, e.g. transfer syntaxes."""
    return dict(sorted(Counter(str(m.get(key)) for m in metas).items()))
