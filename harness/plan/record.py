"""The plan as a run recorded it (manifest.json's `plan`): its identity, and every setting a reader shows with the
plan model's defaults already applied, so no reader re-applies a default.

`PlanRecord.of(plan)` makes it from the validated Plan when a run starts; `to_json`/`from_json` are its one codec.
A v1 manifest (written before the record carried `effective`) is read by applying the plan's own defaults (the
constants and dataclass defaults of harness.plan.schema) to the recorded `resolved` plan, here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from harness.plan.schema import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DEVICE,
    DEFAULT_EPSILONS,
    DEFAULT_SEED,
    Plan,
    ReportSettings,
)

Json = dict[str, Any]


def _frozen(value: Any) -> Mapping[str, Any]:
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else MappingProxyType({})


@dataclass(frozen=True)
class AttackRecord:
    """One attack of the plan: its id (the plugin's name unless the plan gave one), plugin and ε grid."""

    id: str
    attack: str
    epsilons: tuple[float, ...]

    def to_json(self) -> Json:
        return {"id": self.id, "attack": self.attack, "epsilons": list(self.epsilons)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AttackRecord:
        return cls(str(raw["id"]), str(raw["attack"]), tuple(float(e) for e in raw.get("epsilons") or ()))


@dataclass(frozen=True)
class PlanRecord:
    """What a run's manifest says of its plan. Identity: name, source, sha256 (of the resolved plan, the run's id),
    file_sha256, resolved_yaml_sha256, overrides, the copy's file name and the hashes' explanations; `resolved` is
    the plan after ${VAR} and --set as written (no defaults). Effective settings: the values the run used."""

    name: str = ""
    source: str | None = None
    sha256: str | None = None
    file_sha256: str | None = None
    resolved_yaml_sha256: str | None = None
    overrides: tuple[str, ...] = ()
    copy: str | None = None
    hashes: Mapping[str, Any] = field(default_factory=dict)
    resolved: Mapping[str, Any] = field(default_factory=dict)
    record_paths: str = "as_written"  # how outputs name data and model locations (harness.plan.paths)
    git: Mapping[str, Any] | None = None  # the plan file's commit, date, author, modified since (pre-registration)
    # -- effective settings (defaults applied by the plan model) ----------------------------------------------
    description: str = ""
    intended_use: str = ""
    seed: int = DEFAULT_SEED
    device: str = DEFAULT_DEVICE
    batch_size: int | str = DEFAULT_BATCH_SIZE  # 'auto' when the plan asked the runner to choose
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS
    attacks: tuple[AttackRecord, ...] = ()
    corruption_ids: tuple[str, ...] = ()
    susceptibility_cutoff: float = ReportSettings.susceptibility_cutoff
    n_examples: int = ReportSettings.n_examples

    def __post_init__(self) -> None:
        object.__setattr__(self, "hashes", _frozen(self.hashes))
        object.__setattr__(self, "resolved", _frozen(self.resolved))

    @classmethod
    def of(cls, plan: Plan, *, copy: str, resolved_yaml_sha256: str, hashes: Mapping[str, Any],
           git: Mapping[str, Any] | None = None) -> PlanRecord:
        """The record of a validated plan (the runner writes it when the run starts)."""
        return cls(
            name=plan.name, source=plan.source, sha256=plan.sha256, file_sha256=plan.file_sha256,
            resolved_yaml_sha256=resolved_yaml_sha256, overrides=tuple(plan.overrides), copy=copy, hashes=hashes,
            record_paths=plan.record_paths, git=git,
            resolved=plan.resolved, description=plan.description, intended_use=plan.intended_use, seed=plan.seed,
            device=plan.device, batch_size="auto" if plan.batch_size_auto else plan.batch_size,
            epsilons=tuple(plan.epsilons),
            attacks=tuple(AttackRecord(s.id, s.attack, tuple(s.epsilons)) for s in plan.attacks),
            corruption_ids=tuple(s.id for s in plan.corruptions),
            susceptibility_cutoff=plan.report.susceptibility_cutoff, n_examples=plan.report.n_examples)

    def attack_ids(self) -> list[str]:
        """The plan's attack ids, in plan order."""
        return [a.id for a in self.attacks]

    def to_json(self) -> Json:
        """manifest.json's `plan`: the identity keys at the top (as v1 wrote them) and the effective settings."""
        return {
            "name": self.name, "source": self.source, "sha256": self.sha256, "resolved": dict(self.resolved),
            "overrides": list(self.overrides), "copy": self.copy, "file_sha256": self.file_sha256,
            "resolved_yaml_sha256": self.resolved_yaml_sha256, "hashes": dict(self.hashes),
            **({"record_paths": self.record_paths} if self.record_paths != "as_written" else {}),
            **({"git": dict(self.git)} if self.git is not None else {}),
            "effective": {
                "description": self.description, "intended_use": self.intended_use, "seed": self.seed,
                "device": self.device, "batch_size": self.batch_size, "epsilons": list(self.epsilons),
                "attacks": [a.to_json() for a in self.attacks], "corruption_ids": list(self.corruption_ids),
                "report": {"susceptibility_cutoff": self.susceptibility_cutoff, "n_examples": self.n_examples},
            },
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> PlanRecord:
        """The record from manifest.json's `plan` (empty for a run without one); v1 records get the plan's
        defaults applied to their `resolved` plan."""
        raw = raw if isinstance(raw, Mapping) else {}
        resolved = raw.get("resolved") if isinstance(raw.get("resolved"), Mapping) else {}
        identity = dict(
            name=str(raw.get("name") or resolved.get("name") or ""), source=raw.get("source"),
            sha256=raw.get("sha256"), file_sha256=raw.get("file_sha256"),
            resolved_yaml_sha256=raw.get("resolved_yaml_sha256"),
            overrides=tuple(str(o) for o in raw.get("overrides") or ()), copy=raw.get("copy"),
            hashes=raw.get("hashes") or {}, resolved=resolved,
            record_paths=str(raw.get("record_paths") or "as_written"),
            git=raw.get("git") if isinstance(raw.get("git"), Mapping) else None)
        effective = raw.get("effective")
        if isinstance(effective, Mapping):
            report = effective.get("report") or {}
            return cls(**identity, description=str(effective.get("description") or ""),
                       intended_use=str(effective.get("intended_use") or ""), seed=int(effective["seed"]),
                       device=str(effective["device"]), batch_size=effective["batch_size"],
                       epsilons=tuple(float(e) for e in effective["epsilons"]),
                       attacks=tuple(AttackRecord.from_json(a) for a in effective.get("attacks") or ()),
                       corruption_ids=tuple(str(c) for c in effective.get("corruption_ids") or ()),
                       susceptibility_cutoff=float(report["susceptibility_cutoff"]),
                       n_examples=int(report["n_examples"]))
        return cls(**identity, **_v1_effective(resolved))


def _v1_effective(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The effective settings of a v1 record: its resolved plan (already validated when it ran) with the plan's
    defaults where it left a key out."""
    epsilons = tuple(float(e) for e in resolved.get("epsilons") or DEFAULT_EPSILONS)
    attacks = []
    for item in resolved.get("attacks") or ():
        if isinstance(item, Mapping) and isinstance(item.get("attack"), str):
            grid = tuple(float(e) for e in item["epsilons"]) if item.get("epsilons") else epsilons
            attacks.append(AttackRecord(str(item.get("id") or item["attack"]), item["attack"], grid))
    corruptions = [item for item in resolved.get("corruptions") or () if isinstance(item, Mapping)]
    report = resolved.get("report") if isinstance(resolved.get("report"), Mapping) else {}
    defaults = ReportSettings()
    return dict(
        description=str(resolved.get("description") or ""), intended_use=str(resolved.get("intended_use") or ""),
        seed=int(resolved.get("seed", DEFAULT_SEED)), device=str(resolved.get("device", DEFAULT_DEVICE)),
        batch_size=resolved.get("batch_size", DEFAULT_BATCH_SIZE), epsilons=epsilons, attacks=tuple(attacks),
        corruption_ids=tuple(str(c.get("id") or c.get("corruption")) for c in corruptions),
        susceptibility_cutoff=float(report.get("susceptibility_cutoff", defaults.susceptibility_cutoff)),
        n_examples=int(report.get("n_examples", defaults.n_examples)))

