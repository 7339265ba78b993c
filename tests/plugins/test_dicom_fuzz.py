"""Fuzzing the dicom data set: truncated and bit-flipped real files decode or give a one-line DataError naming the file.

Sources: ../shared/datasets/dicom_samples (always present: a missing file fails) and compressed files shipped inside
pydicom. Each corrupted copy is loaded on its own with on_error: fail (beside two valid files that make the splits),
then all copies of one source together with on_error: skip, which must list exactly the copies that failed alone.

Native decoders can abort the whole process on corrupt input (a C++ `terminate`, a Rust panic), so the loads run in
a worker process (this file run as a script); a worker that dies is restarted after the input that killed it, and
that input is reported as a crash instead of taking pytest down with it.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import SHARED_DATASETS, TESTS, require_shared

SHARED_DICOM = SHARED_DATASETS / "dicom_samples"
SHARED = ["CT_small.dcm", "MR_small.dcm"]
PYDICOM = ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm",
           "MR_small_implicit.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_gdcm.dcm",
           "693_J2KI.dcm"]
SOURCES = SHARED + PYDICOM
IMAGE_SIZE = 16
N_FLIPPED = 16
WORKER_TIMEOUT = 300  # seconds for one worker process (all remaining jobs)


# ------------------------------------------------------------------------------------------------ inputs


def source_path(name: str) -> Path:
    """A shared sample (absence fails, never skips) or a file shipped inside pydicom (never downloaded)."""
    if name in SHARED:
        path = require_shared(SHARED_DICOM / name)
        assert path.is_file(), f"missing {path}: the shared data sets must sit beside the repository"
        return path
    from pydicom.data import get_testdata_file

    found = get_testdata_file(name, download=False)
    assert found, f"pydicom no longer ships {name}"
    return Path(found)


def truncation_offsets(size: int) -> list[int]:
    """Offsets around the preamble, 'DICM' and the file meta, evenly through the file, and just before its end."""
    fixed = {0, 1, 64, 128, 130, 132, 133, 140, 160, 200, 300, 500, size - 64, size - 16, size - 2, size - 1}
    spread = {int(x) for x in np.linspace(0, size, 14, endpoint=False)}
    return sorted(o for o in fixed | spread if 0 <= o < size)


def bit_flips(data: bytes, seed: int, n: int | None = None) -> list[tuple[bytes, str]]:
    """Seeded corruptions (bit flips anywhere or in the header, random byte overwrites), each with a description."""
    rng = np.random.default_rng(seed)
    n = N_FLIPPED if n is None else n
    header = min(len(data), 1024)
    out = []
    for k in range(n):
        buffer, edits = bytearray(data), []
        span = header if k % 2 else len(data)  # every other copy: corrupt the header, where parsing happens
        for _ in range((1, 2, 8, 32)[k % 4]):
            position = int(rng.integers(0, span))
            old = buffer[position]
            buffer[position] = int(rng.integers(0, 256)) if k % 3 == 2 else old ^ (1 << int(rng.integers(0, 8)))
            edits.append(f"{position}:{old:#04x}->{buffer[position]:#04x}")
        out.append((bytes(buffer), "bytes " + ",".join(edits)))
    return out


@dataclass(frozen=True)
class Variant:
    """One corrupted copy of a source file."""

    name: str  # file name in the work folder
    source: str
    kind: str  # 'trunc' or 'flip'
    how: str  # e.g. 'truncated at byte 132' or 'bytes 17:0x44->0x45'

    @property
    def id(self) -> str:
        """The job id of loading this copy alone."""
        return self.name.removesuffix(".dcm")


def make_variants(folder: Path) -> list[Variant]:
    """Write every corrupted copy of every source into `folder`."""
    variants = []
    for source in SOURCES:
        data = source_path(source).read_bytes()
        stem = Path(source).stem
        copies = [(data[:o], "trunc", f"truncated at byte {o} of {len(data)}") for o in truncation_offsets(len(data))]
        copies += [(d, "flip", how) for d, how in bit_flips(data, sum(source.encode()))]
        for k, (content, kind, how) in enumerate(copies):
            variant = Variant(f"{kind}_{stem}_{k}.dcm", source, kind, how)
            (folder / variant.name).write_bytes(content)
            variants.append(variant)
    return variants


# ------------------------------------------------------------------------------------------------ worker


def write_manifest(folder: Path, name: str, files: list[str]) -> Path:
    """Two valid files (one per class and split) plus `files` (class a, train), one patient each."""
    rows = [{"path": "valid0.dcm", "label": "a", "split": "train", "patient_id": "v0"},
            {"path": "valid1.dcm", "label": "b", "split": "test", "patient_id": "v1"}]
    rows += [{"path": f, "label": "a", "split": "train", "patient_id": f"x{k}"} for k, f in enumerate(files)]
    path = folder / name
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split", "patient_id"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def window_for(source: Path) -> str:
    """The file's own window where the source has one (exercises the window parsing), else min..max."""
    import pydicom

    return "file" if "WindowWidth" in pydicom.dcmread(source, stop_before_pixels=True) else "minmax"


def load(manifest: Path, window: str, on_error: str) -> Any:
    from harness.plan.params import build_dataclass
    from harness.registry.contracts import DatasetContext
    from harness_plugins.datasets.readers.dicom import DicomDataset

    plugin = DicomDataset()
    params = build_dataclass(plugin.Params, {"path": str(manifest), "window": window, "image_size": IMAGE_SIZE,
                                             "channels": 1, "on_error": on_error, "frames": "all"}, "dataset")
    context = DatasetContext(seed=0, base_dir=manifest.parent, cache_dir=manifest.parent, show_paths=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about many corruptions before it raises or recovers
        return plugin.load(params, context)


def image_problem(bundle: Any) -> str | None:
    """Why a successfully loaded bundle is still wrong (non-finite, outside [0,1], wrong shape), or None."""
    for split in bundle.splits.values():
        for i in range(len(split)):
            image = split[i][0].numpy()
            if image.shape != (1, IMAGE_SIZE, IMAGE_SIZE):
                return f"image shape {image.shape}"
            if not (np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1):
                return "pixels outside [0,1] or not finite"
    return None


def run_job(folder: Path, job: dict[str, Any]) -> dict[str, Any]:
    """One load: {'outcome': decoded | data_error | crash, 'detail', 'skipped'}."""
    from harness.errors import DataError

    files = job["files"]
    manifest = write_manifest(folder, f"{job['id']}.csv", files)
    try:
        bundle = load(manifest, job["window"], job["on_error"])
        problem = image_problem(bundle)
        if problem:
            return {"outcome": "crash", "detail": f"decoded to a bad image: {problem}"}
        return {"outcome": "decoded", "skipped": bundle.provenance["skipped"]}
    except DataError as exc:
        return {"outcome": "data_error", "detail": str(exc)}
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - Rust panics (pyo3 PanicException) are BaseExceptions
        return {"outcome": "crash", "detail": f"{type(exc).__module__}.{type(exc).__name__}: "
                                              f"{' '.join(str(exc).split())[:300]}"}


def worker(folder: Path) -> None:
    """Run the jobs of jobs.json not yet in results.jsonl, logging each start so a fatal abort is attributed."""
    jobs = json.loads((folder / "jobs.json").read_text())
    results = folder / "results.jsonl"
    done = {json.loads(line)["id"] for line in results.read_text().splitlines()} if results.exists() else set()
    with open(results, "a") as out:
        for job in jobs:
            if job["id"] in done:
                continue
            (folder / "started").write_text(job["id"])
            out.write(json.dumps({"id": job["id"], **run_job(folder, job)}) + "\n")
            out.flush()


def run_isolated(folder: Path, jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Run `jobs` in worker processes, restarting after any that kills its process; results by job id."""
    (folder / "jobs.json").write_text(json.dumps(jobs))
    results = folder / "results.jsonl"
    results.unlink(missing_ok=True)
    for _ in range(len(jobs) + 1):
        (folder / "started").unlink(missing_ok=True)
        try:
            proc = subprocess.run([sys.executable, __file__, str(folder)], capture_output=True, text=True,
                                  timeout=WORKER_TIMEOUT, env={**os.environ, "PYTHONPATH": str(TESTS)})
            died = None if proc.returncode == 0 else f"the process died (exit {proc.returncode}): " + \
                " ".join(proc.stderr.split())[-300:]
        except subprocess.TimeoutExpired:
            died = f"no result within {WORKER_TIMEOUT} s (hang)"
        if died is None:
            break
        started = folder / "started"
        assert started.exists(), died
        with open(results, "a") as out:
            out.write(json.dumps({"id": started.read_text(), "outcome": "crash", "fatal": True, "detail": died}) + "\n")
    return {r["id"]: r for r in map(json.loads, results.read_text().splitlines())}


# ------------------------------------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def fuzz_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Variant], dict[str, dict[str, Any]]]:
    """Every variant loaded alone (fail), then each source's variants together (skip)."""
    folder = tmp_path_factory.mktemp("dicom_fuzz")
    valid = source_path("MR_small.dcm").read_bytes()
    for i in range(2):
        (folder / f"valid{i}.dcm").write_bytes(valid)
    variants = make_variants(folder)
    windows = {s: window_for(source_path(s)) for s in SOURCES}
    alone = run_isolated(folder, [{"id": v.id, "files": [v.name], "window": windows[v.source], "on_error": "fail"}
                                  for v in variants])
    fatal = {v.name for v in variants if alone[v.id].get("fatal")}  # would kill the skip-mode worker too
    together = run_isolated(folder, [{"id": f"all_{kind}_{Path(s).stem}", "window": windows[s], "on_error": "skip",
                                      "files": [v.name for v in variants if v.source == s and v.kind == kind
                                                and v.name not in fatal]}
                                     for s in SOURCES for kind in ("trunc", "flip")])
    return variants, {**alone, **together}


def check_source(fuzz_results: Any, source: str, kind: str) -> None:
    """No crash; each DataError is one line naming the file; skip mode skips exactly the files that failed alone."""
    variants, results = fuzz_results
    mine = [v for v in variants if v.source == source and v.kind == kind]
    crashes = [f"{v.name} ({v.how[:160]}): {results[v.id]['detail']}" for v in mine
               if results[v.id]["outcome"] == "crash"]
    assert not crashes, f"{len(crashes)} of {len(mine)} corrupted copies of {source} crash the loader:\n" + \
        "\n".join(crashes)
    failed = set()
    for v in mine:
        result = results[v.id]
        if result["outcome"] == "data_error":
            message = result["detail"]
            assert "\n" not in message and "\r" not in message, message
            assert v.name in message, f"the error does not name the file: {message}"
            failed.add(v.name)
    together = results[f"all_{kind}_{Path(source).stem}"]
    assert together["outcome"] == "decoded", together
    skipped = {entry["file"].split("(", 1)[1].rstrip(")") for entry in together["skipped"]}  # 'file <hash> (name)'
    assert skipped == failed, sorted(skipped ^ failed)
    assert all("\n" not in entry["reason"] and entry["reason"] for entry in together["skipped"])
    if kind == "trunc":
        assert mine[0].how.startswith("truncated at byte 0 ") and mine[0].name in failed  # the empty file
        assert len(failed) >= len(mine) // 2


@pytest.mark.parametrize("source", SOURCES)
def test_truncated_copies_decode_or_fail_cleanly(source, fuzz_results):
    check_source(fuzz_results, source, "trunc")


@pytest.mark.parametrize("source", SOURCES)
def test_bit_flipped_copies_decode_or_fail_cleanly(source, fuzz_results):
    check_source(fuzz_results, source, "flip")


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
