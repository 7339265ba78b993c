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

from harness.attacks.heads import expected_width
from harness.errors import DataError, ModelError, PlanError, first_line
from harness.plan.architecture import ArchitectureSpec, check_architecture, split_architecture
from harness.plan.params import params_to_dict, plan_path
from harness.registry.contracts import ModelBundle, ModelContext
from harness.registry.hookspecs import hookimpl
from harness.storage.filelock import file_lock, lock_path_for
from harness_plugins.models.model_input import NormalizedClassifier, normalization_of, wrap
from harness_plugins.models.supplied import (
    SuppliedParams,
    declared_normalization,
    network_shape,
    normalization_source,
    supplied_bundle,
    wrap_declared,
)
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


TRAINED_NORMALIZATION = "computed by training (per-channel mean and std of the train split)"


@dataclass
class ResolvedArchitecture:
    """A registered architecture with the plan's options for it."""

    obj: Any
    name: str
    options: dict[str, Any]

    def build(self, channels: int, num_classes: int, size: tuple[int, int]) -> nn.Module:
        """The bare network for images of `channels` × `size`."""
        return self.obj.build(channels, num_classes, size, **self.options)

    def describe(self, channels: int, num_classes: int, size: tuple[int, int]) -> dict[str, Any]:
        """Every constructor argument in effect (the architecture's own account when it gives one)."""
        describe = getattr(self.obj, "describe", None)
        if describe is not None:
            return describe(channels, num_classes, size, self.options)
        return {"name": self.name, "arguments": {"in_channels": channels, "num_classes": num_classes,
                                                 "image_size": list(size), **self.options},
                "from_plan": sorted(self.options)}


def resolve_architecture(spec: ArchitectureSpec, context: ModelContext) -> ResolvedArchitecture:
    """The architecture the plan names (with its options), or a PlanError naming the key."""
    check_architecture(spec, "model", context.architectures)
    name, options = split_architecture(spec)
    return ResolvedArchitecture(context.architectures[name], name, options)


def n_parameters(module: nn.Module) -> int:
    """Number of parameters (weights, not buffers)."""
    return sum(p.numel() for p in module.parameters())


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
                   "weights cached by a hash of data, architecture and its arguments, settings, seed and versions.")
    Params = TrainParams
    needs_training_data = True

    def provide(self, params: TrainParams, context: ModelContext) -> ModelBundle:
        """Train (or load from the cache) and return the model in eval mode on the context's device."""
        arch = resolve_architecture(params.architecture, context)
        train, val = context.dataset.splits.get("train"), context.dataset.splits.get("val")
        if train is None or len(train) == 0:
            raise DataError("cannot train: the train split is empty")
        shape = tuple(int(s) for s in train[0][0].shape)
        num_classes = len(context.dataset.class_names)
        _check_labels(train, num_classes)
        seed = context.seed if params.seed is None else params.seed
        described = arch.describe(shape[0], num_classes, shape[1:])
        material = self.key_material(params, context, described, seed, shape, num_classes)
        key = cache_key(material)
        use_cache = params.cache and material["dataset_content_sha256"] is not None
        if params.cache and not use_cache:
            context.log("train: the dataset has no content_sha256 in its provenance; not caching")
        # Two runs training the same model wait for each other: the second one finds the first one's weights.
        lock = (file_lock(lock_path_for(cache_paths(context.cache_dir, key)[0]), timeout=CACHE_LOCK_TIMEOUT_S)
                if use_cache else contextlib.nullcontext())
        with lock, torch_threads(params.num_threads), isolated_rng(seed, context.device):
            model = NormalizedClassifier(arch.build(shape[0], num_classes, shape[1:]), shape[0],
                                         spatial_dims=len(shape) - 1)
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
            "source": "trained", "architecture": arch.name, "architecture_arguments": described,
            "weights_sha256": record["weights_sha256"],
            "state_dict_sha256": record["state_dict_sha256"], "cache_key": key, "cache_hit": cache_hit,
            "weights_path": str(weights_path) if weights_path else None,
            "training": params_to_dict(params), "seed": seed, "training_log": record["training_log"],
            "selected_epoch": record["selected_epoch"], "training_seconds": record["training_seconds"],
            "n_parameters": n_parameters(model), "normalization": normalization_of(model, TRAINED_NORMALIZATION),
            "training_code_version": TRAINING_CODE_VERSION,
        }
        return ModelBundle(module=model, provenance=provenance)

    @staticmethod
    def key_material(params: TrainParams, context: ModelContext, architecture: dict[str, Any], seed: int,
                     shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
        """Everything that decides the trained weights (hashed into the cache key).

        The architecture enters with every constructor argument in effect, so a changed library default (or the
        harness's own, like resnet18's former stride-2 stem) never reuses weights trained for another network.
        """
        training = params_to_dict(params)
        for irrelevant in ("cache", "num_threads", "seed", "keep_model", "architecture"):
            training.pop(irrelevant)
        _drop_new_defaults(training)
        # CPU kernels split their sums by thread, so weights trained with 1 and 2 threads differ (and can differ a
        # lot after a few epochs): the thread count the training will use is part of what decides the weights.
        cpu_threads = (params.num_threads or torch.get_num_threads()) if context.device.type == "cpu" else None
        splits = context.dataset.splits
        return {
            "training_code_version": TRAINING_CODE_VERSION, "architecture": architecture, "training": training,
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


def _drop_new_defaults(training: dict[str, Any]) -> None:
    """Leave settings added later out of the key while they hold the default that reproduces the earlier
    training exactly (val-accuracy selection, no intensity jitter), so existing cached weights stay valid."""
    if training.get("select_metric") == "accuracy":
        training.pop("select_metric")
    augment = training.get("augment")
    if isinstance(augment, dict) and not augment.get("intensity_jitter"):
        augment.pop("intensity_jitter", None)


def _check_labels(split: Any, num_classes: int) -> None:
    """Labels must be integers in [0, num_classes)."""
    labels = np.asarray(split.labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"train labels must lie in 0..{num_classes - 1}, found {int(labels.min())}.."
                        f"{int(labels.max())}")


# --------------------------------------------------------------------------- state_dict


@dataclass
class StateDictParams(SuppliedParams):
    """Settings of the `state_dict` model provider."""

    architecture: str | dict[str, Any]  # a name, or {name: ..., constructor option: value}
    weights: str  # path to a torch.save'd state dict; relative to the plan's directory
    num_classes: int | None = field(default=None, metadata={"min": 1})  # default: the dataset's classes
    strict: bool = True


class StateDictProvider:
    """Loads a state dict (weights only, never arbitrary pickled code) into a registered architecture."""

    name = "state_dict"
    description = ("Load a state dict (torch.load weights_only) into a registered architecture built with its "
                   "library's defaults; a bare network's state dict needs model.normalization (or none).")
    Params = StateDictParams
    needs_training_data = False

    def provide(self, params: StateDictParams, context: ModelContext) -> ModelBundle:
        """Build the architecture, load the file's weights, check them, and return the model in eval mode."""
        arch = resolve_architecture(params.architecture, context)
        channels, *spatial = network_shape(params, context)
        num_classes = expected_width(context.output, len(context.dataset.class_names))
        if params.num_classes is not None and params.num_classes != num_classes:
            raise PlanError(f"num_classes is {params.num_classes} but output: {context.output} on "
                            f"{len(context.dataset.class_names)} classes needs {num_classes} outputs",
                            key="model.num_classes")
        path = plan_path(params.weights, context.base_dir)
        state = load_state_dict_file(path)
        wrapped = "mean" in state and "std" in state and any(k.startswith("backbone.") for k in state)
        if wrapped and params.normalization is not None:
            raise PlanError(f"{path.name} carries its own normalisation (mean and std saved with the weights); "
                            "remove model.normalization", key="model.normalization")
        if not wrapped and params.normalization is None:
            raise PlanError(f"{path.name} is a bare network's state dict, so the harness cannot know how its "
                            "inputs were normalised: declare it (normalization: {mean: [...], std: [...]} in the "
                            "model's input units) or say normalization: none", key="model.normalization")
        network = arch.build(channels, num_classes, tuple(spatial))
        model = wrap(network, context.dataset.image_shape, params.input,
                     None if wrapped else declared_normalization(params))
        target: nn.Module = model if wrapped else model.backbone
        if wrapped:
            state = _reshape_norm_buffers(state, channels, len(spatial))
        missing, unexpected = check_state_dict(target, state, path, arch.name, params.strict)
        target.load_state_dict(state, strict=params.strict)
        if missing or unexpected:
            context.log(f"state_dict: {path.name}: {len(missing)} missing and {len(unexpected)} unexpected "
                        "keys ignored (strict: false)")
        provenance = {
            "source": "state_dict", "architecture": arch.name,
            "architecture_arguments": arch.describe(channels, num_classes, tuple(spatial)),
            "weights_path": str(path), "weights_sha256": file_sha256(path),
            "state_dict_sha256": state_dict_sha256(cpu_state_dict(model)),
            "format": "normalized" if wrapped else "backbone", "strict": params.strict,
            "n_parameters": n_parameters(model), "cache_hit": False,
        }
        source = "file (mean and std saved with the weights)" if wrapped else normalization_source(params)
        return supplied_bundle(model, params, context, str(path), provenance, source)


def _reshape_norm_buffers(state: dict[str, torch.Tensor], channels: int,
                          spatial_dims: int = 2) -> dict[str, torch.Tensor]:
    """Accept mean/std saved as C or 1×C×1×1 (volumes 1×C×1×1×1) tensors (and scalars for any channel count)."""
    state = dict(state)
    for name in ("mean", "std"):
        value = state[name].to(torch.float32)
        if value.numel() == 1:
            value = value.reshape(1).repeat(channels)
        if value.numel() == channels:
            state[name] = value.reshape(1, channels, *([1] * spatial_dims))
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
class TorchScriptParams(SuppliedParams):
    """Settings of the `torchscript` model provider."""

    path: str  # a torch.jit.save'd module mapping images to logits; relative to the plan's directory


class TorchScriptProvider:
    """Loads a TorchScript module; the plan's input contract and normalisation (if any) are applied in front."""

    name = "torchscript"
    description = ("Load a TorchScript module (torch.jit.load) mapping images N×C×H×W to N×K logits; the plan's "
                   "input contract and normalisation, if declared, are applied in front; checked with a dummy batch.")
    Params = TorchScriptParams
    needs_training_data = False
    model_files = (".pt", ".ts")  # `harness export-reference MODEL.pt` loads the file as-is through `load_file`

    def load_file(self, path: Path) -> nn.Module:
        """The trusted model in the file, as saved (no declared contract in front), in eval mode on the CPU."""
        return load_torchscript(path)

    def provide(self, params: TorchScriptParams, context: ModelContext) -> ModelBundle:
        """Load, wrap in the declared contract, check (dummy batch, reference), and return it in eval mode."""
        path = plan_path(params.path, context.base_dir)
        module = load_torchscript(path)
        provenance = {
            "source": "torchscript", "architecture": f"torchscript:{getattr(module, 'original_name', '?')}",
            "weights_path": str(path), "weights_sha256": file_sha256(path),
            "n_parameters": n_parameters(module), "cache_hit": False,
        }
        return supplied_bundle(wrap_declared(module, params, context), params, context, str(path), provenance,
                               normalization_source(params))


def load_torchscript(path: Path) -> nn.Module:
    """A TorchScript module on the CPU in eval mode; ModelError naming the file when it cannot be loaded."""
    if not path.is_file():
        raise ModelError(f"TorchScript file not found: {path}")
    try:
        with warnings.catch_warnings():  # torch ≥ 2.10 marks TorchScript deprecated; loading still works
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit")
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ModelError(f"{path}: not a loadable TorchScript module ({first_line(exc)})") from None
    return module.eval()


@hookimpl
def harness_register_models() -> list[object]:
    """The built-in model providers: train, state_dict, torchscript."""
    return [TrainProvider(), StateDictProvider(), TorchScriptProvider()]
