"""ReportInput: what every report section reads (the run's RunResults, samples, examples, plan) and shared queries."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from harness.formatting import eps_text
from harness.plan.record import PlanRecord
from harness.registry.units import NativeUnits
from harness.results.manifest import Manifest
from harness.results.model import WORST_CASE, AttackPoint, AttackResult, CorruptionResult, ModelResult, thaw
from harness.results.samples import SampleOutcome
from harness.results.status import ERROR, JUDGED, RUNNING
from harness.results.view import RunResults

if TYPE_CHECKING:
    from harness.report.saved_corruption_examples import CorruptionExamples
    from harness.report.saved_examples import Examples

ROLES = ("naive", "hardened")
T = TypeVar("T")


def first_found(lookup: Callable[[str, str], T | None], item_id: str) -> T | None:
    """`lookup(role, item_id)` for the first role (naive, then hardened) that has it, or None."""
    return next((found for role in ROLES if (found := lookup(role, item_id)) is not None), None)


def plugin_label(item_id: str, plugin: str | None) -> str:
    """An attack's or corruption's id, with its plugin in brackets when the id is not the plugin's name."""
    return item_id if not plugin or plugin == item_id else f"{item_id} ({plugin})"


@dataclass
class ReportInput:
    """A run as the report sees it; nothing here is recomputed from images or models."""

    run: RunResults
    samples: tuple[SampleOutcome, ...] = ()  # from samples.csv; empty when missing or unreadable
    examples: dict[str, Examples] = field(default_factory=dict)  # by model role
    corruption_examples: dict[str, CorruptionExamples] = field(default_factory=dict)  # by model role
    plan_yaml: str | None = None  # the resolved plan as YAML (shown when plan.source.yaml is missing)
    plan_source: str | None = None  # plan.source.yaml: the plan file exactly as written (Appendix A)
    plan_source_sha256: str | None = None  # sha256 of plan.source.yaml's bytes, checked against the manifest
    problems: list[str] = field(default_factory=list)  # files that could not be read (shown as warnings)

    # -- the run's files ----------------------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        """manifest.json, typed (harness.results.manifest)."""
        return self.run.record

    @property
    def plan(self) -> PlanRecord:
        """The plan as the run recorded it, with the defaults the run used (never re-applied here)."""
        return self.run.record.plan

    @functools.cached_property
    def resolved(self) -> dict[str, Any]:
        """The resolved plan recorded in the manifest, as written (no defaults; empty if absent)."""
        return thaw(self.plan.resolved)

    @property
    def title(self) -> str:
        """The plan's name."""
        return self.run.plan_name or self.plan.name or "harness run"

    @property
    def plan_sha256(self) -> str | None:
        """The sha256 of the resolved plan (canonical JSON; it names the run directory)."""
        return self.run.document.plan.sha256 or self.plan.sha256

    @property
    def plan_file_sha256(self) -> str | None:
        """The sha256 of the plan file as written (recorded by harness versions that keep plan.source.yaml)."""
        return self.plan.file_sha256

    @property
    def plan_source_verified(self) -> bool | None:
        """Whether plan.source.yaml's bytes still hash to the manifest's plan file sha256 (None: nothing to check)."""
        if self.plan_source_sha256 is None or not self.plan_file_sha256:
            return None
        return self.plan_source_sha256 == self.plan_file_sha256

    @property
    def overrides(self) -> list[str]:
        """The command-line overrides (`--set`) applied to the plan file."""
        return list(self.plan.overrides)

    @property
    def harness_version(self) -> str:
        """The harness version that made the run."""
        return self.manifest.harness_version or "n/a"

    def verdict_word(self) -> tuple[str, str]:
        """The verdict as the cover and the running title show it, and its CSS class; a run without a verdict
        shows its status (ERROR, INTERRUPTED, RUNNING)."""
        verdict = self.run.verdict
        if verdict is None:
            status = self.run.status
            return status.upper(), "fail" if status == ERROR else "none"
        if verdict.passed:
            return "PASS", "pass"
        return ("INCONCLUSIVE", "inconclusive") if verdict.inconclusive else ("FAIL", "fail")

    def stop_description(self) -> str | None:
        """How the run stopped short, e.g. 'ERROR at stage naive:attack:pgd: <the error line>' or 'INTERRUPTED at
        stage model'; 'RUNNING (stage …)' for a live run; None for a run that passed or failed."""
        run = self.run
        status = run.status
        if status in JUDGED:
            return None
        where = f" at stage {run.stage}" if run.stage else ""
        if status == RUNNING:
            return f"RUNNING: the run is still in progress{where.replace(' at', ',')}"
        return f"{status.upper()}{where}" + (f": {run.error}" if run.error else
                                             " (the process ended without recording why, e.g. it was killed)")

    @property
    def cutoff(self) -> float:
        """The susceptibility cutoff epsilon of the plan's report settings."""
        return self.plan.susceptibility_cutoff

    # -- models and attacks -------------------------------------------------------------------------------
    @functools.cached_property
    def roles(self) -> list[str]:
        """The evaluated model roles, naive first."""
        return [role for role in ROLES if role in self.run.model_roles]

    def model(self, role: str) -> ModelResult | None:
        """One role's results, or None if it was not evaluated."""
        return self.run.document.models.get(role) if role in ROLES else None

    @functools.cached_property
    def attack_ids(self) -> list[str]:
        """The worst case over attacks first (where a model has one), then attack ids in plan order, then any the
        results hold that the plan does not list."""
        ids: list[str] = [WORST_CASE] if any((m := self.model(r)) and m.worst_case for r in self.roles) else []
        ids += [attack_id for attack_id in dict.fromkeys(self.plan.attack_ids()) if attack_id not in ids]
        for role in self.roles:
            ids += [attack_id for attack_id in self.run.attacks(role) if attack_id not in ids]
        return ids

    @functools.cached_property
    def run_attack_ids(self) -> list[str]:
        """The attacks that were planned or run, without the worst case over them (which is not an attack)."""
        return [attack_id for attack_id in self.attack_ids if attack_id != WORST_CASE]

    def attack_result(self, role: str, attack_id: str) -> AttackResult | None:
        """One attack on one role, or None; WORST_CASE gives the worst case over attacks in an attack's shape."""
        model = self.model(role)
        if model is not None and attack_id == WORST_CASE:
            worst = model.worst_case
            if worst is None:
                return None
            points = tuple(replace(p, bound_violations=0) for p in worst.points)  # each attack counted its own
            return AttackResult(attack=worst.label, norm=worst.norm, kind="fixed_epsilon", params={}, points=points)
        return None if model is None else model.attacks.get(attack_id)

    def attack_name(self, attack_id: str) -> str:
        """How headlines name an attack: its id, or 'worst case of N attacks' for the worst case."""
        return self.attack_label(attack_id) if attack_id == WORST_CASE else attack_id

    def upper_bound(self, role: str, attack_id: str, epsilon: float) -> bool:
        """Whether an attack's number at ε is only an upper bound (an indicator shows the attack failed there)."""
        model = self.model(role)
        return model is not None and attack_id != WORST_CASE and model.upper_bound(attack_id, epsilon)

    def attack(self, attack_id: str) -> AttackResult | None:
        """An attack's plugin, norm, kind and parameters: from the first role it ran on (None if on none)."""
        return first_found(self.attack_result, attack_id)

    def attack_label(self, attack_id: str) -> str:
        """'pgd' or 'strong_pgd (pgd_linf)' when the id is not the plugin's name; 'worst case of N attacks'."""
        attack = self.attack(attack_id)
        if attack_id == WORST_CASE and attack is not None:
            return attack.attack
        return plugin_label(attack_id, attack.attack if attack else None)

    def attack_ids_of_kind(self, kind: str) -> list[str]:
        """The attack ids of one kind ('fixed_epsilon' or 'minimal')."""
        return [a for a in self.attack_ids if (attack := self.attack(a)) is not None and attack.kind == kind]

    @functools.cached_property
    def corruption_ids(self) -> list[str]:
        """Corruption ids in plan order, then any the results hold that the plan does not list."""
        planned = list(self.plan.corruption_ids)
        ran = [cid for role in self.roles for cid in self.run.corruptions(role)]
        return [cid for cid in dict.fromkeys([*planned, *ran]) if isinstance(cid, str) and cid in ran]

    def corruption_result(self, role: str, corruption_id: str) -> CorruptionResult | None:
        """One corruption on one role, or None."""
        model = self.model(role)
        return None if model is None else model.corruptions.get(corruption_id)

    def corruption(self, corruption_id: str) -> CorruptionResult | None:
        """A corruption's plugin, parameter, unit and parameters: from the first role it ran on."""
        return first_found(self.corruption_result, corruption_id)

    def corruption_label(self, corruption_id: str) -> str:
        """'ct_noise' or 'ct_nps_sharp (ct_nps_noise)' when the id is not the plugin's name."""
        found = self.corruption(corruption_id)
        return plugin_label(corruption_id, found.corruption if found else None)

    def point_near_cutoff(self, role: str, attack_id: str) -> AttackPoint | None:
        """The point of an attack at the grid epsilon closest to the susceptibility cutoff."""
        attack = self.attack_result(role, attack_id)
        if attack is None:
            return None
        eps = attack.grid.closest(self.cutoff)
        return None if eps is None else attack.find(eps)

    def samples_for(self, role: str, attack_id: str) -> list[SampleOutcome]:
        """samples.csv rows of one model and attack."""
        return [s for s in self.samples if s.model == role and s.attack == attack_id]

    # -- data set -----------------------------------------------------------------------------------------
    @functools.cached_property
    def manifest_dataset(self) -> dict[str, Any]:
        """The manifest's data set section (plugin, shape, provenance)."""
        return thaw(self.manifest.dataset)

    @functools.cached_property
    def class_names(self) -> list[str]:
        """The class names (from the results, else the manifest)."""
        dataset = self.run.dataset
        return list(dataset.class_names if dataset else self.manifest_dataset.get("class_names") or [])

    def class_name(self, index: Any) -> str:
        """The name of a class index ('class 3' when the index has no name)."""
        try:
            i = int(index)
        except (TypeError, ValueError):
            return str(index)
        return self.class_names[i] if 0 <= i < len(self.class_names) else f"class {i}"

    @property
    def positive_class(self) -> int:
        """The index of the positive class."""
        dataset = self.run.dataset
        return dataset.positive_class if dataset else self.manifest_dataset.get("positive_class", 1)

    @property
    def modality(self) -> str | None:
        """The data set's imaging modality as recorded in the manifest ('CT', 'MRI', ...), or None when unknown."""
        found = self.manifest_dataset.get("modality")
        return found if isinstance(found, str) and found else None

    @functools.cached_property
    def native(self) -> NativeUnits | None:
        """The data's native intensity units (from the results, else the manifest)."""
        if self.run.dataset and self.run.dataset.native_units:
            return self.run.dataset.native_units
        raw = self.manifest_dataset.get("native_units")
        return NativeUnits(raw["per_unit"], raw.get("unit", ""), raw.get("note") or "") if raw else None

    def native_text(self, eps: float, point: AttackPoint | None = None) -> str | None:
        """An epsilon in native units ('6 HU'), or None without native units."""
        if point is not None and point.epsilon_native:
            return point.epsilon_native
        if self.native and self.native.per_unit:
            return self.native.describe(eps).strip()
        return None

    def eps_native(self, eps: float, point: AttackPoint | None = None) -> str:
        """'0.004 (6 HU)': an epsilon with its native-unit value, or the bare epsilon without native units."""
        native = self.native_text(eps, point)
        return eps_text(eps) + (f" ({native})" if native else "")

    def native_note(self) -> str | None:
        """'1.0 on [0,1] pixels = 1500 HU (lung window W1500 L-600)', or None."""
        if not self.native:
            return None
        note = f"1.0 on [0,1] pixels = {self.native.per_unit:g} {self.native.unit}".strip()
        return note + (f" ({self.native.note})" if self.native.note else "")
