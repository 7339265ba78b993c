"""PGD-10 on 3-D volumes on the CPU: volumes per second and peak RSS at 64³ and 96³ (issue 27).

Each size runs in its own subprocess, so its peak resident set size (ru_maxrss) is its own. The model is the
built-in small_cnn_3d behind the harness's input wrapper, attacked by the harness's one PGD (harness.attacks.native)
with `batch_size: auto`'s choice for that volume size; the input memory per batch is the figure the manifest
records (`batch_size.input_mib_per_batch`). Volumes per CPU-second (process time) is the figure to compare on a
shared machine, where the wall-clock rate depends on what else runs.

    python benchmarks/volume_throughput.py                 # 64³ and 96³, 8 volumes each, 1 thread
    python benchmarks/volume_throughput.py --sizes 32 --n 4 --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

PGD_STEPS = 10
EPSILON = 0.004


def measure(size: int, n: int, threads: int) -> dict[str, Any]:
    """One size in this process: images/s of PGD-10 and the process's peak RSS afterwards."""
    import torch

    from harness.attacks.engine.batch_size import auto_batch_size, input_mib_per_batch
    from harness.attacks.native.losses import cross_entropy
    from harness.attacks.native.pgd import pgd
    from harness_plugins.models.architectures import SmallCNN3D
    from harness_plugins.models.model_input import NormalizedClassifier

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    shape = (1, size, size, size)
    model = NormalizedClassifier(SmallCNN3D().build(1, 2, shape[1:]), 1, spatial_dims=3).eval()
    batch = auto_batch_size(model, shape, torch.device("cpu"), limit=n)
    images, labels = torch.rand(n, *shape), torch.randint(0, 2, (n,))
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, n, batch):
        x, y = images[start:start + batch], labels[start:start + batch]
        pgd(model, x, cross_entropy(y), EPSILON, "linf", PGD_STEPS, EPSILON / 4, start="uniform")
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"volume": f"{size}³", "n": n, "batch": batch, "input_mib_per_batch": input_mib_per_batch(shape, batch),
            "threads": threads, "attack": f"PGD-{PGD_STEPS} L∞ ε={EPSILON}", "seconds": round(seconds, 2),
            "images_per_s": round(n / seconds, 3), "cpu_seconds": round(cpu_seconds, 2),
            "images_per_cpu_s": round(n / cpu_seconds, 3), "peak_rss_mb": round(rss_kib / 1024, 1)}


def run(sizes: list[int], n: int, threads: int) -> list[dict[str, Any]]:
    """Every size in its own subprocess (its own peak RSS)."""
    rows = []
    for size in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(size), "--n", str(n), "--threads", str(threads)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the rows."""
    head = ("| volume | batch | input MiB/batch | PGD-10 volumes/s (wall) | volumes per CPU-second | peak RSS (MB) | "
            "threads |\n|---|---|---|---|---|---|---|")
    body = [f"| {r['volume']} | {r['batch']} | {r['input_mib_per_batch']} | {r['images_per_s']} | "
            f"{r['images_per_cpu_s']} | {r['peak_rss_mb']} | {r['threads']} |" for r in rows]
    return "\n".join([head, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96])
    parser.add_argument("--n", type=int, default=8, help="volumes attacked per size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size in this process
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args.n, args.threads)))
        return 0
    rows = run(args.sizes, args.n, args.threads)
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
