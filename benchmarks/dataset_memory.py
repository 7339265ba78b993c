"""Peak memory of streaming a DICOM data set: 500 vs 5,000 generated 256×256 files (target: ratio ≤ 1.5×).

Each size runs in its own child process: import, load the `dicom` data set lazily (the loader's own streaming
scan that validates and hashes every file), then one full pass over every split the way the attack sweep reads
data (harness.data.batches.batches: a DataLoader, batch 64) through a trivial CNN. The child reports its peak RSS
(ru_maxrss) and the RSS before loading; the parent prints a table and the peak ratio. Both sizes read one set
of 5,000 files written once to a temporary folder, through two manifests (the first 500 rows, and all).

Usage: .venv/bin/python benchmarks/dataset_memory.py [--sizes 500 5000] [--cache-decoded false|auto] [--json out]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = 256
TARGET_RATIO = 1.5


def write_files(folder: Path, n: int) -> None:
    """n CT-like 256×256 int16 DICOM files (2 per patient, two classes), from one template dataset."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(0)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.Modality, ds.RescaleSlope, ds.RescaleIntercept = "CT", 1, -1024
    ds.set_pixel_data(np.zeros((IMAGE, IMAGE), np.int16), "MONOCHROME2", 16)
    base = rng.integers(0, 2000, (IMAGE, IMAGE), dtype=np.int16)
    for i in range(n):
        uid = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = uid
        ds.PatientID = f"BENCH{i // 2:05d}"
        ds.PixelData = (base + rng.integers(0, 500, (IMAGE, IMAGE), dtype=np.int16) + 300 * (i % 2)).tobytes()
        ds.save_as(folder / f"img{i:05d}.dcm", enforce_file_format=True)


def write_manifest(folder: Path, n: int) -> Path:
    """manifest_<n>.csv listing the first n files (label alternates; patient from the DICOM PatientID)."""
    path = folder / f"manifest_{n}.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows([f"img{i:05d}.dcm", i % 2] for i in range(n))
    return path


def child(manifest: Path, cache_decoded: str) -> None:
    """Load the data set and stream one full pass through a trivial CNN; print the figures as JSON."""
    import torch
    from torch import nn

    from harness.data.batches import batches
    from harness.plan.params import build_dataclass
    from harness.registry.contracts import DatasetContext
    from harness_plugins.datasets.readers.dicom import DicomDataset

    torch.set_num_threads(1)  # timings stay comparable on a shared, busy machine (memory does not depend on it)
    model = nn.Sequential(nn.Conv2d(1, 8, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 2)).eval()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mapping = {"path": str(manifest), "class_names": ["a", "b"], "window": {"center": -600, "width": 1500},
               "cache_decoded": cache_decoded if cache_decoded == "auto" else cache_decoded == "true"}
    params = build_dataclass(DicomDataset.Params, mapping, "dataset")
    start = time.perf_counter()
    bundle = DicomDataset().load(params, DatasetContext(seed=0, base_dir=manifest.parent,
                                                        cache_dir=manifest.parent))
    loaded = time.perf_counter()
    seen = 0
    with torch.no_grad():
        for split in bundle.splits.values():
            for images, _ in batches(split, 64):
                model(images)
                seen += len(images)
    done = time.perf_counter()
    print(json.dumps({"n": seen, "load_s": round(loaded - start, 2), "pass_s": round(done - loaded, 2),
                      "rss_before_mb": round(before / 1024, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "cached": bundle.provenance["cache_decoded"]}))


def measure(manifest: Path, cache_decoded: str) -> dict:
    """Run one child process and return its figures."""
    command = [sys.executable, __file__, "--child", str(manifest), "--cache-decoded", cache_decoded]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--cache-decoded", choices=["false", "true", "auto"], default="false")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.cache_decoded)
        return
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        write_files(folder, max(args.sizes))
        print(f"wrote {max(args.sizes)} DICOM files ({IMAGE}×{IMAGE} int16) in {time.perf_counter() - start:.0f} s")
        for n in args.sizes:
            rows[n] = measure(write_manifest(folder, n), args.cache_decoded)
    print(f"dicom data set, cache_decoded={args.cache_decoded}, one streaming pass (batch 64) + trivial CNN")
    print(f"{'files':>7}{'load s':>9}{'pass s':>9}{'RSS before MB':>15}{'peak RSS MB':>13}{'growth MB':>11}"
          f"{'cached':>8}")
    for n, row in rows.items():
        growth = row["peak_rss_mb"] - row["rss_before_mb"]
        print(f"{n:>7}{row['load_s']:>9.1f}{row['pass_s']:>9.1f}{row['rss_before_mb']:>15.0f}"
              f"{row['peak_rss_mb']:>13.0f}{growth:>11.0f}{str(row['cached']):>8}")
    small, large = rows[min(rows)], rows[max(rows)]
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(f"peak RSS ratio {max(rows)}/{min(rows)} files: {ratio:.2f}× ({verdict} the ≤ {TARGET_RATIO}× target)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "ratio": ratio}, indent=2) + "\n")


if __name__ == "__main__":
    main()
