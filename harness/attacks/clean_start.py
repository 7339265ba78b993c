"""The clean-start runs of the plan's random-start attacks (AutoAttack's convention): the same attack from the
clean image, whose per-image breaks join the worst case over attacks (never the attack's own numbers)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from harness.plan.schema import AttackSpec

SUFFIX = "__clean_start"  # the clean-start run's id (and checkpoint name): '<attack id>__clean_start'


def clean_start_specs(attacks: Iterable[AttackSpec]) -> list[AttackSpec]:
    """Per fixed-ε attack whose parameters have `random_start: true`, the same attack with the random start off."""
    return [dataclasses.replace(spec, id=spec.id + SUFFIX, params=dataclasses.replace(spec.params, random_start=False))
            for spec in attacks if spec.kind == "fixed_epsilon" and dataclasses.is_dataclass(spec.params)
            and getattr(spec.params, "random_start", None) is True]


def clean_start_name(spec: AttackSpec) -> str:
    """How the worst case names a clean-start run: '<attack id> from the clean image'."""
    return spec.id.removesuffix(SUFFIX) + " from the clean image"
