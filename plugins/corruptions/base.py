"""The shared machinery of the built-in corruptions: the severity table, per-image seeds and the apply loop.

A subclass declares its name, modality, parameter, unit, Params and five severity values, and implements
`corrupt` on a float64 numpy batch with one random generator per image. `apply` checks the units, builds the
generators from (seed, name, global index) and returns float32 images clipped to [0,1] on the input's device.
"""

from __future__ import annotations

import abc
import dataclasses
import typing
import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from harness.errors import DataError, PlanError
from harness.registry.contracts import SEVERITY_LEVELS, CorruptionContext, Severity
from harness.registry.validation import severity_problems

SEVERITY_NAMES = ("slight", "mild", "moderate", "strong", "severe")


def severity_scale(values: Sequence[float]) -> tuple[Severity, ...]:
    """Five Severity entries named slight..severe for the given parameter values (level 1 first)."""
    if len(values) != len(SEVERITY_LEVELS):
        raise ValueError(f"expected {len(SEVERITY_LEVELS)} severity values, got {len(values)}")
    return tuple(Severity(level, name, float(value))
                 for level, name, value in zip(SEVERITY_LEVELS, SEVERITY_NAMES, values, strict=True))


def image_rngs(seed: int, name: str, indices: Sequence[int]) -> list[np.random.Generator]:
    """One generator per image, a pure function of (seed, corruption name, global sample index)."""
    key = zlib.crc32(name.encode("utf-8"))
    return [np.random.default_rng([seed % 2**64, key, int(index)]) for index in indices]


def check_severities(cls: type) -> None:
    """Raise TypeError unless `cls` meets the core's five-severity rule (harness.registry.validation)."""
    problems = severity_problems(cls)
    if problems:
        raise TypeError(f"{cls.__name__}: {'; '.join(problems)}")


class Corruption(abc.ABC):
    """Base of the built-in corruption plugins (satisfies harness.registry.contracts.CorruptionPlugin)."""

    name: ClassVar[str]
    description: ClassVar[str]
    modality: ClassVar[str]
    requires_unit: ClassVar[str | None] = None
    parameter: ClassVar[str]
    unit: ClassVar[str]
    severities: ClassVar[tuple[Severity, ...]]
    Params: ClassVar[type]
    spatial_ranks: ClassVar[tuple[int, ...]] = (2,)  # 2: N×C×H×W images; 3: N×C×D×H×W volumes (whole)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a subclass whose severity table is malformed when it is defined."""
        super().__init_subclass__(**kwargs)
        check_severities(cls)

    def params_for(self, level: int, base: Any | None = None) -> Any:
        """`base` (default: Params()) with the severity parameter set to the value of `level` (1..5)."""
        if level not in SEVERITY_LEVELS:
            raise PlanError(f"corruption '{self.name}': severity must be one of 1, 2, 3, 4, 5, got {level!r}")
        value: float | int = self.severities[level - 1].value
        if typing.get_type_hints(self.Params).get(self.parameter) is int:
            value = int(value)
        return dataclasses.replace(base if base is not None else self.Params(), **{self.parameter: value})

    def apply(self, images: torch.Tensor, indices: Sequence[int], params: Any,
              context: CorruptionContext) -> torch.Tensor:
        """Corrupted copies of `images` (N×C×H×W, or N×C×D×H×W volumes, in [0,1]); image i depends only on seed,
        name and indices[i]."""
        if images.ndim not in (4, 5) or not images.is_floating_point():
            raise ValueError(f"{self.name}: images must be a float N×C×H×W or N×C×D×H×W tensor, got "
                             f"{images.dtype} {tuple(images.shape)}")
        if images.ndim - 2 not in self.spatial_ranks:
            raise DataError(f"corruption '{self.name}' is for {'volumes' if 3 in self.spatial_ranks else '2-D images'}"
                            f", but the data are {'volumes' if images.ndim == 5 else '2-D images'}; docs/volumes.md "
                            "lists the corruptions for each")
        index_list = [int(i) for i in np.asarray(indices).reshape(-1)]
        if len(index_list) != images.shape[0]:
            raise ValueError(f"{self.name}: {images.shape[0]} images but {len(index_list)} indices")
        batch = images.detach().to("cpu", torch.float64).numpy()
        out = self.corrupt(batch, image_rngs(context.seed, self.name, index_list), params, context)
        return torch.from_numpy(np.clip(out, 0.0, 1.0).astype(np.float32)).to(images.device)

    def native_per_unit(self, context: CorruptionContext) -> float:
        """Native units per 1.0 of intensity (e.g. 1500 HU); DataError when the data set is not in requires_unit."""
        units = context.native_units
        if units is None or units.unit != self.requires_unit:
            found = f"'{units.unit}'" if units is not None else "not given"
            raise DataError(f"corruption '{self.name}' is defined in {self.requires_unit}, but the data set's "
                            f"native units are {found}; declare them on the data set or use a corruption in "
                            f"[0,1] intensities")
        return float(units.per_unit)

    @abc.abstractmethod
    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: Any,
                context: CorruptionContext) -> np.ndarray:
        """The corrupted batch (float64 N×C×H×W, clipped by the caller); rngs[i] belongs to image i."""
