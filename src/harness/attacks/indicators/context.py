"""What every indicator check works on: the probe subset, the shared context and the JSON shape of a result."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.attacks.judge import judged_attack
from harness.attacks.sweep import batch_seed
from harness.registry.contracts import AttackPlugin

SUBSET_SIZE = 64


@dataclass(frozen=True)
class CheckInfo:
    """One check's id, what it verifies and the flag raised when it fails."""

    id: str
    description: str
    flag: str

    def result(self, passed: bool, value: Any, threshold: Any, detail: str) -> dict[str, Any]:
        """One JSON-ready check entry."""
        return {"id": self.id, "description": self.description, "passed": bool(passed),
                "value": _jsonable(value), "threshold": _jsonable(threshold), "detail": detail}

    def not_applicable(self, why: str) -> dict[str, Any]:
        """A passed entry for a check that has nothing to check."""
        return self.result(True, None, None, f"not applicable: {why}")


@dataclass
class ProbeImages:
    """Clean-correct test images on the device, with their split indices."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: list[int]

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class Context:
    """What every subset check needs."""

    model: nn.Module
    subset: ProbeImages
    batch_size: int
    seed: int
    registry: Any
    specs: list[Any]  # the plan's fixed-epsilon AttackSpecs
    raw: dict[str, np.ndarray]  # spec id → subset robust accuracy per epsilon, each ε run on its own
    class_names: list[str] | None = None

    def by_class(self, hit: torch.Tensor) -> str:
        """'benign 0 of 44, malignant 20 of 20': per true class, how many subset images `hit` marks."""
        labels = self.subset.labels.cpu()
        hit = hit.cpu()
        parts = []
        for label in sorted(set(labels.tolist())):
            mine = labels == label
            name = self.class_names[label] if self.class_names and label < len(self.class_names) else f"class {label}"
            parts.append(f"{name} {int(hit[mine].sum())} of {int(mine.sum())}")
        return ", ".join(parts)

    def plugin(self, spec: Any) -> AttackPlugin:
        """The attack plugin of one of the plan's attacks."""
        return self.registry.get("attack", spec.attack)

    def chunks(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """(chunk index, images, labels) of the subset in batches."""
        size = self.batch_size
        for k, start in enumerate(range(0, len(self.subset), size)):
            yield k, self.subset.images[start:start + size], self.subset.labels[start:start + size]

    def generator(self, *parts: object) -> torch.Generator:
        """A seeded generator on the subset's device for one probe."""
        device = self.subset.images.device
        return torch.Generator(device=device).manual_seed(batch_seed(self.seed, "indicators", *parts))


def allowance(base: float, n: int, images: float) -> float:
    """A tolerance of at least `images` images out of `n`, so that one stray image never decides a check."""
    return max(base, images / n) if n else base


def _jsonable(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def select_subset(model: nn.Module, split: Any, device: torch.device, batch_size: int, seed: int,
                  size: int = SUBSET_SIZE) -> ProbeImages:
    """Up to `size` clean-correct images, visiting the split in a seeded order (deterministic)."""
    order = np.random.default_rng(batch_seed(seed, "indicators:subset")).permutation(len(split))
    images, labels, indices = [], [], []
    for start in range(0, len(order), batch_size):
        chunk = [int(i) for i in order[start:start + batch_size]]
        items = [split[i] for i in chunk]
        x = torch.stack([torch.as_tensor(img) for img, _ in items]).to(device, torch.float32)
        y = torch.tensor([int(lbl) for _, lbl in items], dtype=torch.int64, device=device)
        with torch.no_grad():
            correct = (model(x).argmax(dim=1) == y).cpu().numpy()
        keep = np.flatnonzero(correct)[: size - len(indices)]
        images.append(x[keep])
        labels.append(y[keep])
        indices += [chunk[k] for k in keep]
        if len(indices) >= size:
            break
    if not indices:
        shape = tuple(split[0][0].shape) if len(split) else (1, 1, 1)
        return ProbeImages(torch.empty((0, *shape), device=device), torch.empty(0, dtype=torch.int64, device=device),
                           [])
    return ProbeImages(torch.cat(images), torch.cat(labels), indices)


def plugin_robust_accuracy(ctx: Context, spec: Any, params: Any, epsilons: Sequence[float], tag: str) -> np.ndarray:
    """Subset robust accuracy per ε of an attack plugin with `params` (each ε on its own, not accumulated)."""
    plugin = ctx.plugin(spec)
    fooled = np.zeros((len(epsilons), len(ctx.subset)), dtype=bool)
    for k, x, y in ctx.chunks():
        judged = judged_attack(plugin, ctx.model, ctx.model, x, y, epsilons, params, spec.norm, spec.id,
                               batch_seed(ctx.seed, "indicators", tag, spec.id, k))
        start = k * ctx.batch_size
        for e, (_, verdict) in enumerate(judged):
            fooled[e, start:start + len(x)] = verdict.counted.cpu().numpy()
    return 1.0 - fooled.mean(axis=1) if len(ctx.subset) else np.ones(len(epsilons))
