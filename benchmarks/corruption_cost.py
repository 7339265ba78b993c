"""Seconds per corruption for 5 severities × N phantom images of 64×64 (one thread): prints a table.

    .venv/bin/python benchmarks/corruption_cost.py [--images 120] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from harness.registry.contracts import CorruptionContext, NativeUnits
from harness.registry.manager import default_registry
from harness_plugins.datasets.phantoms import brain_mri, ct, mammogram

LUNG_WINDOW = NativeUnits(1500.0, "HU", "lung window W1500 L-600")


def phantom_images(n: int) -> dict[str, torch.Tensor]:
    """n images per modality (CT nodules, brain MRI, mammogram patches), repeated from a small phantom."""
    sources = {"CT": ct.generate(ct.PhantomParams(n_patients=20))[0],
               "MRI": brain_mri.generate(brain_mri.BrainMRIParams(n_patients=20))[0],
               "any": mammogram.generate(mammogram.MammogramParams(n_patients=20))[0]}
    return {k: torch.from_numpy(np.resize(v, (n, *v.shape[1:])).astype(np.float32)) for k, v in sources.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = default_registry()
    images = phantom_images(args.images)
    context = CorruptionContext(seed=0, native_units=LUNG_WINDOW, native_offset=-1350.0, pixel_spacing_mm=0.7)
    print(f"| corruption | modality | seconds for 5 severities × {args.images} images |")
    print("|---|---|---:|")
    for name in registry.names("corruption"):
        plugin = registry.get("corruption", name)
        batch = images[plugin.modality]
        start = time.perf_counter()
        for severity in plugin.severities:
            plugin.apply(batch, np.arange(len(batch)), plugin.params_for(severity.level), context)
        print(f"| {name} | {plugin.modality} | {time.perf_counter() - start:.2f} |")


if __name__ == "__main__":
    main()
