"""The runner: sequences data → model → clean metrics → attack sweep → criteria, writing the run directory."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import __version__
from harness.attacks.engine import auto_batch_size, enable_determinism, prepare_attack_model, resolve_engine
from harness.attacks.example_images import save_examples
from harness.attacks.indicators import compute_indicators
from harness.attacks.sweep import AttackOutcome, batches, merge_outcomes, predict_logits, run_attack
from harness.data.checks import validate_dataset
from harness.data.loading import load_dataset
from harness.errors import DataError, HarnessError, ModelError, PlanError
from harness.plan.architecture import split_architecture
from harness.plan.schema import AttackSpec, Plan
from harness.registry.contracts import DatasetBundle, DatasetContext, DefenceContext, ModelBundle, ModelContext
from harness.registry.manager import Registry
from harness.results.build import attack_result, clean_metrics
from harness.results.criteria import evaluate
from harness.results.epsilons import EpsilonGrid
from harness.results.formatting import eps_label
from harness.results.model import (
    DatasetSummary,
    DefenceResult,
    Indicators,
    ModelResult,
    PlanRef,
    ResultsDocument,
    Verdict,
)
from harness.results.samples import SampleOutcome, sample_outcomes, write_samples
from harness.results.view import RunResults
from harness.run import distributed
from harness.run.environment import device_info, library_versions, platform_info, resolve_device, source_revision
from harness.run.progress import ProgressMode, ProgressReporter
from harness.storage.atomic import write_json_atomic, write_text_atomic
from harness.storage.model_copy import keep_model
from harness.storage.rundir import create_run_dir, default_cache_dir, deid_salt


@dataclass
class RunConfig:
    """How to run a plan: where outputs go, device override, cache, and console output."""

    out_root: Path = Path("runs")
    device: str | None = None
    cache_dir: Path | None = None
    progress: ProgressMode | bool | None = "auto"  # bars on a terminal, lines in logs; False or "off": none
    quiet: bool = False  # no progress and no status lines: only errors, warnings and the closing summary
    report: bool = False  # also render report.html and report.pdf at the end
    echo: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr))


class Runner:
    """Runs one plan end to end; each stage's work lives in its own module.

    Under `torchrun` (WORLD_SIZE > 1) every rank walks the same stages: attacks are sharded by whole test batches
    and their per-sample outcomes gathered, the defence trains with DDP, and rank 0 alone runs the indicators,
    examples and report, prints, and writes the run directory. Each stage ends with the ranks agreeing on errors.
    """

    def __init__(self, plan: Plan, registry: Registry, config: RunConfig | None = None,
                 resume_dir: Path | None = None) -> None:
        self.plan, self.registry, self.config = plan, registry, config or RunConfig()
        self.resume_dir = resume_dir
        distributed.setup()
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.device = distributed.device_for_rank(resolve_device(self.config.device or plan.device))
        self.echo = self.config.echo if self.rank == 0 and not self.config.quiet else _silent
        self.progress = ProgressReporter("off")  # replaced for the stages of run()
        self.cache_dir = self.config.cache_dir or default_cache_dir()
        self.timings: dict[str, float] = {}
        self.samples: list[SampleOutcome] = []
        self.resumed_batch_size: int | None = None
        self.batch_size = plan.batch_size  # replaced once the model is known when the plan says `batch_size: auto`
        self.epsilons = EpsilonGrid.of(*(spec.epsilons for spec in plan.attacks))  # the samples.csv columns

    # -- stages --------------------------------------------------------------------------------------------
    def run(self) -> RunResults:
        """Run every stage; results and manifest are rewritten atomically after each one."""
        plan = self.plan
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise HarnessError(f"device {self.device} was requested but CUDA is not available")
        self.results = ResultsDocument(plan=PlanRef(plan.name, plan.sha256))
        self.manifest = self._initial_manifest()
        if self.resume_dir is not None:
            self.run_dir = self.resume_dir
            self.manifest["started_at"], self.manifest["resumed_at"] = distributed.together(self._previous_start)
        else:
            self.run_dir = distributed.on_main(lambda: create_run_dir(self.config.out_root, plan.name, plan.sha256))
        distributed.on_main(self._start_files, share=False)
        self._seed(plan.seed)
        self.manifest["determinism"] = enable_determinism(plan.engine, self.device)
        mode = self.config.progress if self.rank == 0 and not self.config.quiet else "off"
        with ProgressReporter(mode, write=self.echo) as progress:
            self.progress = progress
            dataset = self._stage("dataset", self._load_dataset)
            if self.world > 1:
                distributed.together(lambda: check_same_data(dataset))
            naive = self._stage("model", lambda: self._provide_model(dataset))
            self._choose_batch_size(naive, dataset)
            self._evaluate_model("naive", naive, dataset)
            if plan.defence is not None:
                hardened = self._stage("defence", lambda: self._harden(naive, dataset))
                self._evaluate_model("hardened", hardened, dataset)
            self._stage("criteria", self._check_criteria)
            self.results = replace(self.results, status="complete")
            self._save()
            if self.config.report:
                self._stage("report", lambda: distributed.on_main(self._render_report, share=False))
        if self.rank == 0:
            self.registry.pm.hook.harness_run_end(plan=plan, run_dir=str(self.run_dir),
                                                  results=self.results.to_json())
        return RunResults(self.run_dir, self.results, self.manifest)

    def _start_files(self) -> None:
        """Rank 0: the first results and manifest, the resolved plan, and the run-start hook."""
        self._save()
        write_text_atomic(self.run_dir / PLAN_SOURCE_FILE, self.plan.text)
        write_text_atomic(self.run_dir / "plan.resolved.yaml", self.plan.resolved_yaml())
        self.registry.pm.hook.harness_run_start(plan=self.plan, run_dir=str(self.run_dir))

    def _render_report(self) -> None:
        from harness.report import render_report

        self.echo("harness: rendering report.html and report.pdf")
        render_report(self.run_dir)

    def _load_dataset(self) -> DatasetBundle:
        plugin = self.registry.get("dataset", self.plan.dataset.plugin)
        salt = distributed.main_first(lambda: deid_salt(self.cache_dir))  # rank 0 creates it; the others read it
        context = DatasetContext(seed=self.plan.seed, base_dir=self.plan.base_dir, cache_dir=self.cache_dir)
        self.echo(f"harness: loading data set '{self.plan.dataset.plugin}'")
        dataset = load_dataset(plugin, self.plan.dataset.params, context, salt)
        validate_dataset(dataset, self._trainers())
        self.manifest["dataset"] = {"plugin": self.plan.dataset.plugin, "name": dataset.name,
                                    "class_names": dataset.class_names, "positive_class": dataset.positive_class,
                                    "image_shape": list(dataset.image_shape),
                                    "native_units": _native(dataset), "provenance": dataset.provenance}
        self.results = replace(self.results, dataset=DatasetSummary(
            name=dataset.name, class_names=tuple(dataset.class_names), positive_class=dataset.positive_class,
            content_sha256=dataset.provenance.get("content_sha256"), n_test=len(dataset.splits["test"]),
            native_units=dataset.native_units))
        return dataset

    def _trainers(self) -> list[str]:
        """What trains on the data set's train/val splits: a model plugin that trains, and any defence."""
        trainers = []
        if self.registry.get("model", self.plan.model.plugin).needs_training_data:
            trainers.append(f"model plugin '{self.plan.model.plugin}'")
        if self.plan.defence is not None:
            trainers.append(f"defence '{self.plan.defence.plugin}'")
        return trainers

    def _provide_model(self, dataset: DatasetBundle) -> ModelBundle:
        plugin = self.registry.get("model", self.plan.model.plugin)
        context = ModelContext(dataset=dataset, device=self.device, seed=self.plan.seed, base_dir=self.plan.base_dir,
                               cache_dir=self.cache_dir, architectures=self.registry.of_kind("architecture"),
                               progress=self.progress, log=self.echo)
        self.echo(f"harness: preparing model '{self.plan.model.plugin}' on {self.device}")
        try:
            bundle = plugin.provide(self.plan.model.params, context)
        except PlanError as exc:  # a plugin knows the key, not the file
            if exc.source is not None:
                raise
            raise PlanError(exc.detail, key=exc.key, line=exc.line, source=self.plan.source) from None
        bundle.module.eval()
        if not bundle.differentiable and self.plan.defence is not None:
            raise ModelError(f"defence '{self.plan.defence.plugin}' fine-tunes the model with gradients, but the "
                             "model runs without them (e.g. an ONNX model through onnxruntime)")
        self.manifest["models"] = {"naive": {"plugin": self.plan.model.plugin, **bundle.provenance}}
        distributed.on_main(lambda: self._keep_model("naive", bundle), share=False)
        return bundle

    def _keep_model(self, role: str, bundle: ModelBundle) -> None:
        """Rank 0: the tested model's file (or state dict) under run_dir/model/, unless `keep_model: false`."""
        entry = self.manifest["models"][role]
        if not getattr(self.plan.model.params, "keep_model", True):
            entry["stored_copy"] = {"path": None, "how": "not kept (keep_model: false)"}
            return
        source = bundle.provenance.get("weights_path")
        cache = Path(self.cache_dir).resolve()
        in_cache = bool(source) and cache in Path(source).resolve().parents
        entry["stored_copy"] = keep_model(self.run_dir, role, source, bundle.module, may_link=in_cache)
        self._save()

    def _harden(self, naive: ModelBundle, dataset: DatasetBundle) -> ModelBundle:
        ref = self.plan.defence
        plugin = self.registry.get("defence", ref.plugin)
        context = DefenceContext(dataset=dataset, device=self.device, seed=self.plan.seed, cache_dir=self.cache_dir,
                                 checkpoint_dir=self.run_dir / "checkpoints" / ref.plugin, progress=self.progress,
                                 log=self.echo)
        self.echo(f"harness: hardening the model with defence '{ref.plugin}'")
        bundle = plugin.harden(naive, ref.params, context)
        bundle.module.eval()
        self.manifest["models"]["hardened"] = {"plugin": ref.plugin, **bundle.provenance}
        distributed.on_main(lambda: self._keep_model("hardened", bundle), share=False)
        self.results = replace(self.results, defence=DefenceResult.from_provenance(ref.plugin, ref.params_dict(),
                                                                                    bundle.provenance))
        return bundle

    def _evaluate_model(self, role: str, bundle: ModelBundle, dataset: DatasetBundle) -> None:
        """Clean metrics and the full attack sweep for one model, saved after each attack."""
        test = dataset.splits["test"]
        labels = test.labels
        bar = self.progress(f"{role}: clean test", len(test))
        logits = self._stage(f"{role}:clean", lambda: predict_logits(bundle.module, test, self.batch_size,
                                                                      self.device, bar.advance))
        bar.close()
        clean_pred = logits.argmax(axis=1)
        model = ModelResult(weights_sha256=bundle.provenance.get("weights_sha256"),
                            clean=clean_metrics(labels, logits, dataset.positive_class))
        self.results = self.results.with_model(role, model)
        self._save()
        attack_model = self._stage(f"{role}:engine", lambda: self._attack_model(role, bundle, test))
        shard = (self.rank, self.world)
        outcomes = {}  # per-image outcomes by attack id: the indicators reuse them instead of attacking again
        attacks = self._possible_attacks(role, bundle)
        for spec in attacks:
            plugin = self.registry.get("attack", spec.attack)
            bar = self.progress(f"{role}: {spec.id}", distributed.shard_size(len(test), self.batch_size, *shard))
            local = self._stage(f"{role}:attack:{spec.id}", lambda spec=spec, plugin=plugin, bar=bar: run_attack(
                attack_model, test, spec, plugin, clean_pred, self.batch_size, self.device,
                self.plan.seed, role, bar.advance, self._attack_checkpoint(role, spec.id),
                judge=bundle.module, shard=shard))
            bar.close()
            outcome = outcomes[spec.id] = merge_outcomes(distributed.all_gather(local), self.batch_size)
            model = self._record_attack(role, model, spec, outcome, dataset, clean_pred)
        if self.plan.indicators.enabled and not bundle.differentiable:
            self.results = self.results.with_warnings(f"{role}: the attack-failure indicators were not computed: "
                                                      "they need input gradients, which the model does not give")
        elif self.plan.indicators.enabled:
            section = model.to_json()  # the indicators read the model's results as JSON data
            indicators = Indicators.from_json(self._stage(f"{role}:indicators", lambda: distributed.on_main(
                lambda: compute_indicators(bundle.module, test, section, self.plan, self.registry, self.device,
                                           self.batch_size, self.plan.seed, self.plan.indicators.n_images,
                                           dataset.class_names, outcomes))))
            self.results = self.results.with_model(role, replace(model, indicators=indicators))
            if not indicators.credible:
                self.results = self.results.with_warnings(
                    f"{role}: the attack results may not be credible (attack-failure indicators: "
                    + "; ".join(indicators.flags) + ")")
            self._save()
        settings = self.plan.report
        self._stage(f"{role}:examples", lambda: distributed.on_main(lambda: save_examples(
            self.run_dir, role, bundle.module, test, attacks, self.registry, self.device,
            self.batch_size, settings.n_examples, settings.susceptibility_cutoff, self.plan.seed), share=False))

    def _possible_attacks(self, role: str, bundle: ModelBundle) -> list[AttackSpec]:
        """The plan's attacks this model allows: without gradients only those whose plugin needs none."""
        possible, skipped = [], []
        for spec in self.plan.attacks:
            needs = self.registry.get("attack", spec.attack).requires_gradients
            (skipped if needs and not bundle.differentiable else possible).append(spec)
        self.results = self.results.with_warnings(*(
            f"{role}: attack '{spec.id}' was not run: it needs input gradients and the model gives none (only "
            "gradient-free attacks can test it)" for spec in skipped))
        self.manifest["models"][role]["attacks_possible"] = [spec.id for spec in possible]
        self.manifest["models"][role]["attacks_not_possible"] = [spec.id for spec in skipped]
        return possible

    def _record_attack(self, role: str, model: ModelResult, spec: AttackSpec, outcome: AttackOutcome,
                       dataset: DatasetBundle, clean_pred: np.ndarray) -> ModelResult:
        """Add one attack's result, warnings and samples.csv rows; save; the model's results with the attack."""
        test = dataset.splits["test"]
        result = attack_result(spec.attack, spec.norm, spec.kind, spec.params_dict(), outcome, test.labels,
                               clean_pred == test.labels, dataset.positive_class, dataset.native_units)
        model = model.with_attack(spec.id, result)
        self.results = self.results.with_model(role, model).with_warnings(*(
            f"{role}/{spec.id} at eps={eps_label(point.epsilon)}: {point.bound_violations} adversarial examples "
            "were outside their epsilon bound and were not counted"
            for point in result.points if point.bound_violations))
        self.samples += sample_outcomes(role, spec.id, outcome, test.sample_ids, test.labels, clean_pred)
        if self.rank == 0:
            for point in result.points:
                self.registry.pm.hook.harness_attack_result(plan=self.plan, model_role=role, attack_id=spec.id,
                                                            epsilon=point.epsilon,
                                                            robust_accuracy=point.robust_accuracy)
            write_samples(self.run_dir / "samples.csv", self.samples, self.epsilons)
        self._save()
        return model

    def _attack_checkpoint(self, role: str, attack_id: str) -> Path:
        """Where one attack's per-batch state is saved; under torchrun one file per rank (and world size)."""
        suffix = "" if self.world == 1 else f".rank{self.rank}of{self.world}"
        return self.run_dir / "checkpoints" / "attacks" / f"{role}__{attack_id}{suffix}.npz"

    def _choose_batch_size(self, naive: ModelBundle, dataset: DatasetBundle) -> None:
        """Resolve `batch_size: auto` against the naive model and the device; record the choice in the manifest."""
        if not self.plan.batch_size_auto:
            self.manifest["batch_size"] = {"requested": self.plan.batch_size, "used": self.batch_size}
            return
        test = dataset.splits["test"]
        self.batch_size = self.resumed_batch_size or distributed.on_main(  # rank 0 probes; every rank uses it
            lambda: auto_batch_size(naive.module, tuple(test[0][0].shape), self.device, limit=len(test)))
        self.manifest["batch_size"] = {"requested": "auto", "used": self.batch_size}
        self._save()

    def _attack_model(self, role: str, bundle: ModelBundle, test: Any) -> Any:
        """The model attacks run on: the plan's engine options (or `engine: auto`'s choice, recorded in the
        manifest) applied to a copy (or the model itself)."""
        sample, _ = next(iter(batches(test, self.batch_size)))
        grid = [eps for spec in self.plan.attacks if spec.kind == "fixed_epsilon" and spec.norm == "linf"
                for eps in spec.epsilons]
        settings, choice = resolve_engine(self.plan.engine, bundle.module, self.device,
                                          lambda n: next(iter(batches(test, n))), grid or self.plan.epsilons,
                                          differentiable=bundle.differentiable)
        self.manifest.setdefault("engine_choice", {})[role] = choice
        model, notes = prepare_attack_model(bundle.module, settings, self.device, sample.to(self.device))
        self.results = self.results.with_warnings(*(f"{role}: engine: {note}" for note in notes))
        return model

    def _check_criteria(self) -> None:
        criteria = evaluate(self.plan.acceptance, self.results)
        self.results = replace(self.results, criteria=criteria, verdict=Verdict.of(criteria))

    # -- helpers -------------------------------------------------------------------------------------------
    def _stage(self, name: str, work: Callable[[], Any]) -> Any:
        """Run one stage, timed; under torchrun every rank runs it and the ranks agree on errors at its end."""
        start = time.perf_counter()
        try:
            with self.progress.stage(name):
                return distributed.together(work)
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
            self.manifest["timings_seconds"] = dict(self.timings)
            self._save()

    def _previous_start(self) -> tuple[str, list[str]]:
        """Check a run directory to resume belongs to this plan; its start time and earlier resumptions."""
        path = self.resume_dir / "manifest.json"
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise HarnessError(f"cannot resume {self.resume_dir}: no readable manifest.json ({exc})") from None
        sha = previous.get("plan", {}).get("sha256")
        if sha != self.plan.sha256:
            raise HarnessError(f"cannot resume {self.resume_dir}: it was made by another plan or other overrides "
                               f"(plan sha256 {str(sha)[:12]}, this plan {self.plan.sha256[:12]})")
        used = previous.get("batch_size", {}).get("used")
        if self.plan.batch_size_auto and isinstance(used, int) and used >= 1:
            self.resumed_batch_size = used  # an automatic choice is kept, so checkpoints of the first attempt match
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return previous.get("started_at", now), [*previous.get("resumed_at", []), now]

    def _seed(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _initial_manifest(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "schema": "harness.manifest", "schema_version": 1,
            "harness_version": __version__,
            "harness_revision": source_revision(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": sys.argv,
            "plan": {"name": plan.name, "source": plan.source, "sha256": plan.sha256, "resolved": plan.resolved,
                     "overrides": plan.overrides, "copy": PLAN_SOURCE_FILE, "file_sha256": plan.file_sha256,
                     "resolved_yaml_sha256": hashlib.sha256(plan.resolved_yaml().encode("utf-8")).hexdigest(),
                     "hashes": PLAN_HASHES},
            "seeds": {"plan": plan.seed, "attack_batches": "sha256(seed:model:attack:batch) per batch"},
            "device": device_info(self.device),
            "versions": library_versions(),
            "platform": platform_info(),
            "engine": dataclasses.asdict(plan.engine),
            "plugins": [{"kind": e.kind, "name": e.name, "provider": e.provider, "version": e.version}
                        for e in self.registry.all() if self._used(e.kind, e.name)],
            "timings_seconds": {},
            **({"distributed": distributed.describe()} if self.world > 1 else {}),
        }

    def _used(self, kind: str, name: str) -> bool:
        plan = self.plan
        used = {("dataset", plan.dataset.plugin), ("model", plan.model.plugin)}
        used |= {("attack", spec.attack) for spec in plan.attacks}
        if plan.defence:
            used.add(("defence", plan.defence.plugin))
        architecture = getattr(plan.model.params, "architecture", None)
        if architecture:
            used.add(("architecture", split_architecture(architecture)[0]))
        return (kind, name) in used

    def _save(self) -> None:
        if self.rank != 0:
            return  # rank 0 alone writes the run directory
        write_json_atomic(self.run_dir / "results.json", self.results.to_json())
        write_json_atomic(self.run_dir / "manifest.json", self.manifest)


PLAN_SOURCE_FILE = "plan.source.yaml"
PLAN_HASHES = {"file_sha256": "sha256 of the plan file as written (sha256sum of plan.source.yaml)",
               "resolved_yaml_sha256": "sha256 of plan.resolved.yaml (after ${VAR} expansion and --set overrides)",
               "sha256": "sha256 of the resolved plan as canonical JSON (sorted keys); its first 8 digits name the run "
                         "directory and --resume checks it"}


def check_same_data(dataset: DatasetBundle) -> None:
    """Under torchrun: every rank must have loaded the same test split (same content hash and sample ids)."""
    test = dataset.splits["test"]
    ids = hashlib.sha256("\n".join(test.sample_ids).encode()).hexdigest()
    seen = distributed.all_gather((dataset.provenance.get("content_sha256"), ids, len(test)))
    if len(set(seen)) > 1:
        raise DataError("the torchrun ranks loaded different test data; put --cache-dir on a file system every "
                        "rank shares, or set HARNESS_DEID_SALT")


def _silent(message: str) -> None:
    """Ranks other than 0 print nothing."""


def _native(dataset: DatasetBundle) -> dict[str, Any] | None:
    units = dataset.native_units
    return None if units is None else {"per_unit": units.per_unit, "unit": units.unit, "note": units.note}
