"""`harness fingerprint-data DATA --out train.fp`: per-image exact and perceptual signatures of a data set (a folder,
manifest .csv or .npz), so that a model's training data can be named as a plan's `leakage: {reference: train.fp}`
without handing over the images (harness.data.fingerprints states what the file holds and the matching rule).

The images are loaded as a run loads its test images: with `--plan`, by that plan's data set plugin and pixel
settings (size, channels, resize, window); otherwise by `--plugin` (image_folder for a folder or .csv, npz for an
.npz) with `--image-size` and `--channels`. Exact signatures match only images loaded at the same settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.errors import EXIT_PASS, PlanError

NAME = "fingerprint-data"
HELP = "write per-image exact and perceptual hashes of a data set, for a plan's leakage: {reference: FILE}"
SPLITS = ("train", "val", "test")


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of `harness fingerprint-data`."""
    parser.add_argument("data", type=Path, help="a folder (class subfolders or labels.csv), a manifest .csv, or .npz")
    parser.add_argument("--out", type=Path, required=True, help="the fingerprint file to write (e.g. train.fp)")
    parser.add_argument("--split", choices=(*SPLITS, "all"), default="all",
                        help="only the rows of this split (the data's own split column or key); default: all images")
    parser.add_argument("--plan", type=Path, help="load the images with this plan's data set plugin and settings")
    parser.add_argument("--plugin", help="data set plugin without --plan (default: image_folder, npz for .npz)")
    parser.add_argument("--image-size", type=int, help="square size the images are loaded at (as dataset.image_size)")
    parser.add_argument("--channels", type=int, choices=(1, 3), help="channels the images are loaded with")


def execute(args: argparse.Namespace, console: Console) -> int:
    """Load the data, fingerprint the chosen split(s) and write the file atomically."""
    from harness.plan.params import build_dataclass
    from harness.registry.contracts import DatasetContext
    from harness.registry.manager import default_registry
    from harness.run.reference import load_reference
    from harness.storage.deid import FileNamer
    from harness.storage.rundir import default_cache_dir

    registry = default_registry()
    if not args.data.exists():
        raise PlanError(f"{args.data} does not exist")
    splits = SPLITS if args.split == "all" else (args.split,)
    if args.plan is not None:
        from harness.plan.schema import load_plan

        plan = load_plan(args.plan, [], registry)
        plugin_name, params, base = plan.dataset.plugin, plan.dataset.params, plan.base_dir
        context = DatasetContext(seed=plan.seed, base_dir=base, cache_dir=default_cache_dir(),
                                 sandbox_roots=plan.sandbox_roots)
    else:
        plugin_name = args.plugin or ("npz" if args.data.suffix.lower() == ".npz" else "image_folder")
        values: dict[str, Any] = {"path": str(args.data.resolve())}
        if args.image_size is not None:
            values["image_size"] = args.image_size
        if args.channels is not None:
            values["channels"] = args.channels
        params = build_dataclass(registry.get("dataset", plugin_name).Params, values, "fingerprint-data")
        context = DatasetContext(seed=0, base_dir=Path.cwd(), cache_dir=default_cache_dir())
    context.file_namer = FileNamer(show_paths=False)
    fingerprint = load_reference(args.data.resolve(), str(args.data), splits, plugin_name, params, registry, context)
    fingerprint.save(args.out)
    shape = "×".join(map(str, fingerprint.image_shape))
    console.print(escape(f"wrote {args.out}: {len(fingerprint)} images ({shape} as loaded, "
                         f"{'all splits' if args.split == 'all' else f'split {args.split}'}); name it in a plan as "
                         f"leakage: {{reference: {args.out}}}"), soft_wrap=True)
    return EXIT_PASS
