"""The typed test plan and its loader: YAML → validated Plan, with errors naming key and line."""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.errors import PlanError
from harness.formatting import eps_label
from harness.plan.architecture import check_architecture
from harness.plan.certification import CertificationSettings, certification_settings, criterion_certification
from harness.plan.corruptions import CorruptionSpec, corruption_specs, criterion_corruption
from harness.plan.criteria import (
    ANY_ATTACK,
    BOUNDS,
    JUDGE_ESTIMATE,
    JUDGES,
    LATEST_PASS,
    MODEL_ROLES,
    WORST,
    BaselineRef,
    Criterion,
    baseline_criterion_id,
    criterion_id,
)
from harness.plan.epsilons import EpsilonGrid
from harness.plan.heads import HEAD_KEYS, ModelHead, parse_head
from harness.plan.metrics import METRICS
from harness.plan.params import build_dataclass, params_to_dict
from harness.plan.paths import RECORD_PATHS, PathRecorder, plan_variables
from harness.plan.sandbox import PATH_FIELDS, PATH_SUFFIXES, check_path, enforce_sandbox, sandbox_roots
from harness.plan.subject import Subject, parse_subject
from harness.plan.yaml_source import (
    YamlDocument,
    apply_overrides,
    blame_override,
    expand_env,
    load_yaml_file,
    load_yaml_text,
)
from harness.registry.manager import Registry, default_registry
from harness.storage.hashing import canonical_json_sha256
from harness.storage.paths import resolve

PLAN_MARKER = "harness"
SCHEMA_VERSION = 1
DEFAULT_BATCH_SIZE = 64
DEFAULT_SEED = 0
DEFAULT_DEVICE = "auto"
DEFAULT_EPSILONS = (0.001, 0.002, 0.004, 0.008)  # the grid of a plan that names none
TOP_LEVEL_KEYS = {
    PLAN_MARKER, "name", "description", "intended_use", "seed", "device", "batch_size", "epsilons",
    "dataset", "model", "attacks", "defence", "acceptance", "report", "engine", "sandbox", "data_root",
    "indicators", "statistics", "subgroups", "show_paths", "leakage", "corruptions", "threads", "subject",
    "record_paths", "certification",
}
DEFAULT_THREADS = 1  # CPU threads for every computation of a run: numbers must not depend on the runner's cores
SCHEDULES = ("ascending", "bisect")  # how a fixed-ε sweep visits the grid (harness.attacks.schedule)
LEAKAGE_MODES = ("warn", "error", "off")  # duplicates across splits: warn (default), stop the run, or not checked
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class PluginRef:
    """A plan section that names a plugin and its validated parameters."""

    plugin: str
    params: Any

    def params_dict(self) -> dict[str, Any]:
        """The parameters as plain data, verbatim."""
        return params_to_dict(self.params)


@dataclass
class AttackSpec:
    """One attack of the sweep: its id, plugin, parameters and epsilon grid."""

    id: str
    attack: str
    params: Any
    epsilons: list[float]
    norm: str
    kind: str
    schedule: str = "ascending"  # fixed-ε sweeps: "ascending" (every ε in turn) or "bisect" (see attacks.schedule)

    def params_dict(self) -> dict[str, Any]:
        """The parameters as plain data, verbatim."""
        return params_to_dict(self.params)


@dataclass
class ReportSettings:
    """What the report shows beyond the numbers."""

    susceptibility_cutoff: float = 0.004
    n_examples: int = 3


@dataclass
class EngineSettings:
    """How attacks are computed (speed options; the numbers they give are checked against float32 eager).

    A plan without speed options (no `engine:` section, or `engine: auto`) gets `auto`: the runner picks the
    options (harness.attacks.engine.auto); a plan that names any speed option pins them.
    """

    channels_last: bool = False
    compile: bool = False  # torch.compile the model for attacks (costs a one-off compile)
    autocast: Literal["none", "bf16", "fp16"] = "none"  # reduced precision for attack forward/backward (CUDA)
    fold_batchnorm: bool = False  # fold eval-mode BatchNorm into the preceding convolution
    static_shapes: bool = False  # pad the last batch and mask finished images: one batch shape for compiled graphs
    deterministic: bool = False  # torch.use_deterministic_algorithms(True) (and cuBLAS workspace) on CUDA
    auto: bool = False  # choose the speed options on the device (see the class docstring)


ENGINE_SPEED_OPTIONS = ("channels_last", "compile", "autocast", "fold_batchnorm", "static_shapes")


@dataclass
class IndicatorSettings:
    """Attack-failure indicators (Carlini et al. 2019; Pintor et al. 2022), computed after each model's sweep."""

    enabled: bool = True
    n_images: int = field(default=32, metadata={"min": 4})  # clean-correct test images the checks use


@dataclass
class StatisticsOptions:
    """How intervals are computed and bounds adjusted (harness.stats; see README, 'Intervals and bounds')."""

    interval: Literal["wilson", "clopper_pearson", "jeffreys"] = "wilson"
    confidence: float = field(default=0.95, metadata={"min": 0.5, "max": 0.999})  # two-sided level
    multiple_comparisons: Literal["holm", "none"] = "holm"  # adjusts the level of bound criteria
    bootstrap_resamples: int = field(default=2000, metadata={"min": 200, "max": 100_000})  # patient clusters


@dataclass(frozen=True)
class LeakageReference:
    """The training data a test-only set is checked against (harness.data.fingerprints)."""

    written: str  # as the plan wrote it (${VAR} kept): how outputs name it
    path: Path  # resolved against the plan's folder
    splits: tuple[str, ...] = ("train", "val", "test")  # which of a reference data set's splits it trained on


@dataclass
class Plan:
    """A validated test plan."""

    name: str
    description: str
    intended_use: str
    seed: int
    device: str
    batch_size: int
    epsilons: list[float]
    dataset: PluginRef
    model: PluginRef
    attacks: list[AttackSpec]
    defence: PluginRef | None
    acceptance: list[Criterion]
    report: ReportSettings
    engine: EngineSettings
    indicators: IndicatorSettings
    source: str
    base_dir: Path
    resolved: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    batch_size_auto: bool = False  # `batch_size: auto`: the runner picks the largest batch that fits the device
    show_paths: bool = False  # outputs may name data files by their folder-relative path (default: keyed hash only)
    leakage: str = "warn"  # duplicates across train/val/test: warn, error or off (harness.data.leakage)
    sandbox_roots: tuple[Path, ...] = ()  # `sandbox: true`: every file the run reads must resolve inside these
    text: str = ""  # the plan file exactly as written (comments kept); the run directory keeps a copy
    statistics: StatisticsOptions = field(default_factory=StatisticsOptions)
    subgroups: list[str] = field(default_factory=list)  # metadata attributes every metric is reported by
    corruptions: list[CorruptionSpec] = field(default_factory=list)  # natural corruptions of the test images
    threads: int = DEFAULT_THREADS  # torch's CPU threads for the whole run (training, attacks, indicators)
    subject: Subject | None = None  # the device under test (`subject:`; harness.plan.subject)
    head: ModelHead = field(default_factory=ModelHead)  # the model's output contract and operating point
    identifier_declarations: list[str] = field(default_factory=list)  # subgroups declared `identifier: false`
    leakage_reference: LeakageReference | None = None  # `leakage: {reference: PATH}`: the model's training data
    record_paths: str = "as_written"  # how outputs record paths (harness.plan.paths); 'absolute' as resolved
    written_paths: dict[str, str] = field(default_factory=dict)  # path parameters: value → as the plan wrote it
    certification: CertificationSettings | None = None  # randomized smoothing of each model (harness.certification)

    @property
    def paths(self) -> PathRecorder:
        """How outputs record data and model locations: as the plan wrote them (harness.plan.paths)."""
        return PathRecorder(self.base_dir, plan_variables(self.text), self.record_paths, self.written_paths)

    @property
    def sha256(self) -> str:
        """The plan id: sha256 of the resolved plan as canonical JSON (storage.hashing); names run directories."""
        return canonical_json_sha256(self.resolved)

    @property
    def file_sha256(self) -> str:
        """sha256 of the plan file's bytes as written (what `sha256sum plan.yaml` prints)."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def resolved_yaml(self) -> str:
        """The plan after ${VAR} expansion and overrides, as YAML (written to plan.resolved.yaml)."""
        return yaml.safe_dump(self.resolved, sort_keys=False, allow_unicode=True)


def load_plan(path: str | Path, overrides: list[str] | None = None, registry: Registry | None = None) -> Plan:
    """Load, expand, override and validate a plan file."""
    doc = load_yaml_file(Path(path))
    return plan_from_document(doc, Path(path).resolve().parent, overrides or [], registry)


def load_plan_text(text: str, overrides: list[str] | None = None, registry: Registry | None = None,
                   base_dir: Path | None = None, source: str = "<plan>") -> Plan:
    """Load a plan from YAML text (used by tests and the pytest plugin)."""
    doc = load_yaml_text(text, source)
    return plan_from_document(doc, base_dir or Path.cwd(), overrides or [], registry)


def is_plan_mapping(data: Any) -> bool:
    """Whether parsed YAML looks like a harness plan (it carries the `harness:` marker key)."""
    return isinstance(data, dict) and PLAN_MARKER in data


def plan_from_document(doc: YamlDocument, base_dir: Path, overrides: list[str],
                       registry: Registry | None = None) -> Plan:
    """Validate a parsed document into a Plan."""
    registry = registry or default_registry()
    data = expand_env(doc.data, doc)  # its errors name the file and line
    data, overridden = apply_overrides(data, overrides)  # its errors name the override
    try:
        return _PlanBuilder(doc, data, registry, base_dir, overrides).build()
    except PlanError as exc:
        blamed = blame_override(exc, overridden)  # a value set by --set is the command line's fault, not the file's
        if blamed is not None:
            raise blamed from None
        if exc.source is None:  # raised by a shared validator that does not know the file
            raise PlanError(exc.detail, key=exc.key, line=exc.line, source=doc.source) from None
        raise


def written_form(raw: Any, keys: tuple[str, ...], expanded: str) -> str:
    """A value as the plan file wrote it (${VAR} kept) when it expands to `expanded`, else `expanded` (--set)."""
    for key in keys:
        raw = raw.get(key) if isinstance(raw, dict) else None
    if isinstance(raw, str) and _expands_to(raw, expanded):
        return raw
    return expanded


def _expands_to(raw: str, expanded: str) -> bool:
    import os

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}",
                  lambda m: os.environ.get(m.group(1), m.group(2) or ""), raw) == expanded


class _PlanBuilder:
    def __init__(self, doc: YamlDocument, data: dict, registry: Registry, base_dir: Path,
                 overrides: list[str]) -> None:
        self.doc, self.data, self.registry, self.base_dir, self.overrides = doc, data, registry, base_dir, overrides
        self.identifier_declarations: list[str] = []  # subgroups declared `identifier: false`

    def error(self, message: str, key: str | None) -> PlanError:
        return PlanError(message, key=key, line=self.doc.line(key or ""), source=self.doc.source)

    def line(self, key: str) -> int | None:
        return self.doc.line(key)

    def build(self) -> Plan:
        data = self.data
        if PLAN_MARKER not in data:
            raise self.error(f"not a harness plan: add '{PLAN_MARKER}: {SCHEMA_VERSION}' at the top", None)
        if isinstance(data[PLAN_MARKER], bool) or data[PLAN_MARKER] != SCHEMA_VERSION:
            raise self.error(f"unsupported plan schema {data[PLAN_MARKER]!r} (this harness reads "
                             f"{SCHEMA_VERSION})", PLAN_MARKER)
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                raise self.error(f"unknown key (allowed: {', '.join(sorted(TOP_LEVEL_KEYS))})", str(key))
        for key in ("name", "dataset", "model", "attacks"):
            if key not in data:
                raise self.error(f"required key '{key}' is missing", None)
        name = self.scalar("name", str)
        if not _NAME.match(name):
            raise self.error(f"name {name!r} must be letters, digits, '_', '-' or '.'", "name")
        seed = self.scalar("seed", int, default=DEFAULT_SEED)
        if not 0 <= seed < 2**63:
            raise self.error(f"seed must be between 0 and 2**63 - 1, got {seed}", "seed")
        device = self.scalar("device", str, default=DEFAULT_DEVICE)
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", device):
            raise self.error(f"device must be auto, cpu, cuda, cuda:N or mps, got {device!r}", "device")
        batch_size_auto = data.get("batch_size") == "auto"
        raw_batch = DEFAULT_BATCH_SIZE if batch_size_auto else data.get("batch_size", DEFAULT_BATCH_SIZE)
        if isinstance(raw_batch, bool) or not isinstance(raw_batch, int) or raw_batch < 1:
            raise self.error(f"batch_size must be a positive integer or 'auto', got {raw_batch!r}", "batch_size")
        batch_size = raw_batch
        threads = data.get("threads", DEFAULT_THREADS)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise self.error(f"threads must be a positive integer, got {threads!r}", "threads")
        epsilons = self.epsilon_list(data.get("epsilons", list(DEFAULT_EPSILONS)), "epsilons")
        dataset = self.plugin_ref("dataset", "dataset")
        model = self.plugin_ref("model", "model")
        head = parse_head(data["model"], self.error)
        defence = self.plugin_ref("defence", "defence") if data.get("defence") is not None else None
        attacks = self.attacks(epsilons)
        sandbox = self.scalar("sandbox", bool, default=False)
        roots = self.enforce_sandbox(dataset, model, defence, attacks) if sandbox else []
        leakage, reference = self.leakage()
        record_paths = self.scalar("record_paths", str, default="as_written")
        if record_paths not in RECORD_PATHS:
            raise self.error(f"record_paths must be one of {', '.join(RECORD_PATHS)}, got {record_paths!r}",
                             "record_paths")
        subgroups = self.subgroups()
        corruptions = corruption_specs(data.get("corruptions"), self.registry, self.error, self.line, _NAME)
        self.certification = certification_settings(data.get("certification"), self.error, self.line)
        acceptance = self.acceptance(attacks, defence is not None, subgroups, corruptions)
        statistics_raw = data.get("statistics") or {}
        if not isinstance(statistics_raw, dict):
            raise self.error("expected a mapping", "statistics")
        statistics = build_dataclass(StatisticsOptions, statistics_raw, "statistics", self.line)
        report_raw = data.get("report") or {}
        if not isinstance(report_raw, dict):
            raise self.error("expected a mapping", "report")
        report = build_dataclass(ReportSettings, report_raw, "report", self.line)
        engine = self.engine_settings(data.get("engine"))
        indicators_raw = data.get("indicators") or {}
        if not isinstance(indicators_raw, dict):
            raise self.error("expected a mapping", "indicators")
        indicators = build_dataclass(IndicatorSettings, indicators_raw, "indicators", self.line)
        if not indicators.enabled and any(c.metric == "attack_credible" for c in acceptance):
            raise self.error("the attack_credible criterion needs the indicators (indicators.enabled: true)",
                             "indicators.enabled")
        resolved = copy.deepcopy(data)
        return Plan(
            name=name, description=self.scalar("description", str, default=""),
            intended_use=self.scalar("intended_use", str, default=""), seed=seed, device=device,
            batch_size=batch_size, epsilons=epsilons, dataset=dataset, model=model, attacks=attacks,
            defence=defence, acceptance=acceptance, report=report, engine=engine, indicators=indicators,
            source=self.doc.source,
            base_dir=self.base_dir, resolved=resolved, overrides=list(self.overrides), batch_size_auto=batch_size_auto,
            text=self.doc.text, statistics=statistics, subgroups=subgroups,
            show_paths=self.scalar("show_paths", bool, default=False), leakage=leakage, sandbox_roots=tuple(roots),
            corruptions=corruptions, threads=threads, head=head,
            subject=parse_subject(data.get("subject"), self.error, self.scalar("intended_use", str, default="")),
            identifier_declarations=list(self.identifier_declarations),
            leakage_reference=reference, record_paths=record_paths, written_paths=self.written_paths(),
            certification=self.certification)

    def written_paths(self) -> dict[str, str]:
        """Each path parameter of the data set, model and defence (and the leakage reference): its value after
        ${VAR} expansion and overrides → the form the plan file wrote (harness.plan.paths)."""
        out = {}
        for section in ("dataset", "model", "defence", "leakage"):
            values = self.data.get(section)
            for key, value in (values.items() if isinstance(values, dict) else ()):
                if isinstance(value, str) and (key in PATH_FIELDS or key.endswith(PATH_SUFFIXES)
                                               or key == "reference"):
                    out[value] = written_form(self.doc.data, (section, key), value)
        return out

    def leakage(self) -> tuple[str, LeakageReference | None]:
        """`leakage: warn | error | off`, or {reference: PATH, check: warn | error, splits: [train, ...]}."""
        raw = self.data.get("leakage", "warn")
        reference = None
        if isinstance(raw, dict):
            unknown = set(raw) - {"reference", "check", "splits"}
            if unknown:
                raise self.error("unknown key (allowed: check, reference, splits)", f"leakage.{sorted(unknown)[0]}")
            spec = raw.get("reference")
            if not isinstance(spec, str) or not spec.strip():
                raise self.error("expected the path of the training data (a folder, manifest .csv, .npz or a "
                                 "harness fingerprint-data file)", "leakage.reference")
            splits = raw.get("splits", ["train", "val", "test"])
            if not isinstance(splits, list) or not splits or not set(splits) <= {"train", "val", "test"}:
                raise self.error(f"expected a list of train, val and test, got {splits!r}", "leakage.splits")
            try:
                path = (check_path(spec, self.sandbox_roots(), "leakage.reference", self.base_dir)
                        if self.data.get("sandbox") is True else resolve(spec, self.base_dir))
            except PlanError as exc:
                raise self.error(exc.detail, "leakage.reference") from None
            if not path.exists():
                raise self.error(f"{written_form(self.doc.data, ('leakage', 'reference'), spec)} does not exist",
                                 "leakage.reference")
            reference = LeakageReference(written_form(self.doc.data, ("leakage", "reference"), spec), path,
                                         tuple(splits))
            raw = raw.get("check", "warn")
        leakage = "off" if raw is False else raw  # YAML: off → false
        if leakage not in LEAKAGE_MODES:
            raise self.error(f"leakage must be one of {', '.join(LEAKAGE_MODES)}, got {leakage!r}", "leakage")
        return leakage, reference

    def engine_settings(self, raw: Any) -> EngineSettings:
        """`engine: auto`, or a mapping of options; without speed options the runner chooses them (auto)."""
        if raw == "auto":
            return EngineSettings(auto=True)
        raw = raw or {}
        if not isinstance(raw, dict):
            raise self.error("expected 'auto' or a mapping of engine options", "engine")
        engine = build_dataclass(EngineSettings, raw, "engine", self.line)
        pinned = [key for key in ENGINE_SPEED_OPTIONS if key in raw]
        if engine.auto and pinned:
            raise self.error(f"engine.auto chooses the speed options itself; remove auto or {', '.join(pinned)}",
                             "engine.auto")
        if "auto" not in raw:
            engine.auto = not pinned
        return engine

    def enforce_sandbox(self, dataset: PluginRef, model: PluginRef, defence: PluginRef | None,
                        attacks: list[AttackSpec]) -> list[Path]:
        """With `sandbox: true`, every path parameter must resolve (symlinks and '..' included) inside the
        plan's folder or the declared `data_root`; returns those roots (a data set's files are checked against
        them as they are read)."""
        roots = self.sandbox_roots()
        sections = [("dataset", dataset.params), ("model", model.params)]
        sections += [("defence", defence.params)] if defence else []
        sections += [(f"attacks.{i}", spec.params) for i, spec in enumerate(attacks)]
        for key, params in sections:
            try:
                enforce_sandbox(params, roots, key, self.base_dir)
            except PlanError as exc:
                raise self.error(exc.detail, exc.key) from None
        return roots

    def sandbox_roots(self) -> list[Path]:
        """Where path parameters may point under `sandbox: true`: the plan's folder and the declared data_root."""
        data_root = self.scalar("data_root", str, default=None)
        root = (self.base_dir / data_root) if data_root and not Path(data_root).is_absolute() else data_root
        return sandbox_roots(self.base_dir, root, None)

    def scalar(self, key: str, tp: type, default: Any = None, mapping: dict | None = None,
               path: str | None = None) -> Any:
        mapping = self.data if mapping is None else mapping
        path = path or key
        if key not in mapping:
            return default
        value = mapping[key]
        ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            kind = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[tp]
            raise self.error(f"expected {kind}, got {value!r}", path)
        return value

    def epsilon_list(self, value: Any, path: str) -> list[float]:
        if not isinstance(value, list) or not value:
            raise self.error("expected a non-empty list of epsilons in (0, 1]", path)
        out = []
        for i, eps in enumerate(value):
            if isinstance(eps, bool) or not isinstance(eps, (int, float)):
                raise self.error(f"epsilon {eps!r} is not a number", f"{path}.{i}")
            if not (0 < eps <= 1):
                raise self.error(f"epsilon {eps!r} is outside (0, 1] (epsilons are on [0,1] pixels)",
                                 f"{path}.{i}")
            out.append(float(eps))
        if len(set(out)) != len(out):
            raise self.error("epsilons must not repeat", path)
        return sorted(out)

    def plugin_ref(self, section: str, kind: str) -> PluginRef:
        raw = self.data.get(section)
        if not isinstance(raw, dict):
            raise self.error(f"expected a mapping with a 'plugin' key, got {raw!r}", section)
        if "plugin" not in raw:
            raise self.error("required key 'plugin' is missing", section)
        name = raw["plugin"]
        if not isinstance(name, str) or not self.registry.has(kind, name):
            known = ", ".join(self.registry.names(kind)) or "none installed"
            raise self.error(f"unknown {kind} plugin {name!r} (available: {known})", f"{section}.plugin")
        plugin = self.registry.get(kind, name)
        ignore = ("plugin", *HEAD_KEYS) if kind == "model" else ("plugin",)
        params = build_dataclass(plugin.Params, raw, section, self.line, ignore=ignore)
        try:
            check_architecture(getattr(params, "architecture", None), section, self.registry.of_kind("architecture"))
        except PlanError as exc:
            raise self.error(exc.detail, exc.key) from None
        return PluginRef(plugin=name, params=params)

    def attacks(self, default_epsilons: list[float]) -> list[AttackSpec]:
        raw = self.data.get("attacks")
        if not isinstance(raw, list) or not raw:
            raise self.error("expected a non-empty list of attacks", "attacks")
        specs, ids = [], set()
        for i, item in enumerate(raw):
            path = f"attacks.{i}"
            if not isinstance(item, dict) or "attack" not in item:
                raise self.error("each attack needs an 'attack' key naming an attack plugin", path)
            name = item["attack"]
            if not isinstance(name, str) or not self.registry.has("attack", name):
                known = ", ".join(self.registry.names("attack")) or "none installed"
                raise self.error(f"unknown attack {name!r} (available: {known})", f"{path}.attack")
            plugin = self.registry.get("attack", name)
            attack_id = item.get("id", name)
            if not isinstance(attack_id, str) or not _NAME.match(attack_id):
                raise self.error(f"attack id {attack_id!r} must be letters, digits, '_', '-' or '.'",
                                 f"{path}.id")
            if attack_id in ids:
                raise self.error(f"attack id {attack_id!r} is used twice; give one an 'id'", f"{path}.id")
            ids.add(attack_id)
            epsilons = (self.epsilon_list(item["epsilons"], f"{path}.epsilons") if "epsilons" in item
                        else list(default_epsilons))
            params = build_dataclass(plugin.Params, item, path, self.line,
                                     ignore=("attack", "id", "epsilons", "schedule"))
            schedule = self.scalar("schedule", str, default="ascending", mapping=item, path=f"{path}.schedule")
            if schedule not in SCHEDULES:
                raise self.error(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}",
                                 f"{path}.schedule")
            if schedule != "ascending" and plugin.kind != "fixed_epsilon":
                raise self.error(f"schedule {schedule!r} applies to fixed-epsilon attacks; {name!r} is "
                                 f"{plugin.kind}", f"{path}.schedule")
            specs.append(AttackSpec(id=attack_id, attack=name, params=params, epsilons=epsilons,
                                    norm=plugin.norm, kind=plugin.kind, schedule=schedule))
        return specs

    def subgroups(self) -> list[str]:
        raw = [self.declared_subgroup(a, f"subgroups.{i}") for i, a in enumerate(self.data.get("subgroups") or [])] \
            if isinstance(self.data.get("subgroups") or [], list) else None
        if raw is None or not all(isinstance(a, str) and _NAME.match(a) for a in raw):
            raise self.error("expected a list of metadata attribute names (e.g. [manufacturer, sex])", "subgroups")
        if len(set(raw)) != len(raw):
            raise self.error("subgroup attributes must not repeat", "subgroups")
        return list(raw)

    def declared_subgroup(self, value: Any, key: str) -> Any:
        """A subgroup attribute: its name, or {name: X, identifier: false} declaring a column that looks like an
        identifier safe (harness.data.metadata); the declarations are recorded in the manifest and the report."""
        if not isinstance(value, dict):
            return value
        if set(value) != {"name", "identifier"} or value.get("identifier") is not False:
            raise self.error("a declared subgroup is {name: ATTRIBUTE, identifier: false} (only an explicit "
                             "'identifier: false' declares a column safe)", key)
        self.identifier_declarations.append(str(value["name"]))
        return value["name"]

    def criterion_subgroup(self, value: Any, subgroups: list[str], path: str) -> dict[str, str] | str | None:
        """A criterion's `subgroup`: None, 'worst', or {attribute: value} naming one of the plan's subgroups."""
        if value is None:
            return None
        if not subgroups:
            raise self.error("a criterion on a subgroup needs the plan's 'subgroups' list (e.g. subgroups: "
                             "[manufacturer])", path)
        if value == WORST:
            return WORST
        if not isinstance(value, dict) or len(value) != 1:
            raise self.error(f"expected 'worst' or one attribute and its value, e.g. {{{subgroups[0]}: GE}}, "
                             f"got {value!r}", path)
        (attribute, wanted), = value.items()
        if attribute not in subgroups:
            raise self.error(f"'{attribute}' is not one of the plan's subgroups ({', '.join(subgroups)})",
                             f"{path}.{attribute}")
        if isinstance(wanted, bool) or not isinstance(wanted, (str, int, float)):
            raise self.error(f"expected a subgroup value, got {wanted!r}", f"{path}.{attribute}")
        return {str(attribute): str(wanted)}

    def criterion_bound(self, item: dict, key: str, metric: str, model: str, path: str) -> tuple[str | None, bool]:
        """What a criterion is judged on, and whether `judge: estimate` deviates from the default: a proportion of
        one model is judged on its one-sided bound ('lower' with min, 'upper' with max) unless `judge: estimate`;
        other metrics on their estimate unless `bound:` (or `judge: bound`) names their interval's bound."""
        value, judge = item.get("bound"), item.get("judge")
        if judge is not None and judge not in JUDGES:
            raise self.error(f"judge must be {' or '.join(JUDGES)}, got {judge!r}", f"{path}.judge")
        if value is not None and value not in BOUNDS:
            raise self.error(f"bound must be lower or upper, got {value!r}", f"{path}.bound")
        if value is not None and judge == JUDGE_ESTIMATE:
            raise self.error("judge: estimate judges the point estimate, so it takes no 'bound'", f"{path}.judge")
        side = "lower" if key == "min" else "upper"
        if value is not None and value != side:
            raise self.error(f"bound: {value} goes with '{'min' if value == 'lower' else 'max'}', not '{key}'",
                             f"{path}.bound")
        proportion = METRICS[metric].interval == "binomial" and model != "change"
        if judge == JUDGE_ESTIMATE:
            return None, proportion
        if value is None and judge is None:
            return (side if proportion else None), False
        where = f"{path}.bound" if value is not None else f"{path}.judge"
        if not METRICS[metric].has_interval:
            with_interval = ", ".join(name for name, m in METRICS.items() if m.has_interval)
            raise self.error(f"{metric} has no confidence interval (bounds apply to: {with_interval})", where)
        if model == "change":
            raise self.error("bounds apply to one model's metric, not to 'change' (the paired McNemar comparison "
                             "of naive and hardened is in the results)", where)
        return side, False

    def acceptance(self, attacks: list[AttackSpec], has_defence: bool, subgroups: list[str],
                   corruptions: list[CorruptionSpec]) -> list[Criterion]:
        raw = self.data.get("acceptance") or []
        if not isinstance(raw, list):
            raise self.error("expected a list of criteria", "acceptance")
        by_id = {a.id: a for a in attacks}
        allowed = {"id", "metric", "model", "attack", "epsilon", "min", "max", "description", "bound", "subgroup",
                   "corruption", "severity", "baseline", "max_drop", "alpha", "judge", "class", "radius", "sigma"}
        criteria, seen = [], set()
        for i, item in enumerate(raw):
            path = f"acceptance.{i}"
            if not isinstance(item, dict):
                raise self.error("each criterion must be a mapping with 'metric' and 'min' or 'max'", path)
            for key in item:
                if key not in allowed:
                    raise self.error(f"unknown key (allowed: {', '.join(sorted(allowed))})", f"{path}.{key}")
            metric = item.get("metric")
            if not isinstance(metric, str) or metric not in METRICS:
                raise self.error(f"unknown metric {metric!r} (available: {', '.join(METRICS)})", f"{path}.metric")
            needs_attack, needs_eps = METRICS[metric].needs_attack, METRICS[metric].needs_epsilon
            model = item.get("model", "naive")
            if model not in MODEL_ROLES:
                raise self.error(f"model must be one of {', '.join(MODEL_ROLES)}, got {model!r}", f"{path}.model")
            if model != "naive" and not has_defence:
                raise self.error(f"criterion refers to the {model} model but the plan has no 'defence'",
                                 f"{path}.model")
            baseline = self.baseline(item, path) if {"baseline", "max_drop", "alpha"} & set(item) else None
            if baseline is not None:
                op, key, threshold = (">=" if METRICS[metric].higher_is_better else "<="), "max_drop", None
            elif ("min" in item) == ("max" in item):
                raise self.error("give exactly one of 'min' or 'max'", path)
            else:
                op, key = (">=", "min") if "min" in item else ("<=", "max")
                threshold = self.scalar(key, float, mapping=item, path=f"{path}.{key}")
                low = -1.0 if model == "change" else 0.0  # a change of a proportion lies in [-1, 1]
                if (METRICS[metric].unit.name == "rate" or metric == "clean_auc") and not low <= threshold <= 1:
                    raise self.error(f"{metric} is a proportion between {low:g} and 1, got {threshold:g} (write "
                                     f"{threshold / 100:g} for {threshold:g} %)", f"{path}.{key}")
            attack = item.get("attack")
            epsilon = item.get("epsilon")
            any_attack = attack == ANY_ATTACK and needs_eps and attack not in by_id  # the worst case over attacks
            if needs_attack and not any_attack:
                if not isinstance(attack, str) or attack not in by_id:
                    raise self.error(f"metric {metric} needs 'attack' naming one of the plan's attacks or 'any' "
                                     f"({', '.join(by_id)}), got {attack!r}", f"{path}.attack")
            elif attack is not None and not any_attack:
                raise self.error(f"metric {metric} takes no attack", f"{path}.attack")
            if needs_eps:
                if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
                    raise self.error(f"metric {metric} needs a numeric 'epsilon'", f"{path}.epsilon")
                epsilon = float(epsilon)
                grid = EpsilonGrid.of(*(a.epsilons for a in attacks)) if any_attack else \
                    EpsilonGrid.of(by_id[attack].epsilons)
                if epsilon not in grid:
                    raise self.error(f"epsilon {eps_label(epsilon)} is not in the grid of attack {attack!r} "
                                     f"({grid.text()})", f"{path}.epsilon")
            elif epsilon is not None and not METRICS[metric].scope.certified:
                raise self.error(f"metric {metric} takes no epsilon", f"{path}.epsilon")
            epsilon, radius, sigma = criterion_certification(METRICS[metric], item, self.certification, path,
                                                             self.error)
            scope = METRICS[metric].scope
            if scope.per_model and model == "change":
                raise self.error(f"{metric} applies to one model (naive or hardened), not to 'change'",
                                 f"{path}.model")
            if scope.attack_kind == "minimal" and not any_attack and by_id[attack].kind != "minimal":
                raise self.error(f"{metric} needs a minimal-perturbation attack; {attack!r} is "
                                 "fixed-epsilon", f"{path}.attack")
            corruption, severity = criterion_corruption(METRICS[metric], item, corruptions, path, self.error)
            bound, estimate_chosen = (None, False) if baseline is not None else \
                self.criterion_bound(item, key, metric, model, path)
            named = item.get("bound") or ("estimate" if estimate_chosen else None)  # what the id shows
            subgroup = self.criterion_subgroup(item.get("subgroup"), subgroups, f"{path}.subgroup")
            if subgroup is not None and (scope.per_model or scope.needs_corruption or scope.certified):
                raise self.error(f"{metric} is not measured per subgroup", f"{path}.subgroup")
            class_name = self.criterion_class(item, scope, model, subgroup, baseline, path)
            if baseline is not None and (corruption is not None or sigma is not None):
                raise self.error("regression gates ('baseline') apply to clean and attack metrics, not to "
                                 "corruptions or certification", f"{path}.baseline")
            cid = item.get("id") or (
                criterion_id(metric, op, threshold, model, attack, epsilon, named, subgroup, corruption, severity,
                             class_name, radius, sigma)
                if baseline is None else baseline_criterion_id(metric, op, baseline, model, attack, epsilon))
            if not isinstance(cid, str):
                raise self.error("criterion id must be a string", f"{path}.id")
            if cid in seen:
                raise self.error(f"criterion {cid!r} appears twice", path)
            seen.add(cid)
            description = item.get("description", "")
            if not isinstance(description, str):
                raise self.error("expected a string", f"{path}.description")
            criterion = Criterion(id=cid, metric=metric, op=op, threshold=threshold, model=model, attack=attack,
                                  epsilon=epsilon, description=description, bound=bound, subgroup=subgroup,
                                  estimate_chosen=estimate_chosen, baseline=baseline, corruption=corruption,
                                  severity=severity, class_name=class_name, radius=radius, sigma=sigma)
            criteria.append(criterion)
        return criteria

    def criterion_class(self, item: dict, scope: Any, model: str, subgroup: Any, baseline: Any,
                        path: str) -> str | None:
        """`class:` a class name (checked against the data set when it is loaded); clean and attack metrics of one
        model only."""
        if "class" not in item:
            return None
        name = item["class"]
        if not isinstance(name, str) or not name:
            raise self.error(f"class must be a class name of the data set, got {name!r}", f"{path}.class")
        if scope.per_model or scope.needs_corruption or scope.attack_kind == "minimal" or model == "change" \
                or subgroup is not None or baseline is not None:
            raise self.error("class applies to clean and attack metrics of one model (not change, subgroups, "
                             "corruptions, minimal attacks or regression gates)", f"{path}.class")
        return name

    def baseline(self, item: dict, path: str) -> BaselineRef:
        """A regression gate's `baseline` (a run directory, relative to the plan's folder, or latest-pass),
        `max_drop` and optional `alpha`; the directory is checked by harness.results.baselines.check_baselines."""
        for key in ("min", "max", "bound", "subgroup", "judge"):
            if key in item:
                raise self.error(f"a regression gate ('baseline') takes 'max_drop' (and 'alpha'), not '{key}'",
                                 f"{path}.{key}")
        if "baseline" not in item:
            extra = "max_drop" if "max_drop" in item else "alpha"
            raise self.error(f"'{extra}' needs a 'baseline': a run directory or {LATEST_PASS}", f"{path}.{extra}")
        if "max_drop" not in item:
            raise self.error("a baseline criterion needs 'max_drop': how far the metric may fall below the approved "
                             "run's value (e.g. 0.02)", path)
        max_drop = self.scalar("max_drop", float, mapping=item, path=f"{path}.max_drop")
        if not 0 <= max_drop < float("inf"):
            raise self.error(f"max_drop must be a number >= 0, got {max_drop!r}", f"{path}.max_drop")
        alpha = self.scalar("alpha", float, mapping=item, path=f"{path}.alpha")
        if alpha is not None and not 0 < alpha < 1:
            raise self.error(f"alpha must be between 0 and 1 (e.g. 0.05), got {alpha!r}", f"{path}.alpha")
        if alpha is not None and METRICS[item["metric"]].counts is None:
            raise self.error(f"{item['metric']} has no paired test, so a gate on it takes no 'alpha' (paired tests "
                             f"apply to: {', '.join(n for n, m in METRICS.items() if m.counts is not None)})",
                             f"{path}.alpha")
        spec, key, allow_failed = item["baseline"], f"{path}.baseline", False
        if isinstance(spec, dict):  # {run: PATH, allow_failed: true}: a failed approved run, accepted explicitly
            if not set(spec) <= {"run", "allow_failed"} or not isinstance(spec.get("allow_failed", False), bool):
                raise self.error("expected {run: PATH, allow_failed: true|false}", key)
            spec, allow_failed = spec.get("run"), spec.get("allow_failed", False)
            key = f"{key}.run"
        if not isinstance(spec, str) or not spec.strip():
            raise self.error(f"expected a run directory or {LATEST_PASS}, got {spec!r}", key)
        run_dir = None
        if spec != LATEST_PASS:
            try:
                run_dir = (check_path(spec, self.sandbox_roots(), key, self.base_dir) if self.data.get("sandbox")
                           is True else resolve(spec, self.base_dir))
            except PlanError as exc:
                raise self.error(exc.detail, key) from None
            except (OSError, ValueError, RuntimeError) as exc:
                raise self.error(f"baseline {spec!r} cannot be resolved: {exc}", key) from None
        return BaselineRef(spec=spec, path=run_dir, max_drop=max_drop, key=key, line=self.line(key),
                           source=self.doc.source, alpha=alpha, allow_failed=allow_failed)
