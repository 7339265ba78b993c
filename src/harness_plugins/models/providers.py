"""Built-in model providers: train a naive classifier, load a state dict, or load a TorchScript module."""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.errors import DataError, ModelError, PlanError, first_line
from harness.plan.params import params_to_dict, plan_path
from harness.registry.contracts import ModelBundle, ModelContext
from harness.registry.hookspecs import hookimpl
from harness.storage.filelock import file_lock, lock_path_for
from harness_plugins.models.architectures import DEFAULT_MEAN, DEFAULT_STD, NormalizedClassifier, ensure_normalized
from harness_plugins.models.training import (
    TRAINING_CODE_VERSION,
    TrainParams,
    cache_key,
    cache_paths,
    channel_stats,
    fit,
    isolated_rng,
    load_cache,
    save_cache,
    torch_threads,
)
from harness_plugins.models.weights import (
    cpu_state_dict,
    file_sha256,
    load_state_dict_file,
    sha256_bytes,
    state_dict_bytes,
    state_dict_sha256,
)

# --------------------------------------------------------------------------- shared helpers


CACHE_LOCK_TIMEOUT_S = 6 * 3600.0  # longer than any training run


def resolve_architecture(name: str, context: ModelContext, key: str = "model.architecture") -> Any:
    """The architecture object called `name`, or a PlanError listing the available ones."""
    if name not in context.architectures:
        available = ", ".join(sorted(context.architectures)) or "none"
        raise PlanError(f"unknown architecture '{name}' (available: {available})", key=key)
    return context.architectures[name]


def n_parameters(module: nn.Module) -> int:
    """Number of parameters (weights, not buffers)."""
    return sum(p.numel() for p in module.parameters())


def normalization_of(model: NormalizedClassifier) -> dict[str, list[float]]:
    """The model's per-channel mean and std, for provenance."""
    return {"mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()}


def _labels_sha256(split: Any) -> str | None:
    """sha256 of a split's int64 labels (cheap fingerprint of split membership), None without a split."""
    if split is None:
        return None
    return sha256_bytes(np.asarray(split.labels, dtype=np.int64).tobytes())


# --------------------------------------------------------------------------- train


class TrainProvider:
    """Trains a naive classifier on the train split (selection on val), cached by everything that decides it."""

    name = "train"
    description = ("Train a naive classifier on the train split (augmentation, best-val-epoch selection); "
                   "weights cached by a hash of data, architecture, settings, seed and versions.")
    Params = TrainParams

    def provide(self, params: TrainParams, context: ModelContext) -> ModelBundle:
        """Train (or load from the cache) and return the model in eval mode on the context's device."""
        arch = resolve_architecture(params.architecture, context)
        train, val = context.dataset.splits["train"], context.dataset.splits.get("val")
        if len(train) == 0:
            raise DataError("cannot train: the train split is empty")
        shape = tuple(int(s) for s in train[0][0].shape)
        num_classes = len(context.dataset.class_names)
        _check_labels(train, num_classes)
        seed = context.seed if params.seed is None else params.seed
        material = self.key_material(params, context, arch.name, seed, shape, num_classes)
        key = cache_key(material)
        use_cache = params.cache and material["dataset_content_sha256"] is not None
        if params.cache and not use_cache:
            context.log("train: the dataset has no content_sha256 in its provenance; not caching")
        # Two runs training the same model wait for each other: the second one finds the first one's weights.
        lock = (file_lock(lock_path_for(cache_paths(context.cache_dir, key)[0]), timeout=CACHE_LOCK_TIMEOUT_S)
                if use_cache else contextlib.nullcontext())
        with lock, torch_threads(params.num_threads), isolated_rng(seed, context.device):
            model = ensure_normalized(arch.build(shape[0], num_classes, shape[1:]), shape[0])
            cached = load_cache(context.cache_dir, key, context.log) if use_cache else None
            if cached is not None:
                model.load_state_dict(cached[0])
                record, cache_hit = cached[1], True
                context.log(f"train: loaded cached weights {key[:12]} (trained earlier; no training)")
            else:
                record, cache_hit = self._train(model, params, context, arch.name, seed, train, val,
                                                num_classes), False
                record.update(cache_key=key, key_material=material)
                if use_cache:
                    save_cache(context.cache_dir, key, record.pop("_bytes"), record)
                record.pop("_bytes", None)
        model.to(context.device).eval()
        weights_path = cache_paths(context.cache_dir, key)[0] if use_cache else None
        provenance = {
            "source": "trained", "architecture": arch.name, "weights_sha256": record["weights_sha256"],
            "state_dict_sha256": record["state_dict_sha256"], "cache_key": key, "cache_hit": cache_hit,
            "weights_path": str(weights_path) if weights_path else None,
            "training": params_to_dict(params), "seed": seed, "training_log": record["training_log"],
            "selected_epoch": record["selected_epoch"], "training_seconds": record["training_seconds"],
            "n_parameters": n_parameters(model), "normalization": normalization_of(model),
            "training_code_version": TRAINING_CODE_VERSION,
        }
        return ModelBundle(module=model, provenance=provenance)

    @staticmethod
    def key_material(params: TrainParams, context: ModelContext, arch_name: str, seed: int,
                     shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
        """Everything that decides the trained weights (hashed into the cache key)."""
        training = params_to_dict(params)
        for irrelevant in ("cache", "num_threads", "seed"):
            training.pop(irrelevant)
        # CPU kernels split their sums by thread, so weights trained with 1 and 2 threads differ (and can differ a
        # lot after a few epochs): the thread count the training will use is part of what decides the weights.
        cpu_threads = (params.num_threads or torch.get_num_threads()) if context.device.type == "cpu" else None
        splits = context.dataset.splits
        return {
            "training_code_version": TRAINING_CODE_VERSION, "architecture": arch_name, "training": training,
            "seed": seed, "dataset_content_sha256": context.dataset.provenance.get("content_sha256"),
            "train_labels_sha256": _labels_sha256(splits["train"]),
            "val_labels_sha256": _labels_sha256(splits.get("val")),
            "image_shape": list(shape), "num_classes": num_classes, "torch": torch.__version__,
            "device": context.device.type, "cpu_threads": cpu_threads,
        }

    @staticmethod
    def _train(model: NormalizedClassifier, params: TrainParams, context: ModelContext, arch_name: str,
               seed: int, train: Any, val: Any, num_classes: int) -> dict[str, Any]:
        """Fit the model in place; return the cache record (with the weights' bytes under '_bytes')."""
        started = time.perf_counter()
        mean, std = channel_stats(train, params.batch_size)
        model.set_normalization(mean, std)
        model.to(context.device)
        context.log(f"train: {arch_name} on {len(train)} images for {params.epochs} epochs (seed {seed})")
        handle = context.progress(f"training {arch_name}", params.epochs)
        try:
            result = fit(model, train, val, params, seed, num_classes, context.device, handle, context.log)
        finally:
            handle.close()
        state = cpu_state_dict(model)
        data = state_dict_bytes(state)
        return {"weights_sha256": sha256_bytes(data), "state_dict_sha256": state_dict_sha256(state),
                "training_log": result.log, "selected_epoch": result.selected_epoch,
                "training_seconds": round(time.perf_counter() - started, 3), "architecture": arch_name,
                "training": params_to_dict(params), "seed": seed, "_bytes": data}


def _check_labels(split: Any, num_classes: int) -> None:
    """Labels must be integers in [0, num_classes)."""
    labels = np.asarray(split.labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"train labels must lie in 0..{num_classes - 1}, found {int(labels.min())}.."
                        f"{int(labels.max())}")


# --------------------------------------------------------------------------- state_dict


@dataclass
class StateDictParams:
    """Settings of the `state_dict` model provider."""

    architecture: str
    weights: str  # path to a torch.save'd state dict; relative to the plan's directory
    num_classes: int | None = field(default=None, metadata={"min": 1})  # default: the dataset's classes
    strict: bool = True
    mean: float | list[float] = DEFAULT_MEAN  # used only for a bare backbone state dict
    std: float | list[float] = field(default=DEFAULT_STD, metadata={"gt": 0})


class StateDictProvider:
    """Loads a state dict (weights only, never arbitrary pickled code) into a built-in architecture."""

    name = "state_dict"
    description = ("Load a state dict (torch.load weights_only) into a registered architecture; accepts the "
                   "normalised wrapper's state dict or a bare backbone's (then mean/std from the plan).")
    Params = StateDictParams

    def provide(self, params: StateDictParams, context: ModelContext) -> ModelBundle:
        """Build the architecture, load the file's weights, and return the model in eval mode."""
        arch = resolve_architecture(params.architecture, context)
        channels, height, width = context.dataset.image_shape
        num_classes = len(context.dataset.class_names)
        if params.num_classes is not None and params.num_classes != num_classes:
            raise PlanError(f"num_classes is {params.num_classes} but the dataset has {num_classes} classes",
                            key="model.num_classes")
        path = plan_path(params.weights, context.base_dir)
        state = load_state_dict_file(path)
        model = ensure_normalized(arch.build(channels, num_classes, (height, width)), channels)
        wrapped = "mean" in state and "std" in state and any(k.startswith("backbone.") for k in state)
        target: nn.Module = model if wrapped else model.backbone
        if wrapped:
            state = _reshape_norm_buffers(state, channels)
        missing, unexpected = check_state_dict(target, state, path, arch.name, params.strict)
        target.load_state_dict(state, strict=params.strict)
        if not wrapped:
            model.set_normalization(params.mean, params.std)
        if missing or unexpected:
            context.log(f"state_dict: {path.name}: {len(missing)} missing and {len(unexpected)} unexpected "
                        "keys ignored (strict: false)")
        model.to(context.device).eval()
        provenance = {
            "source": "state_dict", "architecture": arch.name, "weights_path": str(path),
            "weights_sha256": file_sha256(path), "state_dict_sha256": state_dict_sha256(cpu_state_dict(model)),
            "format": "normalized" if wrapped else "backbone", "strict": params.strict,
            "normalization": normalization_of(model), "n_parameters": n_parameters(model), "cache_hit": False,
        }
        return ModelBundle(module=model, provenance=provenance)


def _reshape_norm_buffers(state: dict[str, torch.Tensor], channels: int) -> dict[str, torch.Tensor]:
    """Accept mean/std saved as C or 1×C×1×1 tensors (and scalars for any channel count)."""
    state = dict(state)
    for name in ("mean", "std"):
        value = state[name].to(torch.float32)
        if value.numel() == 1:
            value = value.reshape(1).repeat(channels)
        if value.numel() == channels:
            state[name] = value.reshape(1, channels, 1, 1)
    return state


def check_state_dict(target: nn.Module, state: dict[str, torch.Tensor], path: Path, arch_name: str,
                     strict: bool) -> tuple[list[str], list[str]]:
    """Raise ModelError naming the file and first mismatching key; return (missing, unexpected) keys.

    Fills in BatchNorm `num_batches_tracked` counters missing from `state` (in place)."""
    expected = target.state_dict()
    for key, tensor in expected.items():  # BatchNorm counters absent from older files do not affect eval
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = tensor.detach().clone()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    for key, tensor in expected.items():
        if key in state and tuple(state[key].shape) != tuple(tensor.shape):
            raise ModelError(f"{path}: key '{key}' has shape {tuple(state[key].shape)} but architecture "
                             f"'{arch_name}' expects {tuple(tensor.shape)}")
        if key not in state and strict:
            raise ModelError(f"{path}: key '{key}' is missing ({len(missing)} keys missing; is architecture "
                             f"'{arch_name}' right?)")
    if unexpected and strict:
        raise ModelError(f"{path}: unexpected key '{unexpected[0]}' ({len(unexpected)} unexpected; is "
                         f"architecture '{arch_name}' right?)")
    return missing, unexpected


# --------------------------------------------------------------------------- torchscript


@dataclass
class TorchScriptParams:
    """Settings of the `torchscript` model provider."""

    path: str  # a torch.jit.save'd module mapping [0,1] images to logits; relative to the plan's directory


class TorchScriptProvider:
    """Loads a TorchScript module that maps [0,1] images to logits (normalisation inside it)."""

    name = "torchscript"
    description = ("Load a TorchScript module (torch.jit.load) that maps [0,1] images N×C×H×W to N×K logits, "
                   "normalisation included; checked with a dummy batch.")
    Params = TorchScriptParams

    def provide(self, params: TorchScriptParams, context: ModelContext) -> ModelBundle:
        """Load, check the output shape on a dummy batch, and return the module in eval mode."""
        path = plan_path(params.path, context.base_dir)
        if not path.is_file():
            raise ModelError(f"TorchScript file not found: {path}")
        try:
            with warnings.catch_warnings():  # torch ≥ 2.10 marks TorchScript deprecated; loading still works
                warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit")
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelError(f"{path}: not a loadable TorchScript module ({first_line(exc)})") from None
        module.eval()
        shape = tuple(context.dataset.image_shape)
        check_logits(module, path, shape, len(context.dataset.class_names))
        module.to(context.device)
        provenance = {
            "source": "torchscript", "architecture": f"torchscript:{getattr(module, 'original_name', '?')}",
            "weights_path": str(path), "weights_sha256": file_sha256(path),
            "n_parameters": n_parameters(module), "cache_hit": False,
        }
        return ModelBundle(module=module, provenance=provenance)


def check_logits(module: nn.Module, path: Path, shape: tuple[int, ...], num_classes: int) -> None:
    """A forward pass on a dummy batch of 2 must give a finite 2×K float tensor, else ModelError."""
    dummy = torch.rand((2, *shape), generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            out = module(dummy)
    except Exception as exc:
        raise ModelError(f"{path}: forward on a dummy batch of shape {tuple(dummy.shape)} failed "
                         f"({first_line(exc)})") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"{path}: expected logits of shape (2, {num_classes}) for input "
                         f"{tuple(dummy.shape)}, got {got}")
    if not out.is_floating_point() or not bool(torch.isfinite(out).all()):
        raise ModelError(f"{path}: the module's outputs are not finite floating-point logits")


@hookimpl
def harness_register_models() -> list[object]:
    """The built-in model providers: train, state_dict, torchscript."""
    return [TrainProvider(), StateDictProvider(), TorchScriptProvider()]
