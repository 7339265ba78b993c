"""Peak memory of the harness attack sweep over N and 4N phantom images (target: ratio ≤ 1.2 apart from the data).

The parent writes N×factor phantom_ct test images (64×64) to a temporary .npy file once and trains the harness
small_cnn briefly on the phantom's training split. Each size then runs in its own child process (a fresh
interpreter, so the peaks are separate). The child maps the file and copies its first n images into memory
(the data set), then resets the kernel's peak-RSS mark (/proc/self/clear_refs) and runs what the runner runs for
one model and one fixed-ε attack: the clean pass (predict_logits) and harness.attacks.sweep.run_attack with the
pgd_linf plugin (PGD-10, ε/4 steps, random start) over 3 ε, batch 64. It reports the data set's bytes, the RSS
before the sweep, the sweep's peak RSS and, on CUDA, torch's peak allocated device memory during the sweep.

"peak − data" is the sweep's peak RSS minus the data set's bytes; the target is that its ratio, large over small,
stays ≤ 1.2. "growth" is the sweep's peak minus the RSS before it (what the sweep itself adds).

Usage: .venv/bin/python benchmarks/sweep_memory.py [--images 256] [--factor 4] [--device cpu|cuda] [--threads 1]
                                                   [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(Path(__file__).resolve().parent) not in sys.path:  # attack_throughput's helpers, also when imported
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from attack_throughput import reset_high_water_mark, status_mb  # noqa: E402  (after the path set-up)

EPSILONS = [0.002, 0.004, 0.008]
BATCH = 64
TARGET_RATIO = 1.2
TRAIN_STEPS = 100


def prepare(folder: Path, n_images: int, device: str) -> dict[str, object]:
    """Write the phantom test images, labels and a briefly trained small_cnn's weights into `folder`."""
    import numpy as np
    import torch
    from attack_throughput import phantom, train

    from harness_plugins.models.architectures import SmallCNN

    train_split, test_split = phantom(n_images, 0)
    index = np.arange(n_images) % len(test_split)  # tiled only if the test split were short
    np.save(folder / "images.npy", test_split.images[index].numpy())
    np.save(folder / "labels.npy", test_split.labels[index])
    torch.manual_seed(0)
    model = SmallCNN().build(1, 2, (64, 64))
    training = train(model, train_split, 64, TRAIN_STEPS, torch.device(device))
    torch.save(model.cpu().state_dict(), folder / "model.pt")
    return {"training": training, "distinct_images": int(min(n_images, len(test_split)))}


def child(folder: Path, n: int, device_name: str, threads: int) -> dict[str, object]:
    """One size: load n images, then the clean pass and the 3-ε PGD-10 sweep; the memory figures."""
    import numpy as np
    import torch
    from attack_throughput import pgd_spec, tensor_split

    from harness.attacks.sweep import run_attack
    from harness.data.batches import predict_logits
    from harness_plugins.models.architectures import SmallCNN

    torch.set_num_threads(threads)
    device = torch.device(device_name)
    model = SmallCNN().build(1, 2, (64, 64))
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    model.to(device).eval()
    mapped = np.load(folder / "images.npy", mmap_mode="r")
    images = torch.from_numpy(np.array(mapped[:n]))
    del mapped
    split = tensor_split(images, np.load(folder / "labels.npy")[:n])
    spec, plugin = pgd_spec(EPSILONS)
    gc.collect()
    before = status_mb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    exact = reset_high_water_mark()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    clean = predict_logits(model, split, BATCH, device).argmax(axis=1)
    outcome = run_attack(model, split, spec, plugin, clean, BATCH, device, 0, "naive")
    seconds = time.perf_counter() - start
    lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = (status_mb("VmHWM") if exact else None) or lifetime
    correct = clean == split.labels
    return {"n": n, "data_mb": split.images.nbytes / 2**20, "rss_before_mb": before, "peak_rss_mb": peak,
            "peak_exact": exact, "lifetime_peak_rss_mb": lifetime, "growth_mb": peak - before,
            "peak_minus_data_mb": peak - split.images.nbytes / 2**20, "seconds": seconds,
            "device_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            "success": [float((s & correct).sum() / max(1, correct.sum())) for s in outcome.success]}


def measure(folder: Path, n: int, device: str, threads: int) -> dict[str, object]:
    """Run one size in a fresh child process and return its figures."""
    command = [sys.executable, __file__, "--child", str(folder), "--images", str(n), "--device", device,
               "--threads", str(threads)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout
    return json.loads(output.strip().splitlines()[-1])


def summarize(rows: list[dict[str, object]]) -> dict[str, object]:
    """Large-over-small ratios of the sweep's peak RSS (with and without the data set) and of its growth."""
    small, large = rows[0], rows[-1]

    def ratio(key: str) -> float | None:
        return None if small[key] in (None, 0) or large[key] is None else large[key] / small[key]

    result = {"images": [small["n"], large["n"]], "peak_ratio": ratio("peak_rss_mb"),
              "peak_minus_data_ratio": ratio("peak_minus_data_mb"), "growth_ratio": ratio("growth_mb"),
              "device_peak_ratio": ratio("device_peak_mb"), "target": TARGET_RATIO}
    result["passed"] = bool(result["peak_minus_data_ratio"] <= TARGET_RATIO)
    return result


def report(rows: list[dict[str, object]], summary: dict[str, object]) -> str:
    """The printed table and verdict."""
    def cell(value: object, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    lines = [f"{'images':>7} {'data MB':>8} {'RSS before':>10} {'peak RSS':>9} {'peak − data':>11} {'growth':>7} "
             f"{'dev peak MB':>11} {'sweep s':>8}  success per ε {EPSILONS}"]
    for r in rows:
        lines.append(f"{r['n']:>7} {r['data_mb']:>8.1f} {r['rss_before_mb']:>10.0f} {r['peak_rss_mb']:>9.0f} "
                     f"{r['peak_minus_data_mb']:>11.0f} {r['growth_mb']:>7.1f} {cell(r['device_peak_mb'], '11.1f')} "
                     f"{r['seconds']:>8.1f}  " + " ".join(f"{s:.1%}" for s in r["success"]))
    verdict = "PASS" if summary["passed"] else "FAIL"
    lines.append(f"{summary['images'][1]}/{summary['images'][0]} images: peak − data ratio "
                 f"{summary['peak_minus_data_ratio']:.3f} → {verdict} (≤ {TARGET_RATIO}); peak ratio "
                 f"{summary['peak_ratio']:.3f}; growth ratio {cell(summary['growth_ratio'], '.2f')}; device peak "
                 f"ratio {cell(summary['device_peak_ratio'], '.3f')}")
    return "\n".join(lines)


def run(n_images: int, factor: int, device: str, threads: int) -> dict[str, object]:
    """Prepare the data once, measure both sizes in child processes; rows, summary and setup."""
    sizes = [n_images, n_images * factor]
    with tempfile.TemporaryDirectory() as tmp:
        setup = prepare(Path(tmp), sizes[-1], device)
        rows = [measure(Path(tmp), n, device, threads) for n in sizes]
    setup.update(device=device, threads=threads, epsilons=EPSILONS, batch=BATCH, attack="pgd_linf (PGD-10)")
    return {"setup": setup, "rows": rows, "summary": summarize(rows)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="the smaller number of images (default 256)")
    parser.add_argument("--factor", type=int, default=4, help="the larger size is this many times more (default 4)")
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: CUDA when present)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads in the children (default 1)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        print(json.dumps(child(args.child, args.images, args.device, args.threads)))
        return
    result = run(args.images, args.factor, args.device, args.threads)
    setup = result["setup"]
    print(f"harness sweep memory on {args.device}: small_cnn ({setup['training']}), phantom_ct 1×64×64, "
          f"pgd_linf over ε {EPSILONS}, batch {BATCH}, clean pass included, one child process per size")
    print(report(result["rows"], result["summary"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
