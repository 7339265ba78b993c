"""`harness export-reference MODEL`: reference inputs and logits from a model you trust, for `model.reference`.

MODEL is a TorchScript file, an ONNX file, or `file.py:function` / `package.module:function` returning an
nn.Module that maps [0,1] images N×C×H×W to logits with your own preprocessing included. The inputs are your
own .npy of [0,1] images (`--inputs`), the first test images of a plan's data set (`--plan`), or seeded uniform
noise of a given shape (`--shape`).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from harness.errors import EXIT_PASS, DataError, ModelError, PlanError, first_line

if TYPE_CHECKING:
    from harness.registry.manager import Registry

NAME = "export-reference"
HELP = "write reference inputs and logits from a model you trust (for a plan's model.reference check)"


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of `harness export-reference`."""
    parser.add_argument("model", help="a TorchScript file (.pt/.ts), an .onnx file, or file.py:function / "
                                      "package.module:function returning the trusted nn.Module")
    parser.add_argument("--out", type=Path, required=True, help="folder for reference_inputs.npy and "
                                                                "reference_logits.npy")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--inputs", type=Path, help=".npy of [0,1] images N×C×H×W")
    source.add_argument("--plan", type=Path, help="take the first --n test images of this plan's data set")
    source.add_argument("--shape", type=int, nargs="+", metavar="N",
                        help="C H W (volumes: C D H W) of seeded uniform [0,1] noise")
    parser.add_argument("--n", type=int, default=16, help="images for --plan / --shape (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --shape noise (default 0)")


def execute(args: argparse.Namespace, console: Console) -> int:
    """Run the trusted model on the inputs and write the pair atomically; print the plan lines to add."""
    from harness.data.reference_pair import export_reference

    images = _images(args)
    module = _trusted_model(args.model)
    inputs_path, logits_path, logits = export_reference(module, images, args.out)
    console.print(f"wrote {escape(str(inputs_path))} ({len(images)} images "
                  f"{'×'.join(map(str, images.shape[1:]))}) and {escape(str(logits_path))} (logits "
                  f"{'×'.join(map(str, logits.shape))}); add to the plan's model entry:")
    console.print(escape(f"  reference: {{inputs: {inputs_path}, logits: {logits_path}}}"), highlight=False)
    return EXIT_PASS


def _images(args: argparse.Namespace) -> Any:
    """[0,1] float32 images N×C×H×W from --inputs, --plan or --shape; DataError/PlanError when unusable."""
    import numpy as np

    from harness.data.reference_pair import read_array

    if args.n < 1:
        raise PlanError(f"--n must be at least 1, got {args.n}")
    if args.inputs is not None:
        images = read_array(args.inputs, "inputs")
    elif args.shape is not None:
        images = np.random.default_rng(args.seed).random((args.n, *args.shape), dtype=np.float32)
    else:
        images = _plan_images(args.plan, args.n)
    if images.ndim not in (4, 5) or images.min() < 0 or images.max() > 1:
        raise DataError(f"reference inputs must be [0,1] images N×C×H×W (or volumes N×C×D×H×W), got shape "
                        f"{images.shape} and range "
                        f"[{images.min():.3g}, {images.max():.3g}]")
    return images


def _plan_images(plan_path: Path, n: int) -> Any:
    """The first `n` test images of a plan's data set, as the harness loads them."""
    import numpy as np

    from harness.data.loading import load_dataset
    from harness.plan.schema import load_plan
    from harness.registry.contracts import DatasetContext
    from harness.registry.manager import default_registry
    from harness.storage.rundir import default_cache_dir, deid_salt

    registry = default_registry()
    plan = load_plan(plan_path, registry=registry)
    cache = default_cache_dir()
    context = DatasetContext(seed=plan.seed, base_dir=plan.base_dir, cache_dir=cache, show_paths=plan.show_paths,
                             sandbox_roots=plan.sandbox_roots)
    plugin = registry.get("dataset", plan.dataset.plugin)
    test = load_dataset(plugin, plan.dataset.params, context, deid_salt(cache)).splits["test"]
    return np.stack([test[i][0].numpy() for i in range(min(n, len(test)))]).astype(np.float32)


def _trusted_model(spec: str) -> Any:
    """The nn.Module named by MODEL; ModelError when it cannot be loaded. A model file is loaded by the installed
    model plugin that declares its suffix in `model_files` (its `load_file`), found through the registry."""
    path = Path(spec)
    if ":" in spec and not path.is_file():
        return _factory_model(spec)
    if not path.is_file():
        raise ModelError(f"model file not found: {spec}")
    from harness.registry.manager import default_registry

    return file_loader(default_registry(), path).load_file(path)


def file_loader(registry: Registry, path: Path) -> Any:
    """The model plugin that loads files with `path`'s suffix (its `model_files`); ModelError naming the suffixes
    the installed plugins load otherwise."""
    suffix = path.suffix.lower()
    loaders = {entry.name: entry.obj for entry in registry.all()
               if entry.kind == "model" and getattr(entry.obj, "model_files", ())}
    for loader in loaders.values():
        if suffix in loader.model_files:
            return loader
    known = ", ".join(f"{s} ({name})" for name, loader in loaders.items() for s in loader.model_files) or "none"
    raise ModelError(f"{path}: no installed model plugin loads {suffix or 'suffix-less'} files (model files the "
                     f"installed plugins load: {known}); give file.py:function instead")


def _factory_model(spec: str) -> Any:
    """Call `function` from `file.py:function` or `package.module:function` (the user's own trusted code)."""
    from torch import nn

    target, _, function = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            location = Path(target).resolve()
            loader = importlib.util.spec_from_file_location(location.stem, location)
            if loader is None or loader.loader is None or not location.is_file():
                raise ModelError(f"Python file not found: {target}")
            module = importlib.util.module_from_spec(loader)
            sys.modules[location.stem] = module
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        model = getattr(module, function)()
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{spec}: cannot build the model ({type(exc).__name__}: {first_line(exc)})") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"{spec}: returned {type(model).__name__}, not a torch nn.Module")
    return model
