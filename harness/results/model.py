"""The results document (results.json, schema `harness.results`) as typed, read-only dataclasses.

`ResultsDocument.to_json()` gives the JSON-ready dict the runner writes; `ResultsDocument.from_json()` reads it
back (every readable schema version), so `from_json(to_json(doc)) == doc`. Values are stored exactly as computed:
nothing is rounded or converted on the way to or from JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from harness.errors import EXIT_INCONCLUSIVE
from harness.formatting import eps_label
from harness.plan.epsilons import EpsilonGrid
from harness.registry.units import NativeUnits
from harness.results import status as run_status
from harness.results.certification import CertificationResult
from harness.results.intervals import (  # noqa: F401  (re-exported: the results model's one import point)
    Intervals,
    MetricInterval,
    PatientInterval,
    intervals_json,
    read_intervals,
)

SCHEMA = "harness.results"
SCHEMA_VERSION = 2  # 2: status is running | passed | failed | error | interrupted (v1: running | complete)
READABLE_VERSIONS = (1, 2)
QUANTILES = (10, 25, 50, 75, 90)  # minimal-epsilon quantiles, in percent
Json = dict[str, Any]


def freeze(value: Any) -> Any:
    """A deep read-only copy of JSON data: mappings become MappingProxyType, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """Plain JSON data (dicts and lists) from frozen data."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(item) for item in value]
    return value


def _present(**values: Any) -> Json:
    """The optional keys of a results.json object that have a value (None leaves the key out)."""
    return {key: value for key, value in values.items() if value is not None}


def _set(obj: Any, **values: Any) -> None:
    """Normalise fields of a frozen dataclass in __post_init__."""
    for name, value in values.items():
        object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class PlanRef:
    """The plan a run executed: its name, the sha256 of the resolved plan (the plan id) and the device under test
    its `subject:` states (harness.plan.subject, as JSON; None when the plan states none)."""

    name: str
    sha256: str
    subject: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DatasetSummary:
    """The test data: name, classes, content hash, size and native intensity units."""

    name: str
    class_names: tuple[str, ...]
    positive_class: int
    content_sha256: str | None
    n_test: int
    native_units: NativeUnits | None = None
    leakage: Mapping[str, Any] | None = None  # the test split against the model's training data (harness.run.reference)

    def __post_init__(self) -> None:
        _set(self, class_names=tuple(self.class_names))

    def to_json(self) -> Json:
        """The `dataset` section of results.json."""
        units = self.native_units
        return {"name": self.name, "class_names": list(self.class_names), "positive_class": self.positive_class,
                "content_sha256": self.content_sha256, "n_test": self.n_test,
                "native_units": None if units is None else {"per_unit": units.per_unit, "unit": units.unit,
                                                            "note": units.note, **_present(offset=units.offset)},
                **_present(leakage=dict(self.leakage) if self.leakage else None)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DatasetSummary:
        """Read the `dataset` section."""
        units = raw.get("native_units")
        return cls(name=raw["name"], class_names=tuple(raw["class_names"]), positive_class=raw["positive_class"],
                   content_sha256=raw.get("content_sha256"), n_test=raw["n_test"],
                   native_units=None if not units else NativeUnits(units["per_unit"], units["unit"],
                                                                   units.get("note", ""), units.get("offset")),
                   leakage=raw.get("leakage"))


@dataclass(frozen=True)
class CleanMetrics:
    """Clean (unattacked) metrics of one model on the test split; None where undefined on the data."""

    accuracy: float | None
    sensitivity: float | None
    specificity: float | None
    roc_auc: float | None
    n: int
    confusion_matrix: tuple[tuple[int, ...], ...]  # rows: true class, columns: predicted class
    intervals: Intervals = field(default_factory=dict)
    macro_sensitivity: float | None = None  # K > 2 classes: mean per-class recall (balanced accuracy)

    def __post_init__(self) -> None:
        _set(self, confusion_matrix=tuple(tuple(row) for row in self.confusion_matrix),
             intervals=MappingProxyType(dict(self.intervals)))

    def to_json(self) -> Json:
        """The `clean` section of one model."""
        return {"accuracy": self.accuracy, "sensitivity": self.sensitivity, "specificity": self.specificity,
                "roc_auc": self.roc_auc, "n": self.n, "confusion_matrix": [list(row) for row in self.confusion_matrix],
                **_present(macro_sensitivity=self.macro_sensitivity), **intervals_json(self.intervals)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CleanMetrics:
        """Read the `clean` section."""
        return cls(accuracy=raw.get("accuracy"), sensitivity=raw.get("sensitivity"),
                   specificity=raw.get("specificity"), roc_auc=raw.get("roc_auc"), n=raw["n"],
                   confusion_matrix=raw.get("confusion_matrix", ()), intervals=read_intervals(raw),
                   macro_sensitivity=raw.get("macro_sensitivity"))


@dataclass(frozen=True)
class AttackPoint:
    """One attack at one epsilon for one model."""

    epsilon: float
    robust_accuracy: float | None
    robust_sensitivity: float | None
    robust_specificity: float | None
    attack_success_rate: float | None  # among images classified correctly without attack
    bound_violations: int | None  # adversarials outside their bound, not counted; None: not counted (subgroups)
    n: int
    epsilon_native: str | None = None
    intervals: Intervals = field(default_factory=dict)
    robust_macro_sensitivity: float | None = None  # K > 2 classes: mean per-class recall under attack

    def __post_init__(self) -> None:
        _set(self, intervals=MappingProxyType(dict(self.intervals)))

    def to_json(self) -> Json:
        """One entry of an attack's `points`."""
        return {"epsilon": self.epsilon, "epsilon_native": self.epsilon_native, "n": self.n,
                "robust_accuracy": self.robust_accuracy, "robust_sensitivity": self.robust_sensitivity,
                "robust_specificity": self.robust_specificity, "attack_success_rate": self.attack_success_rate,
                **_present(robust_macro_sensitivity=self.robust_macro_sensitivity),
                "bound_violations": self.bound_violations, **intervals_json(self.intervals)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AttackPoint:
        """Read one point."""
        return cls(epsilon=raw["epsilon"], robust_accuracy=raw.get("robust_accuracy"),
                   robust_sensitivity=raw.get("robust_sensitivity"), robust_specificity=raw.get("robust_specificity"),
                   attack_success_rate=raw.get("attack_success_rate"),
                   bound_violations=raw.get("bound_violations", 0), n=raw["n"],
                   epsilon_native=raw.get("epsilon_native"), intervals=read_intervals(raw),
                   robust_macro_sensitivity=raw.get("robust_macro_sensitivity"))


@dataclass(frozen=True)
class MinEpsilonSummary:
    """Quantiles of the per-image minimal epsilon that changes the model's decision (minimal attacks)."""

    n: int
    n_not_found: int  # images where the attack found no adversarial
    mean_found: float | None
    p10: float | None
    p25: float | None
    p50: float | None
    p75: float | None
    p90: float | None

    @property
    def median(self) -> float | None:
        """The median minimal epsilon (p50)."""
        return self.p50

    def quantile(self, percent: int) -> float | None:
        """One of the QUANTILES (10, 25, 50, 75, 90)."""
        if percent not in QUANTILES:
            raise KeyError(f"quantile p{percent} is not recorded (have: {', '.join(f'p{q}' for q in QUANTILES)})")
        return getattr(self, f"p{percent}")

    def to_json(self) -> Json:
        """An attack's `min_epsilon` section (`median` repeats p50)."""
        return {"n": self.n, "n_not_found": self.n_not_found, "median": self.p50, "mean_found": self.mean_found,
                **{f"p{q}": self.quantile(q) for q in QUANTILES}}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> MinEpsilonSummary:
        """Read a `min_epsilon` section."""
        return cls(n=raw["n"], n_not_found=raw["n_not_found"], mean_found=raw.get("mean_found"),
                   **{f"p{q}": raw.get(f"p{q}", raw.get("median") if q == 50 else None) for q in QUANTILES})


@dataclass(frozen=True)
class AttackResult:
    """One attack on one model: its plugin, norm, kind and parameters, a point per epsilon, minimal epsilons."""

    attack: str
    norm: str
    kind: str  # 'fixed_epsilon' or 'minimal'
    params: Mapping[str, Any]
    points: tuple[AttackPoint, ...]
    min_epsilon: MinEpsilonSummary | None = None  # minimal-perturbation attacks only

    def __post_init__(self) -> None:
        _set(self, params=freeze(self.params), points=tuple(self.points))

    @property
    def grid(self) -> EpsilonGrid:
        """The epsilons this attack ran at."""
        return EpsilonGrid.of(p.epsilon for p in self.points)

    def find(self, epsilon: float) -> AttackPoint | None:
        """The point at exactly this epsilon, or None."""
        return next((p for p in self.points if p.epsilon == epsilon), None)

    def point(self, epsilon: float, attack_id: str | None = None) -> AttackPoint:
        """The point at this epsilon (KeyError naming the grid otherwise)."""
        found = self.find(epsilon)
        if found is None:
            raise KeyError(f"attack {attack_id or self.attack!r} did not run at epsilon {eps_label(epsilon)} "
                           f"(grid: {self.grid.text()})")
        return found

    def to_json(self) -> Json:
        """One entry of a model's `attacks`."""
        return {"attack": self.attack, "norm": self.norm, "kind": self.kind, "params": thaw(self.params),
                "points": [p.to_json() for p in self.points],
                **_present(min_epsilon=self.min_epsilon and self.min_epsilon.to_json())}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AttackResult:
        """Read one attack."""
        summary = raw.get("min_epsilon")
        return cls(attack=raw["attack"], norm=raw["norm"], kind=raw["kind"], params=raw.get("params") or {},
                   points=tuple(AttackPoint.from_json(p) for p in raw.get("points", ())),
                   min_epsilon=MinEpsilonSummary.from_json(summary) if summary else None)


@dataclass(frozen=True)
class IndicatorCheck:
    """One attack-failure indicator: whether it passed, its value against its threshold, and why."""

    id: str
    description: str
    passed: bool
    value: Any  # a number, or None where the check was not applicable or could not be computed
    threshold: Any
    detail: str
    explanation: str | None = None  # one sentence on what the threshold means
    flipped_by: str | None = None  # which probe flipped images
    concerns: tuple[tuple[str | None, float | None], ...] | None = None  # (attack id, ε) it speaks about (None
    # in a pair: every attack or every ε; None for the whole: not recorded, so every attack and ε of the model)
    rule: str | None = None  # the decision rule with its counts (harness.stats.chance)
    quantity: str | None = None  # what the value is, with its unit ('accuracy'); None in results from before
    on_subset: bool = False  # the value is measured on the probe subset (Indicators.n_subset images)

    def __post_init__(self) -> None:
        if self.concerns is not None:
            _set(self, concerns=tuple((a, None if e is None else float(e)) for a, e in self.concerns))

    def concerns_point(self, attack: str | None, epsilon: float | None) -> bool:
        """Whether this check speaks about an attack at an ε (None: any attack, any ε)."""
        return any((a is None or attack is None or a == attack) and (e is None or epsilon is None
                                                                      or abs(e - epsilon) < 1e-12)
                   for a, e in (self.concerns if self.concerns is not None else ((None, None),)))

    def to_json(self) -> Json:
        """One entry of `checks` (explanation and flipped_by only when set)."""
        return {"id": self.id, "description": self.description, "passed": self.passed, "value": self.value,
                "threshold": self.threshold, "detail": self.detail,
                **({"on_subset": True} if self.on_subset else {}),
                **_present(explanation=self.explanation, flipped_by=self.flipped_by, rule=self.rule,
                           quantity=self.quantity,
                           concerns=None if self.concerns is None else [{"attack": a, "epsilon": e}
                                                                       for a, e in self.concerns])}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> IndicatorCheck:
        """Read one check (a check without `concerns`, from before, speaks about every attack and ε)."""
        found = raw.get("concerns")
        concerns = None if found is None else tuple((c.get("attack"), c.get("epsilon")) for c in found)
        return cls(id=raw["id"], description=raw.get("description", ""), passed=bool(raw["passed"]),
                   value=raw.get("value"), threshold=raw.get("threshold"), detail=raw.get("detail") or "",
                   explanation=raw.get("explanation"), flipped_by=raw.get("flipped_by"), concerns=concerns,
                   rule=raw.get("rule"), quantity=raw.get("quantity") or None,
                   on_subset=raw.get("on_subset") is True)


@dataclass(frozen=True)
class Indicators:
    """Attack-failure indicators of one model: credible only when every check passed."""

    credible: bool
    checks: tuple[IndicatorCheck, ...]
    flags: tuple[str, ...]  # one phrase per failed check
    n_subset: int
    subset: str  # how the images the checks ran on were chosen

    def __post_init__(self) -> None:
        _set(self, checks=tuple(self.checks), flags=tuple(self.flags))

    def to_json(self) -> Json:
        """A model's `indicators` section."""
        return {"credible": self.credible, "checks": [c.to_json() for c in self.checks], "flags": list(self.flags),
                "n_subset": self.n_subset, "subset": self.subset}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Indicators:
        """Read an `indicators` section (what harness.attacks.indicators.compute_indicators returns)."""
        return cls(credible=raw["credible"] is True, checks=tuple(IndicatorCheck.from_json(c) for c in raw["checks"]),
                   flags=tuple(raw.get("flags", ())), n_subset=raw.get("n_subset", 0), subset=raw.get("subset", ""))


@dataclass(frozen=True)
class CorruptionPoint:
    """One corruption at one severity for one model: metrics on the corrupted test images."""

    severity: int  # 1 (slight) .. 5 (severe)
    name: str  # the severity's name: 'slight', 'mild', 'moderate', 'strong', 'severe'
    value: float  # the corruption's severity parameter at this level, in its unit
    n: int
    accuracy: float | None
    sensitivity: float | None
    specificity: float | None
    relative_drop: float | None  # (clean accuracy − accuracy) / clean accuracy; None when clean accuracy is 0
    intervals: Intervals = field(default_factory=dict)

    def __post_init__(self) -> None:
        _set(self, intervals=MappingProxyType(dict(self.intervals)))

    def to_json(self) -> Json:
        """One entry of a corruption's `points`."""
        return {"severity": self.severity, "name": self.name, "value": self.value, "n": self.n,
                "accuracy": self.accuracy, "sensitivity": self.sensitivity, "specificity": self.specificity,
                "relative_drop": self.relative_drop, **intervals_json(self.intervals)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CorruptionPoint:
        """Read one point."""
        return cls(severity=raw["severity"], name=raw.get("name", ""), value=raw["value"], n=raw["n"],
                   accuracy=raw.get("accuracy"), sensitivity=raw.get("sensitivity"),
                   specificity=raw.get("specificity"), relative_drop=raw.get("relative_drop"),
                   intervals=read_intervals(raw))


@dataclass(frozen=True)
class CorruptionResult:
    """One corruption on one model: its plugin, modality, severity parameter and unit, base parameters, a point per
    severity run, and its corruption error (mean error over those severities divided by the clean error)."""

    corruption: str
    modality: str
    parameter: str
    unit: str
    params: Mapping[str, Any]  # the other parameters (defaults filled in); each point gives `parameter`'s value
    points: tuple[CorruptionPoint, ...]
    corruption_error: float | None = None  # None where the clean error is 0 (the ratio is undefined)

    def __post_init__(self) -> None:
        _set(self, params=freeze(self.params), points=tuple(self.points))

    @property
    def severities(self) -> tuple[int, ...]:
        """The severity levels this corruption ran at."""
        return tuple(p.severity for p in self.points)

    def find(self, severity: int) -> CorruptionPoint | None:
        """The point at this severity, or None."""
        return next((p for p in self.points if p.severity == severity), None)

    def point(self, severity: int, corruption_id: str | None = None) -> CorruptionPoint:
        """The point at this severity (KeyError naming the severities run otherwise)."""
        found = self.find(severity)
        if found is None:
            raise KeyError(f"corruption {corruption_id or self.corruption!r} did not run at severity {severity} "
                           f"(severities: {', '.join(map(str, self.severities))})")
        return found

    def to_json(self) -> Json:
        """One entry of a model's `corruptions`."""
        return {"corruption": self.corruption, "modality": self.modality, "parameter": self.parameter,
                "unit": self.unit, "params": thaw(self.params), "points": [p.to_json() for p in self.points],
                "corruption_error": self.corruption_error}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CorruptionResult:
        """Read one corruption."""
        return cls(corruption=raw["corruption"], modality=raw.get("modality", "any"), parameter=raw["parameter"],
                   unit=raw.get("unit", ""), params=raw.get("params") or {},
                   points=tuple(CorruptionPoint.from_json(p) for p in raw.get("points", ())),
                   corruption_error=raw.get("corruption_error"))


WORST_CASE = "any"  # the attack name of the worst case over attacks (criteria: `attack: any`)


@dataclass(frozen=True)
class WorstCase:
    """Per ε, the per-image worst case over every attack run at that ε (with the clean-start runs of the random-start
    attacks and the indicators' probes there): an image counts as robust only if every one of them failed on it.
    `attacks` names the attacks per point; `upper_bounds` the attack ids whose own numbers are only upper bounds (an
    attack-failure indicator failed for them)."""

    points: tuple[AttackPoint, ...]
    attacks: Mapping[float, tuple[str, ...]]  # ε → the attacks (and probes) the point is the worst case of
    upper_bounds: tuple[str, ...] = ()
    norm: str = "linf"  # the norm of every attack it combines (a plan's other norms have no worst case)
    probes: tuple[str, ...] = ()  # the names in `attacks` that are the indicators' probes, not the plan's attacks
    clean_starts: tuple[str, ...] = ()  # the names in `attacks` that are clean-start runs ('pgd from the clean image')

    def __post_init__(self) -> None:
        _set(self, points=tuple(self.points), upper_bounds=tuple(self.upper_bounds), probes=tuple(self.probes),
             clean_starts=tuple(self.clean_starts),
             attacks=MappingProxyType({float(e): tuple(a) for e, a in self.attacks.items()}))

    @property
    def label(self) -> str:
        """'worst case of 4 attacks' (the most at any ε), '…, their clean-start runs and the indicators' probes' where
        they count."""
        extra = (*self.probes, *self.clean_starts)
        n = max((len([x for x in a if x not in extra]) for a in self.attacks.values()), default=0)
        used = {x for a in self.attacks.values() for x in a}
        parts = [f"worst case of {n} attack{'s' if n != 1 else ''}"]
        parts += ["their clean-start runs"] if used & set(self.clean_starts) else []
        parts += ["the indicators' probes"] if used & set(self.probes) else []
        return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]

    def find(self, epsilon: float) -> AttackPoint | None:
        """The point at ε, or None."""
        return next((p for p in self.points if abs(p.epsilon - epsilon) < 1e-12), None)

    def to_json(self) -> Json:
        """A model's `worst_case` section."""
        return {"label": self.label, "norm": self.norm, "probes": list(self.probes),
                "clean_starts": list(self.clean_starts),
                "points": [p.to_json() for p in self.points],
                "attacks": [{"epsilon": e, "attacks": list(a)} for e, a in self.attacks.items()],
                "upper_bounds": list(self.upper_bounds)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> WorstCase:
        """Read a `worst_case` section."""
        return cls(points=tuple(AttackPoint.from_json(p) for p in raw.get("points", ())),
                   attacks={float(a["epsilon"]): tuple(a["attacks"]) for a in raw.get("attacks", ())},
                   upper_bounds=tuple(raw.get("upper_bounds", ())), norm=raw.get("norm", "linf"),
                   probes=tuple(raw.get("probes", ())), clean_starts=tuple(raw.get("clean_starts", ())))


@dataclass(frozen=True)
class ModelResult:
    """One evaluated model (naive or hardened): clean metrics, every attack, the attack-failure indicators, and
    its accuracy under natural corruptions (with their mean corruption error) when the plan has any."""

    weights_sha256: str | None
    clean: CleanMetrics
    attacks: Mapping[str, AttackResult] = field(default_factory=dict)
    indicators: Indicators | None = None
    corruptions: Mapping[str, CorruptionResult] = field(default_factory=dict)  # by the plan's corruption id
    mean_corruption_error: float | None = None  # mean of the corruptions' corruption errors
    # plan `subgroups`: attribute → value → the same metrics on that subgroup's test images (no indicators)
    subgroups: Mapping[str, Mapping[str, ModelResult]] = field(default_factory=dict)
    worst_case: WorstCase | None = None  # per ε, the per-image worst case over every attack (harness.results.build)
    operating_point: Mapping[str, Any] | None = None  # binary models deciding at a threshold (None: argmax)
    classes: Mapping[str, ModelResult] = field(default_factory=dict)  # K > 2: class → its one-vs-rest results
    leaked_images: int | None = None  # test images duplicating its training data (None: training data not checked)
    certification: CertificationResult | None = None  # plan `certification`: randomized smoothing

    def __post_init__(self) -> None:
        _set(self, attacks=MappingProxyType(dict(self.attacks)), corruptions=MappingProxyType(dict(self.corruptions)),
             subgroups=MappingProxyType({a: MappingProxyType(dict(v)) for a, v in self.subgroups.items()}),
             classes=MappingProxyType(dict(self.classes)))

    def subgroup(self, attribute: str, value: str) -> ModelResult:
        """The results on one subgroup (KeyError naming the subgroups measured otherwise)."""
        found = self.subgroups.get(attribute, {}).get(value)
        if found is None:
            have = ", ".join(f"{a}={v}" for a, values in self.subgroups.items() for v in values) or "none"
            raise KeyError(f"no subgroup {attribute}={value} (measured: {have})")
        return found

    def upper_bound(self, attack_id: str, epsilon: float | None) -> bool:
        """Whether an attack's number at ε is only an upper bound on robustness: an attack-failure indicator that
        speaks about it failed (never shown as the model's robustness)."""
        checks = self.indicators.checks if self.indicators else ()
        return any(not c.passed and c.concerns_point(attack_id, epsilon) for c in checks)

    def with_attack(self, attack_id: str, result: AttackResult) -> ModelResult:
        """This model with one more attack."""
        return replace(self, attacks={**self.attacks, attack_id: result})

    def with_corruption(self, corruption_id: str, result: CorruptionResult,
                        mean_corruption_error: float | None) -> ModelResult:
        """This model with one more corruption and the mean corruption error over all its corruptions."""
        return replace(self, corruptions={**self.corruptions, corruption_id: result},
                       mean_corruption_error=mean_corruption_error)

    def corruption(self, corruption_id: str, role: str = "") -> CorruptionResult:
        """One corruption (KeyError naming the corruptions that ran otherwise)."""
        if corruption_id not in self.corruptions:
            raise KeyError(f"corruption {corruption_id!r} was not run on the {role or 'this'} model "
                           f"(run: {', '.join(self.corruptions) or 'none'})")
        return self.corruptions[corruption_id]

    def attack(self, attack_id: str, role: str = "") -> AttackResult:
        """One attack (KeyError naming the attacks that ran otherwise)."""
        if attack_id not in self.attacks:
            raise KeyError(f"attack {attack_id!r} was not run on the {role or 'this'} model "
                           f"(run: {', '.join(self.attacks) or 'none'})")
        return self.attacks[attack_id]

    def to_json(self) -> Json:
        """One entry of `models`."""
        corruptions = {corruption_id: c.to_json() for corruption_id, c in self.corruptions.items()} or None
        return {"weights_sha256": self.weights_sha256, "clean": self.clean.to_json(),
                "attacks": {attack_id: a.to_json() for attack_id, a in self.attacks.items()},
                **_present(indicators=self.indicators and self.indicators.to_json(), corruptions=corruptions,
                           mean_corruption_error=self.mean_corruption_error, leaked_images=self.leaked_images,
                           subgroups={a: {v: m.to_json() for v, m in values.items()}
                                      for a, values in self.subgroups.items()} or None,
                           worst_case=self.worst_case and self.worst_case.to_json(),
                           operating_point=self.operating_point and dict(self.operating_point),
                           classes={c: m.to_json() for c, m in self.classes.items()} or None,
                           certification=self.certification and self.certification.to_json())}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ModelResult:
        """Read one model."""

        indicators, certification = raw.get("indicators"), raw.get("certification")
        return cls(weights_sha256=raw.get("weights_sha256"), clean=CleanMetrics.from_json(raw["clean"]),
                   attacks={attack_id: AttackResult.from_json(a) for attack_id, a in raw.get("attacks", {}).items()},
                   indicators=Indicators.from_json(indicators) if indicators else None,
                   corruptions={corruption_id: CorruptionResult.from_json(c)
                                for corruption_id, c in raw.get("corruptions", {}).items()},
                   mean_corruption_error=raw.get("mean_corruption_error"), leaked_images=raw.get("leaked_images"),
                   subgroups={a: {v: ModelResult.from_json(m) for v, m in values.items()}
                              for a, values in (raw.get("subgroups") or {}).items()},
                   worst_case=WorstCase.from_json(raw["worst_case"]) if raw.get("worst_case") else None,
                   operating_point=raw.get("operating_point"),
                   classes={c: ModelResult.from_json(m) for c, m in (raw.get("classes") or {}).items()},
                   certification=CertificationResult.from_json(certification) if certification else None)


DEFENCE_DETAILS = ("early_stopped", "resumed_from_round", "naive_selected", "mixed_precision", "selection",
                   "distributed")  # copied from the defence's provenance when it reports them


@dataclass(frozen=True)
class DefenceResult:
    """The defence that hardened the model: plugin, parameters, selected round and training log."""

    plugin: str
    params: Mapping[str, Any]
    selected_round: int | None
    selected_weights_sha256: str | None
    training_log: tuple[Mapping[str, Any], ...]
    details: Mapping[str, Any] = field(default_factory=dict)  # DEFENCE_DETAILS the plugin reported

    def __post_init__(self) -> None:
        _set(self, params=freeze(self.params), training_log=freeze(self.training_log), details=freeze(self.details))

    @classmethod
    def from_provenance(cls, plugin: str, params: Mapping[str, Any], provenance: Mapping[str, Any]) -> DefenceResult:
        """The section from a defence plugin's provenance of the hardened model."""
        return cls(plugin=plugin, params=params, selected_round=provenance.get("selected_round"),
                   selected_weights_sha256=provenance.get("weights_sha256"),
                   training_log=provenance.get("training_log", ()),
                   details={key: provenance[key] for key in DEFENCE_DETAILS if key in provenance})

    def to_json(self) -> Json:
        """The `defence` section."""
        return {"plugin": self.plugin, "params": thaw(self.params), "selected_round": self.selected_round,
                "selected_weights_sha256": self.selected_weights_sha256, "training_log": thaw(self.training_log),
                **thaw(self.details)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DefenceResult:
        """Read the `defence` section."""
        core = {"plugin", "params", "selected_round", "selected_weights_sha256", "training_log"}
        return cls(plugin=raw["plugin"], params=raw.get("params") or {}, selected_round=raw.get("selected_round"),
                   selected_weights_sha256=raw.get("selected_weights_sha256"),
                   training_log=raw.get("training_log") or (),
                   details={key: value for key, value in raw.items() if key not in core})


@dataclass(frozen=True)
class RunIdentity:
    """What identifies a run that another run is compared with: its directory, plan, data and tested weights."""

    run_dir: str
    plan_name: str
    plan_sha256: str
    data_sha256: str | None  # the data set's content hash
    weights_sha256: Mapping[str, str | None]  # by model role
    passed: bool | None  # its verdict; None without one

    def __post_init__(self) -> None:
        _set(self, weights_sha256=freeze(self.weights_sha256))

    @property
    def name(self) -> str:
        """The run directory's name."""
        return self.run_dir.rstrip("/").rsplit("/", 1)[-1]

    def to_json(self) -> Json:
        """A `run` section."""
        return {"run_dir": self.run_dir, "plan_name": self.plan_name, "plan_sha256": self.plan_sha256,
                "data_sha256": self.data_sha256, "weights_sha256": thaw(self.weights_sha256), "passed": self.passed}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunIdentity:
        """Read a `run` section."""
        return cls(run_dir=raw["run_dir"], plan_name=raw["plan_name"], plan_sha256=raw["plan_sha256"],
                   data_sha256=raw.get("data_sha256"), weights_sha256=raw.get("weights_sha256") or {},
                   passed=raw.get("passed"))


@dataclass(frozen=True)
class BaselineResult:
    """A regression gate's approved run and how this run's value compares with the approved value."""

    spec: str  # as the plan gives it: 'latest-pass' or a run directory
    run: RunIdentity  # the approved run
    approved: float  # the approved run's value of the criterion's metric
    max_drop: float
    drop: float | None  # how much worse this run is, in the metric's direction (negative: better); None: unmeasured
    paired: PairedComparison | None = None  # a: the approved run, b: this run, on the images the metric counts
    paired_note: str | None = None  # why there is no paired test
    alpha: float | None = None  # the gate fails only when the paired test's p is below alpha (None: on the drop)
    allow_failed: bool = False  # the approved run did not pass and the plan accepted it (allow_failed: true)

    def to_json(self) -> Json:
        """A criterion's `baseline` section."""
        return {"spec": self.spec, "run": self.run.to_json(), "approved": self.approved, "max_drop": self.max_drop,
                "drop": self.drop, **_present(alpha=self.alpha, paired=self.paired and self.paired.to_json(),
                                              paired_note=self.paired_note, allow_failed=self.allow_failed or None)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> BaselineResult:
        """Read a criterion's `baseline` section."""
        paired = raw.get("paired")
        return cls(spec=raw["spec"], run=RunIdentity.from_json(raw["run"]), approved=raw["approved"],
                   max_drop=raw["max_drop"], drop=raw.get("drop"),
                   paired=PairedComparison.from_json(paired) if paired else None, paired_note=raw.get("paired_note"),
                   alpha=raw.get("alpha"), allow_failed=bool(raw.get("allow_failed", False)))


@dataclass(frozen=True)
class CriterionResult:
    """One acceptance criterion with its measured value, threshold and outcome."""

    id: str
    metric: str
    model: str  # naive | hardened | change (hardened minus naive)
    attack: str | None
    epsilon: float | None
    op: str  # '>=' or '<='
    threshold: float
    measured: float | None  # None: not measured, counts as failed
    passed: bool
    description: str = ""
    note: str | None = None
    judged_on: str | None = None  # compared with the threshold: 'estimate', 'lower' or 'upper' (None: older runs)
    bound_value: float | None = None  # the confidence bound compared (judged_on lower/upper)
    confidence: float | None = None  # its two-sided level, after any multiple-comparison adjustment
    interval: str | None = None  # how the bound was computed, e.g. 'wilson' or 'wilson, patient-clustered'
    subgroup: Mapping[str, str] | None = None  # the subgroup measured (for `subgroup: worst`, the worst one)
    subgroup_rule: str | None = None  # 'worst' when the criterion named no subgroup but the worst one
    corruption: str | None = None  # a corruption id of the plan, or 'any' (then the worst of them was judged)
    severity: int | None = None
    baseline: BaselineResult | None = None  # a regression gate: threshold is the approved value less max_drop
    inconclusive: str | None = None  # 'inconclusive: <indicator>, <detail>': an indicator shows its attack failed
    deviation: str | None = None  # how the judging deviates from the default (e.g. judge: estimate)

    def __post_init__(self) -> None:
        _set(self, subgroup=None if self.subgroup is None else MappingProxyType(dict(self.subgroup)))

    @property
    def outcome(self) -> str:
        """'passed', 'failed' or 'inconclusive'."""
        return "passed" if self.passed else "inconclusive" if self.inconclusive else "failed"

    @property
    def bounded(self) -> bool:
        """Whether a confidence bound, not the point estimate, was compared with the threshold."""
        return self.judged_on in ("lower", "upper")

    def to_json(self) -> Json:
        """One entry of `criteria` (bound, subgroup, corruption, severity and baseline keys only for criteria that
        use them)."""
        bounded = self.bounded
        return {"id": self.id, "metric": self.metric, "model": self.model, "attack": self.attack,
                "epsilon": self.epsilon, "op": self.op, "threshold": self.threshold,
                "description": self.description, "measured": self.measured, "passed": self.passed, "note": self.note,
                **_present(judged_on=self.judged_on),
                **({"bound_value": self.bound_value, "confidence": self.confidence, "interval": self.interval}
                   if bounded else {}),
                **_present(subgroup=None if self.subgroup is None else dict(self.subgroup),
                           subgroup_rule=self.subgroup_rule, corruption=self.corruption, severity=self.severity,
                           baseline=self.baseline and self.baseline.to_json(), inconclusive=self.inconclusive,
                           deviation=self.deviation)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CriterionResult:
        """Read one criterion."""
        return cls(id=raw["id"], metric=raw["metric"], model=raw.get("model", "naive"), attack=raw.get("attack"),
                   epsilon=raw.get("epsilon"), op=raw["op"], threshold=raw["threshold"], measured=raw.get("measured"),
                   passed=bool(raw["passed"]), description=raw.get("description") or "", note=raw.get("note"),
                   judged_on=raw.get("judged_on"), bound_value=raw.get("bound_value"),
                   confidence=raw.get("confidence"), interval=raw.get("interval"), subgroup=raw.get("subgroup"),
                   subgroup_rule=raw.get("subgroup_rule"), corruption=raw.get("corruption"),
                   severity=raw.get("severity"),
                   baseline=BaselineResult.from_json(raw["baseline"]) if raw.get("baseline") else None,
                   inconclusive=raw.get("inconclusive"), deviation=raw.get("deviation"))


@dataclass(frozen=True)
class StatisticsSettings:
    """How the run's intervals were computed: method, level, multiple-comparison rule, the patient-cluster
    bootstrap (None when no patient has several test images) and the subgroup attributes measured."""

    interval: str
    confidence: float
    multiple_comparisons: str
    auc: str = "delong"
    bootstrap_resamples: int | None = None
    bootstrap_seed: int | None = None
    n_groups: int | None = None  # test patients (groups) the bootstrap resamples
    subgroups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _set(self, subgroups=tuple(self.subgroups))

    @property
    def clustered(self) -> bool:
        """Whether cluster-adjusted intervals were computed (and gates use them)."""
        return self.bootstrap_resamples is not None

    def to_json(self) -> Json:
        """The `statistics` section."""
        return {"interval": self.interval, "confidence": self.confidence,
                "multiple_comparisons": self.multiple_comparisons, "auc": self.auc,
                "cluster_bootstrap": None if not self.clustered else {
                    "resamples": self.bootstrap_resamples, "seed": self.bootstrap_seed, "n_groups": self.n_groups},
                "subgroups": list(self.subgroups)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StatisticsSettings:
        """Read the `statistics` section."""
        boot = raw.get("cluster_bootstrap") or {}
        return cls(interval=raw["interval"], confidence=raw["confidence"],
                   multiple_comparisons=raw.get("multiple_comparisons", "none"), auc=raw.get("auc", "delong"),
                   bootstrap_resamples=boot.get("resamples"), bootstrap_seed=boot.get("seed"),
                   n_groups=boot.get("n_groups"), subgroups=tuple(raw.get("subgroups", ())))


@dataclass(frozen=True)
class PairedComparison:
    """Two models (or runs) on the same test images, without attack or under one attack at one epsilon: the
    paired 2×2 table of correct decisions and the exact McNemar p-value (harness.results.paired)."""

    a: str  # e.g. 'naive'
    b: str  # e.g. 'hardened'
    attack: str | None  # None: without attack
    epsilon: float | None
    n_pairs: int
    both: int
    only_a: int  # correct for A only
    only_b: int  # correct for B only
    neither: int
    p_value: float
    test: str

    @property
    def difference(self) -> float | None:
        """Accuracy of B minus accuracy of A on the paired images."""
        return (self.only_b - self.only_a) / self.n_pairs if self.n_pairs else None

    def to_json(self) -> Json:
        """One entry of `comparisons`."""
        return {"a": self.a, "b": self.b, "attack": self.attack, "epsilon": self.epsilon, "n_pairs": self.n_pairs,
                "both_correct": self.both, "only_a_correct": self.only_a, "only_b_correct": self.only_b,
                "neither_correct": self.neither, "difference": self.difference, "p_value": self.p_value,
                "test": self.test}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PairedComparison:
        """Read one comparison."""
        return cls(a=raw["a"], b=raw["b"], attack=raw.get("attack"), epsilon=raw.get("epsilon"),
                   n_pairs=raw["n_pairs"], both=raw["both_correct"], only_a=raw["only_a_correct"],
                   only_b=raw["only_b_correct"], neither=raw["neither_correct"], p_value=raw["p_value"],
                   test=raw["test"])


@dataclass(frozen=True)
class Verdict:
    """Whether every criterion passed, and how many did; inconclusive when none failed but some were
    inconclusive (an attack-failure indicator failed where they judge)."""

    passed: bool
    n_passed: int
    n_criteria: int
    n_inconclusive: int = 0

    @property
    def inconclusive(self) -> bool:
        """No criterion failed outright, but at least one is inconclusive."""
        return not self.passed and self.n_inconclusive > 0 and self.n_passed + self.n_inconclusive == self.n_criteria

    @property
    def outcome(self) -> str:
        """'passed', 'failed' or 'inconclusive' (the run's status once judged)."""
        return "passed" if self.passed else "inconclusive" if self.inconclusive else "failed"

    @property
    def word(self) -> str:
        """PASS, FAIL or INCONCLUSIVE, as the console, the cover and pytest say it."""
        return {"passed": "PASS", "failed": "FAIL"}.get(self.outcome, "INCONCLUSIVE")

    @classmethod
    def of(cls, criteria: tuple[CriterionResult, ...] | list[CriterionResult]) -> Verdict:
        """Passed only when every criterion passed (vacuously with none)."""
        n_passed = sum(1 for c in criteria if c.passed)
        return cls(passed=n_passed == len(criteria), n_passed=n_passed, n_criteria=len(criteria),
                   n_inconclusive=sum(1 for c in criteria if not c.passed and c.inconclusive))

    def to_json(self) -> Json:
        """The `verdict` section."""
        return {"passed": self.passed, "n_passed": self.n_passed, "n_criteria": self.n_criteria,
                **({"outcome": self.outcome, "n_inconclusive": self.n_inconclusive} if self.n_inconclusive else {})}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Verdict:
        """Read the `verdict` section."""
        return cls(passed=bool(raw["passed"]), n_passed=raw["n_passed"], n_criteria=raw["n_criteria"],
                   n_inconclusive=raw.get("n_inconclusive", 0))


@dataclass(frozen=True)
class ResultsDocument:
    """The whole of results.json for one run: its status (harness.results.status), what it measured so far, and,
    when it stopped, the exit code and (for error or interrupted) the stage and the error line."""

    plan: PlanRef
    status: str = run_status.RUNNING
    dataset: DatasetSummary | None = None  # None until the data set is loaded
    models: Mapping[str, ModelResult] = field(default_factory=dict)  # by role: naive, hardened
    defence: DefenceResult | None = None
    criteria: tuple[CriterionResult, ...] = ()
    verdict: Verdict | None = None  # None until the criteria are checked
    warnings: tuple[str, ...] = ()
    statistics: StatisticsSettings | None = None  # None in documents written before intervals
    comparisons: tuple[PairedComparison, ...] = ()  # naive vs hardened on the same test images
    stage: str | None = None  # running: the stage in progress; error or interrupted: the stage it stopped in
    error: str | None = None  # error or interrupted: the one line the command printed
    exit_code: int | None = None  # the command's exit code once the run ended (0 passed, 1 failed, 2, 3, 130)

    def __post_init__(self) -> None:
        _set(self, models=MappingProxyType(dict(self.models)), criteria=tuple(self.criteria),
             warnings=tuple(self.warnings), comparisons=tuple(self.comparisons))

    def with_model(self, role: str, model: ModelResult) -> ResultsDocument:
        """This document with one model's section added or replaced."""
        return replace(self, models={**self.models, role: model})

    def with_warnings(self, *warnings: str) -> ResultsDocument:
        """This document with warnings appended."""
        return replace(self, warnings=(*self.warnings, *warnings))

    def at_stage(self, stage: str) -> ResultsDocument:
        """This running document with the stage now in progress."""
        return replace(self, stage=stage)

    def finished(self) -> ResultsDocument:
        """Passed (exit 0), failed (exit 1) or inconclusive (exit 4) by the verdict, once the criteria are checked."""
        if self.verdict is None:
            raise ValueError("a run without a verdict cannot pass or fail")
        outcome = self.verdict.outcome
        code = {run_status.PASSED: 0, run_status.FAILED: 1, run_status.INCONCLUSIVE: EXIT_INCONCLUSIVE}[outcome]
        return self._becomes(outcome, exit_code=code, stage=None, error=None)

    def stopped(self, status: str, exit_code: int, error: str, stage: str | None) -> ResultsDocument:
        """Error or interrupted: the exit code, the error line and the stage it stopped in."""
        return self._becomes(status, exit_code=exit_code, error=error, stage=stage)

    def _becomes(self, status: str, **changes: Any) -> ResultsDocument:
        run_status.check_transition(self.status, status)
        return replace(self, status=status, **changes)

    def model(self, role: str) -> ModelResult:
        """One model's results (KeyError naming the evaluated roles otherwise)."""
        if role not in self.models:
            raise KeyError(f"model {role!r} was not evaluated in this run "
                           f"(evaluated: {', '.join(self.models) or 'none'})")
        return self.models[role]

    def to_json(self) -> Json:
        """The JSON document results.json holds."""
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "status": self.status,
                "plan": {"name": self.plan.name, "sha256": self.plan.sha256,
                         **_present(subject=dict(self.plan.subject) if self.plan.subject else None)},
                "dataset": self.dataset.to_json() if self.dataset else {},
                "models": {role: m.to_json() for role, m in self.models.items()},
                "criteria": [c.to_json() for c in self.criteria],
                "verdict": self.verdict.to_json() if self.verdict else None, "warnings": list(self.warnings),
                **_present(defence=self.defence and self.defence.to_json(),
                           statistics=self.statistics and self.statistics.to_json(),
                           comparisons=[c.to_json() for c in self.comparisons] or None, stage=self.stage,
                           error=self.error, exit_code=self.exit_code)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ResultsDocument:
        """Read results.json (any readable schema version); ValueError for another document or version."""
        if not isinstance(raw, Mapping) or raw.get("schema") != SCHEMA:
            found = raw.get("schema") if isinstance(raw, Mapping) else type(raw).__name__
            raise ValueError(f"not a harness results document (schema {found!r})")
        if raw.get("schema_version") not in READABLE_VERSIONS:
            raise ValueError(f"schema version {raw.get('schema_version')!r}; this harness reads "
                             f"{', '.join(map(str, READABLE_VERSIONS))}")
        defence, verdict, statistics = raw.get("defence"), raw.get("verdict"), raw.get("statistics")
        status, exit_code = raw["status"], raw.get("exit_code")
        if status == run_status.LEGACY_COMPLETE:  # v1 wrote 'complete' for every finished run
            passed = bool(verdict and verdict.get("passed"))
            status, exit_code = (run_status.PASSED, 0) if passed else (run_status.FAILED, 1)
        plan = raw["plan"]
        return cls(plan=PlanRef(plan["name"], plan["sha256"], plan.get("subject")), status=status,
                   stage=raw.get("stage"), error=raw.get("error"), exit_code=exit_code,
                   dataset=DatasetSummary.from_json(raw["dataset"]) if raw.get("dataset") else None,
                   models={role: ModelResult.from_json(m) for role, m in raw.get("models", {}).items()},
                   defence=DefenceResult.from_json(defence) if defence else None,
                   criteria=tuple(CriterionResult.from_json(c) for c in raw.get("criteria", ())),
                   verdict=Verdict.from_json(verdict) if verdict else None, warnings=tuple(raw.get("warnings", ())),
                   statistics=StatisticsSettings.from_json(statistics) if statistics else None,
                   comparisons=tuple(PairedComparison.from_json(c) for c in raw.get("comparisons", ())))
