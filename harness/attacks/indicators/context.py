"""What every indicator check works on: the probe subset, the sweep's outcomes on it, and a check's result."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.attacks.judge import judged_attack
from harness.attacks.sweep import batch_seed, run_attack
from harness.registry.contracts import AttackPlugin, TensorSplit
from harness.results.attack_outcome import AttackOutcome

SUBSET_SIZE = 64


@dataclass(frozen=True)
class CheckInfo:
    """One check: its id, what it verifies, what its threshold means, and the flag raised when it fails."""

    id: str
    description: str
    explanation: str  # one sentence: what the threshold means
    flag: str
    quantity: str = ""  # what the value is, in words with its unit: 'accuracy', 'fooling rate of random noise'
    on_subset: bool = True  # the value is measured on the probe subset (the report adds 'on N images')

    def result(self, passed: bool, value: Any, threshold: Any, detail: str, flipped_by: str | None = None,
               flag: str | None = None, concerns: list[tuple[str | None, float | None]] | None = None,
               rule: str | None = None) -> CheckResult:
        """This check's result; `flag` replaces the default flag (e.g. to name an attack-side failure);
        `concerns` lists the (attack id, ε) it speaks about (None for either: every attack or every ε; None for
        the list: the whole model's attack results); `rule` states the decision rule with its counts."""
        return CheckResult(self, bool(passed), value, threshold, detail, flipped_by, flag or self.flag,
                           [(None, None)] if concerns is None else concerns, rule)

    def not_applicable(self, why: str) -> CheckResult:
        """A passed result for a check that has nothing to check."""
        return self.result(True, None, None, f"not applicable: {why}")


@dataclass
class CheckResult:
    """One check's outcome; `to_json` is its entry in results.json (the flag goes to the indicators' flags)."""

    info: CheckInfo
    passed: bool
    value: Any
    threshold: Any
    detail: str
    flipped_by: str | None  # "probe: class n of N, ...; probe: ..." for every probe that flipped an image
    flag: str
    concerns: list[tuple[str | None, float | None]] = field(default_factory=lambda: [(None, None)])
    rule: str | None = None  # the decision rule with its counts (a count beyond chance, harness.stats.chance)
    broken: dict[tuple[str, float], np.ndarray] = field(default_factory=dict)  # (norm, ε) → subset images its
    # probes broke there

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready entry (`flipped_by` only when a probe flipped an image)."""
        entry = {"id": self.info.id, "description": self.info.description, "explanation": self.info.explanation,
                 "passed": self.passed, "value": _jsonable(self.value), "threshold": _jsonable(self.threshold),
                 "detail": self.detail, "quantity": self.info.quantity, "on_subset": self.info.on_subset,
                 "concerns": [{"attack": attack, "epsilon": eps} for attack, eps in self.concerns],
                 **({"rule": self.rule} if self.rule else {})}
        return entry if self.flipped_by is None else {**entry, "flipped_by": self.flipped_by}


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
    sweep: dict[str, np.ndarray]  # spec id → the sweep's success on the subset [n_ε, n] (broken at that ε or below)
    class_names: list[str] | None = None

    def class_name(self, label: int) -> str:
        """The class's name, or 'class N'."""
        return self.class_names[label] if self.class_names and label < len(self.class_names) else f"class {label}"

    def flipped_by(self, hits: dict[str, torch.Tensor | np.ndarray]) -> str | None:
        """'apgd_ce: benign 0 of 18, malignant 14 of 14; toward black: ...' for each probe that flipped an image."""
        named = [f"{name}: {self.by_class(hit)}" for name, hit in hits.items() if bool(np.asarray(
            hit.cpu() if isinstance(hit, torch.Tensor) else hit).any())]
        return "; ".join(named) or None

    def per_class(self, hit: torch.Tensor | np.ndarray) -> dict[str, int]:
        """How many subset images `hit` marks, per true class (every class of the subset, zeros included)."""
        labels = self.subset.labels.cpu().numpy()
        hit = np.asarray(hit.cpu() if isinstance(hit, torch.Tensor) else hit, dtype=bool)
        return {self.class_name(label): int(hit[labels == label].sum()) for label in sorted(set(labels.tolist()))}

    def by_class(self, hit: torch.Tensor | np.ndarray) -> str:
        """'benign 0 of 44, malignant 20 of 20': per true class, how many subset images `hit` marks."""
        labels = self.subset.labels.cpu().numpy()
        totals = {self.class_name(label): int((labels == label).sum()) for label in sorted(set(labels.tolist()))}
        return ", ".join(f"{name} {count} of {totals[name]}" for name, count in self.per_class(hit).items())

    def class_means(self) -> dict[str, tuple[int, torch.Tensor]]:
        """Per class of the subset: (label, mean image 1×C×H×W), the target of a trivial perturbation."""
        labels = self.subset.labels
        return {self.class_name(label): (label, self.subset.images[labels == label].mean(0, keepdim=True))
                for label in sorted(set(labels.tolist()))}

    def plugin(self, spec: Any) -> AttackPlugin:
        """The attack plugin of one of the plan's attacks."""
        return self.registry.get("attack", spec.attack)

    def accuracy(self, spec: Any) -> np.ndarray:
        """The sweep's robust accuracy on the subset, per ε of the spec."""
        return 1.0 - self.sweep[spec.id].mean(axis=1) if len(self.subset) else np.ones(len(spec.epsilons))

    def chunks(self, rows: np.ndarray | None = None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, np.ndarray]]:
        """(chunk index, images, labels, subset rows) in batches, of every subset image or of `rows`."""
        rows = np.arange(len(self.subset)) if rows is None else np.asarray(rows)
        for k, start in enumerate(range(0, len(rows), self.batch_size)):
            part = rows[start:start + self.batch_size]
            index = torch.as_tensor(part, device=self.subset.images.device)
            yield k, self.subset.images[index], self.subset.labels[index], part

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


def sweep_on_subset(model: nn.Module, subset: ProbeImages, specs: Sequence[Any], registry: Any, batch_size: int,
                    seed: int, outcomes: dict[str, AttackOutcome] | None) -> dict[str, np.ndarray]:
    """Each fixed-ε attack's success on the subset: read from the sweep's per-image outcomes where given (no
    attack is repeated), else a sweep of the subset itself."""
    result = {}
    for spec in specs:
        if outcomes is not None and spec.id in outcomes:
            result[spec.id] = outcomes[spec.id].success[:, subset.indices].copy()
        elif len(subset):
            labels = subset.labels.cpu().numpy()
            split = TensorSplit(subset.images.cpu(), labels, [str(i) for i in subset.indices],
                                [str(i) for i in subset.indices])
            outcome = run_attack(model, split, spec, registry.get("attack", spec.attack), labels, batch_size,
                                 subset.images.device, seed, "indicators")
            result[spec.id] = outcome.success
        else:
            result[spec.id] = np.zeros((len(spec.epsilons), 0), dtype=bool)
    return result


def plugin_fooled(ctx: Context, spec: Any, params: Any, epsilons: Sequence[float], rows: np.ndarray,
                  tag: str) -> np.ndarray:
    """Which of the subset rows `rows` an attack plugin with `params` breaks at each ε, each ε run on its own
    ([n_ε, len(rows)], counted by the judged-attack rule)."""
    plugin = ctx.plugin(spec)
    fooled = np.zeros((len(epsilons), len(rows)), dtype=bool)
    offset = 0
    for k, x, y, part in ctx.chunks(rows):
        judged = judged_attack(plugin, ctx.model, ctx.model, x, y, epsilons, params, spec.norm, spec.id,
                               batch_seed(ctx.seed, "indicators", tag, spec.id, k))
        for e, (_, verdict) in enumerate(judged):
            fooled[e, offset:offset + len(part)] = verdict.counted.cpu().numpy()
        offset += len(part)
    return fooled
