"""The runner: sequences data → model → clean metrics → attack sweep → criteria, writing the run directory."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import __version__
from harness.attacks.clean_start import clean_start_name, clean_start_specs
from harness.attacks.engine import auto_batch_size, enable_determinism, prepare_attack_model, resolve_engine
from harness.attacks.engine.batch_size import input_mib_per_batch
from harness.attacks.example_images import save_examples
from harness.attacks.heads import supplied_module
from harness.attacks.indicators import PROBE_BREAKS, compute_indicators
from harness.attacks.operating_point import OperatingPoint
from harness.attacks.sweep import merge_outcomes, run_attack
from harness.corruptions.fit import check_fit
from harness.data import batches as batching
from harness.data.checks import validate_dataset
from harness.data.leakage import find_leakage
from harness.data.loading import load_dataset
from harness.data.metadata import split_metadata
from harness.errors import EXIT_INTERRUPTED, DataError, HarnessError, ModelError, PlanError, error_report
from harness.formatting import eps_label
from harness.plan.architecture import split_architecture
from harness.plan.epsilons import EpsilonGrid
from harness.plan.record import PlanRecord
from harness.plan.schema import AttackSpec, Plan
from harness.registry.contracts import DatasetBundle, DatasetContext, DefenceContext, ModelBundle, ModelContext
from harness.registry.manager import Registry
from harness.results.attack_outcome import AttackOutcome
from harness.results.baselines import approved_manifest, resolve_baselines
from harness.results.build import attack_result, clean_metrics, worst_case
from harness.results.classes import check_criterion_classes, class_results, needs_classes
from harness.results.criteria import evaluate
from harness.results.history import record_run
from harness.results.manifest import Manifest
from harness.results.model import (
    DatasetSummary,
    DefenceResult,
    Indicators,
    ModelResult,
    PlanRef,
    ResultsDocument,
    Verdict,
    WorstCase,
)
from harness.results.paired import compare_roles
from harness.results.sample_size import undecidable_warnings
from harness.results.samples import SampleOutcome, sample_outcomes, write_samples
from harness.results.status import ERROR, INTERRUPTED, RUNNING
from harness.results.subgroups import outcome_subset, subgroup_results, with_subgroup_worst_cases
from harness.results.uncertainty import IntervalSettings
from harness.results.view import RunResults
from harness.results.warnings import collect as collect_warnings
from harness.run import distributed
from harness.run.certification_stage import CertificationStage
from harness.run.certification_stage import describe as describe_certification
from harness.run.corruption_stage import CorruptionStage
from harness.run.environment import (
    device_info,
    library_versions,
    plan_git_provenance,
    plan_threads,
    platform_info,
    resolve_device,
    source_revision,
)
from harness.run.fingerprint import Fingerprint, previous_parts, start_parts
from harness.run.model_head import apply_head
from harness.run.progress import ProgressMode, ProgressReporter
from harness.run.reference import training_data_leakage
from harness.storage.atomic import write_json_atomic, write_text_atomic
from harness.storage.checksums import write_sums
from harness.storage.deid import FileNamer
from harness.storage.filelock import LockTimeout, file_lock
from harness.storage.hashing import file_sha256
from harness.storage.model_copy import keep_model
from harness.storage.rundir import create_run_dir, default_cache_dir, deid_salt, run_lock_path


@dataclass
class RunConfig:
    """How to run a plan: where outputs go, device override, cache, and console output."""

    out_root: Path = Path("runs")
    device: str | None = None
    cache_dir: Path | None = None
    progress: ProgressMode | bool | None = "auto"  # bars on a terminal, lines in logs; False or "off": none
    quiet: bool = False  # no progress and no status lines: only errors, warnings and the closing summary
    # The last stage: render the report from the run directory (the CLI passes harness.report.render_report; the
    # run layer sits below the report and never imports it). None: no report.
    report: Callable[[Path], None] | None = None
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
        self.approved: dict[str, RunResults] = {}  # the approved run of each regression gate, by criterion id
        self.resumed_batch_size: int | None = None
        self.batch_size = plan.batch_size  # replaced once the model is known when the plan says `batch_size: auto`
        self.epsilons = EpsilonGrid.of(*(spec.epsilons for spec in plan.attacks))  # the samples.csv columns
        self.writing = False  # a resumed run directory is left untouched until its fingerprint is checked
        self.current_stage: str | None = None
        self.intervals: IntervalSettings | None = None  # set once the test split is known
        self.metadata: dict[str, list[str]] = {}  # the test split's subgroup attributes
        self.operating_points: dict[str, OperatingPoint | None] = {}  # by model role (None: argmax)
        self.leaked_images: int | None = None  # test images duplicating the model's training data (None: unchecked)

    # -- stages --------------------------------------------------------------------------------------------
    def run(self) -> RunResults:
        """Run every stage; results and manifest are rewritten atomically after each one, with the run's status
        (harness.results.status): running, then passed or failed, or error or interrupted with the stage and line."""
        with plan_threads(self.plan.threads):  # the plan's thread count, not the machine's, decides the numbers
            return self._run()

    def _run(self) -> RunResults:
        plan = self.plan
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise HarnessError(f"device {self.device} was requested but CUDA is not available")
        self.results = ResultsDocument(plan=PlanRef(plan.name, plan.sha256,
                                                    plan.subject.to_json() if plan.subject else None))
        self.paths = plan.paths  # outputs name data and model locations as the plan wrote them
        self.manifest = self._initial_manifest()
        self.run_dir = self.resume_dir if self.resume_dir is not None else distributed.on_main(
            lambda: create_run_dir(self.config.out_root, plan.name, plan.sha256))
        with contextlib.ExitStack() as held:
            distributed.on_main(lambda: self._hold_run_dir(held), share=False)  # every rank stops if it is refused
            previous = None
            if self.resume_dir is not None:
                (self.manifest["started_at"], self.manifest["resumed_at"]), previous = distributed.together(
                    self._previous_start)
            self.fingerprint = Fingerprint(previous, self.run_dir)
            try:
                self._stages()
            except (Exception, KeyboardInterrupt) as exc:
                self.paths.error(exc)  # the error line names paths as the plan wrote them
                self._record_stop(exc)
                raise
        finished = RunResults(self.run_dir, self.results, self.manifest)
        if self.rank == 0:
            self.registry.pm.hook.harness_run_end(plan=plan, run_dir=str(self.run_dir), results=finished)
        return finished

    def _stages(self) -> None:
        plan = self.plan
        self._seed(plan.seed)
        self.manifest["determinism"] = enable_determinism(plan.engine, self.device)
        parts = start_parts(plan.sha256, self.manifest["seeds"]["attack_batches"], self.manifest["determinism"],
                            self.manifest["device"], torch.get_num_threads(), self.manifest["versions"])
        distributed.together(lambda: [self.fingerprint.add(name, value) for name, value in parts.items()])
        if self.resume_dir is None:
            self._begin_writing()
        mode = self.config.progress if self.rank == 0 and not self.config.quiet else "off"
        with ProgressReporter(mode, write=self.echo) as progress:
            self.progress = progress
            dataset = self._stage("dataset", self._load_dataset)
            if self.world > 1:
                distributed.together(lambda: check_same_data(dataset))
            self._resolve_baselines()
            naive = self._stage("model", lambda: self._provide_model(dataset))
            self._choose_batch_size(naive, dataset)
            self._evaluate_model("naive", naive, dataset)
            if plan.defence is not None:
                hardened = self._stage("defence", lambda: self._harden(naive, dataset))
                self._evaluate_model("hardened", hardened, dataset)
            self._stage("criteria", self._check_criteria)
            self.results = self.results.finished()
            self._save()
            if self.config.report is not None:
                self._stage("report", lambda: distributed.on_main(self._render_report, share=False))
            distributed.on_main(self._record_in_history, share=False)  # last: only a run that ended passed or failed
            self._save()
            distributed.on_main(self._seal, share=False)  # SHA256SUMS: written after every other file

    def _hold_run_dir(self, held: contextlib.ExitStack) -> None:
        """Rank 0: hold the run directory's lock for the whole run (a reader tells a live run from a killed one by
        it); a directory another process is running in is refused."""
        try:
            held.enter_context(file_lock(run_lock_path(self.run_dir), timeout=0))
        except LockTimeout:
            process = {}
            with contextlib.suppress(OSError, ValueError):
                process = json.loads((self.run_dir / "manifest.json").read_text(encoding="utf-8")).get("process", {})
            who = f" (pid {process.get('pid')} on {process.get('host')})" if process else ""
            raise HarnessError(f"cannot use {self.run_dir}: a harness process is running in it now{who}; wait for "
                               "it to end or stop it") from None

    def _begin_writing(self) -> None:
        """From here on the run directory is written: the first results and manifest, the plan copies, the hook."""
        if self.writing:
            return
        self.writing = True
        distributed.on_main(self._start_files, share=False)

    def _record_stop(self, exc: BaseException) -> None:
        """Record error (with the exit code and line the command prints) or interrupted, and the stage; a resumed
        directory whose fingerprint was not yet checked is left as it was."""
        if not self.writing or self.results.status == ERROR:
            return
        if isinstance(exc, KeyboardInterrupt):
            status, code, line = INTERRUPTED, EXIT_INTERRUPTED, "interrupted (Ctrl-C)"
        else:
            (code, line), status = error_report(exc), ERROR
        if status == INTERRUPTED and self.results.status != RUNNING:
            return  # the numbers were complete; only what came after them was cut short
        self.results = self.results.stopped(status, code, line, self.current_stage)
        try:
            self._save()
            if self.rank == 0:
                self._seal()
        except (OSError, ValueError) as problem:  # must not hide the error that stopped the run
            self.echo(f"harness: warning: the run's status could not be recorded: {problem}")

    def _start_files(self) -> None:
        """Rank 0: the first results and manifest, the resolved plan, and the run-start hook."""
        self._save()
        write_text_atomic(self.run_dir / PLAN_SOURCE_FILE, self.plan.text)
        write_text_atomic(self.run_dir / "plan.resolved.yaml", self.paths.text(self.plan.resolved_yaml()))
        self.registry.pm.hook.harness_run_start(plan=self.plan, run_dir=str(self.run_dir))

    def _render_report(self) -> None:
        assert self.config.report is not None
        self.echo("harness: rendering report.html and report.pdf")
        self.config.report(self.run_dir)
        self.reported_results_sha256 = file_sha256(self.run_dir / "results.json")

    def _seal(self) -> None:
        """Rank 0, last: re-render the report if results.json changed after it was rendered (the cover prints that
        file's hash), then write SHA256SUMS over every file of the run directory."""
        reported = getattr(self, "reported_results_sha256", None)
        if reported is not None and file_sha256(self.run_dir / "results.json") != reported:
            self._render_report()
        write_sums(self.run_dir)

    def _load_dataset(self) -> DatasetBundle:
        plugin = self.registry.get("dataset", self.plan.dataset.plugin)
        salt = distributed.main_first(lambda: deid_salt(self.cache_dir))  # rank 0 creates it; the others read it
        context = DatasetContext(seed=self.plan.seed, base_dir=self.plan.base_dir, cache_dir=self.cache_dir,
                                 show_paths=self.plan.show_paths, sandbox_roots=self.plan.sandbox_roots)
        self.echo(f"harness: loading data set '{self.plan.dataset.plugin}'")
        dataset = load_dataset(plugin, self.plan.dataset.params, context, salt)
        validate_dataset(dataset, self._trainers())
        check_criterion_classes(self.plan.acceptance, dataset.class_names, self.plan.source)
        check_fit(self.plan.corruptions, self.registry, dataset, self.plan.seed, self.plan.source)
        self.fingerprint.add("data_sha256", dataset.provenance.get("content_sha256"))
        self.manifest["dataset"] = {"plugin": self.plan.dataset.plugin, "name": dataset.name,
                                    "identifiers": plugin.identifiers,  # 'synthetic': a generated phantom
                                    "class_names": dataset.class_names, "positive_class": dataset.positive_class,
                                    "image_shape": list(dataset.image_shape),
                                    "input_shape": list(dataset.image_shape),  # [C, H, W] or [C, D, H, W]
                                    **_spacing(dataset),
                                    "native_units": _native(dataset), "modality": dataset.modality,
                                    "provenance": dataset.provenance,
                                    "leakage": self._leakage(dataset)}
        training = training_data_leakage(self.plan, self.registry, dataset, dataclasses.replace(
            context, file_namer=FileNamer(salt, context.show_paths)), self.manifest["dataset"]["leakage"],
            bool(self._trainers()))
        self.manifest["dataset"]["leakage"]["training_data"] = training
        if training.get("reference_sha256"):
            self.fingerprint.add("leakage_reference", training["reference_sha256"])
        self.leaked_images = training["leaked_images"]  # what a `leaked_images` criterion reads
        self.results = replace(self.results, dataset=DatasetSummary(
            name=dataset.name, class_names=tuple(dataset.class_names), positive_class=dataset.positive_class,
            content_sha256=dataset.provenance.get("content_sha256"), n_test=len(dataset.splits["test"]),
            native_units=dataset.native_units, leakage=training))
        self._statistics(dataset)
        return dataset

    def _leakage(self, dataset: DatasetBundle) -> dict[str, Any]:
        """Duplicates across splits (harness.data.leakage) for the manifest; DataError with `leakage: error`."""
        if self.plan.leakage == "off":
            return {"summary": None, "method": "not checked (leakage: off)"}
        found = find_leakage(dataset.splits)
        if found.summary() and self.plan.leakage == "error":
            raise DataError(f"{found.summary()} (leakage: error; leakage: warn runs anyway)")
        return found.to_json()

    def _statistics(self, dataset: DatasetBundle) -> None:
        """Interval settings and subgroup metadata of the test split; warnings for criteria it cannot decide."""
        options, test = self.plan.statistics, dataset.splits["test"]
        self.metadata = split_metadata(test, self.plan.subgroups, f"data set '{dataset.name}', test split",
                                       self.plan.identifier_declarations)
        self.intervals = IntervalSettings.for_split(options.interval, options.confidence, test.group_ids,
                                                    options.bootstrap_resamples, self.plan.seed)
        self.manifest["statistics"] = {**dataclasses.asdict(options), "subgroups": list(self.plan.subgroups),
                                       "declared_not_identifiers": list(self.plan.identifier_declarations)}
        self.results = replace(self.results, statistics=self.intervals.summary(
            options.multiple_comparisons, self.plan.subgroups)).with_warnings(*undecidable_warnings(
                self.plan.acceptance, options.interval, options.confidence, test.labels, dataset.positive_class,
                self.metadata, dataset.class_names))

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
                               progress=self.progress, log=self.echo, output=self.plan.head.output)
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
        self.fingerprint.add("weights.naive", bundle.provenance.get("weights_sha256"))  # a resume refuses other weights
        bundle = self._head("naive", bundle, dataset)  # before the output checks
        self._begin_writing()  # a resumed run: its data and model are those it was started with
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
        entry["stored_copy"] = keep_model(self.run_dir, role, source, supplied_module(bundle.module),
                                          may_link=in_cache)
        self._save()

    def _head(self, role: str, bundle: ModelBundle, dataset: DatasetBundle, check: bool = True) -> ModelBundle:
        """The model behind its logits view (harness.run.model_head): output checks, the operating point."""
        found = apply_head(bundle, self.plan.head, dataset, self.device, self.batch_size,
                           f"{role} model '{self.manifest['models'][role]['plugin']}'",
                           self.plan.defence.plugin if self.plan.defence else None, check)
        self.results = self.results.with_warnings(*found.warnings)
        self.operating_points[role] = found.point
        self.manifest["models"][role]["head"] = {"output": self.plan.head.output,
                                                 "operating_point": found.point and found.point.to_json()}
        if found.point is not None:
            self.echo(f"harness: {role} model decides at {found.point.describe()}")
        return found.bundle

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
        bundle = self._head("hardened", bundle, dataset, check=False)
        self.fingerprint.add("weights.hardened", bundle.provenance.get("weights_sha256"))
        distributed.on_main(lambda: self._keep_model("hardened", bundle), share=False)
        self.results = replace(self.results, defence=DefenceResult.from_provenance(ref.plugin, ref.params_dict(),
                                                                                    bundle.provenance))
        return bundle

    def _evaluate_model(self, role: str, bundle: ModelBundle, dataset: DatasetBundle) -> None:
        """Clean metrics and the full attack sweep for one model, saved after each attack."""
        test = dataset.splits["test"]
        labels = test.labels
        bar = self.progress(f"{role}: clean test", len(test))
        logits = self._stage(f"{role}:clean", lambda: batching.predict_logits(bundle.module, test, self.batch_size,
                                                                      self.device, bar.advance))
        bar.close()
        clean_pred = logits.argmax(axis=1)
        point = self.operating_points.get(role)
        model = ModelResult(weights_sha256=bundle.provenance.get("weights_sha256"),
                            clean=clean_metrics(labels, logits, dataset.positive_class, self.intervals),
                            operating_point=point and point.to_json(), leaked_images=self.leaked_images)
        self.results = self.results.with_model(role, model)
        self._save()
        attack_model = self._stage(f"{role}:engine", lambda: self._attack_model(role, bundle, test))
        fingerprint = self.fingerprint.digest()  # what the attack checkpoints of this model are valid for
        attacks = self._possible_attacks(role, bundle)
        outcomes: dict[str, AttackOutcome] = {}  # per attack: the subgroups and the indicators reuse them
        for spec in attacks:
            outcome = outcomes[spec.id] = self._sweep(role, attack_model, bundle, test, spec, spec.id, clean_pred,
                                                      fingerprint)
            model = self._record_attack(role, model, spec, outcome, dataset, clean_pred)
        if needs_classes(dataset.class_names, [c.class_name for c in self.plan.acceptance if c.class_name]):
            model = replace(model, classes=class_results(model, dataset.class_names, labels, logits, outcomes,
                                                         dataset.native_units, self.intervals))
            self.results = self.results.with_model(role, model)
            self._save()
        if self.plan.subgroups:
            model = replace(model, subgroups=subgroup_results(
                model, self.plan.subgroups, self.metadata, labels, logits, outcomes, dataset.positive_class,
                dataset.native_units, self.intervals))
            self.results = self.results.with_model(role, model)
            self._save()
        if self.plan.indicators.enabled and not bundle.differentiable:
            self.results = self.results.with_warnings(f"{role}: the attack-failure indicators were not computed: "
                                                      "they need input gradients, which the model does not give")
        probes: dict[float, tuple[str, np.ndarray]] = {}
        norms = [spec.norm for spec in attacks]
        norm = max(dict.fromkeys(norms), key=norms.count) if norms else "linf"  # the worst case is of one norm
        if self.plan.indicators.enabled and bundle.differentiable:
            found = self._stage(f"{role}:indicators", lambda: distributed.on_main(
                lambda: compute_indicators(bundle.module, test, model, self.plan, self.registry, self.device,
                                           self.batch_size, self.plan.seed, self.plan.indicators.n_images,
                                           dataset.class_names, outcomes)))
            for entry in found.get(PROBE_BREAKS, ()):
                if entry["norm"] == norm:
                    hit = np.zeros(len(test), dtype=bool)
                    hit[entry["indices"]] = True
                    probes[float(entry["epsilon"])] = ("the indicators' stronger probes", hit)
            indicators = Indicators.from_json(found)
            model = replace(model, indicators=indicators)
            self.results = self.results.with_model(role, model)
            if not indicators.credible:
                self.results = self.results.with_warnings(
                    f"{role}: the attack results may not be credible (attack-failure indicators: "
                    + "; ".join(indicators.flags) + ")")
            self._save()
        failed = {a for c in (model.indicators.checks if model.indicators else ()) if not c.passed
                  for a, _ in c.concerns}
        upper = sorted(outcomes) if None in failed else sorted(a for a in failed if a in outcomes)
        same_norm = {spec.id: outcomes[spec.id] for spec in attacks if spec.norm == norm and spec.id in outcomes}
        clean_starts = {clean_start_name(spec): self._sweep(role, attack_model, bundle, test, spec,
                                                            clean_start_name(spec), clean_pred, fingerprint)
                        for spec in clean_start_specs(s for s in attacks if s.norm == norm)}  # the worst case's only

        def worst_for(positive_class: int, mask: np.ndarray | None = None) -> WorstCase | None:
            """The worst case over attacks with `positive_class` as the positive one (for a class, its sensitivity is
            that class's recall), on the test images in `mask` (all by default)."""
            keep = np.ones(len(labels), dtype=bool) if mask is None else mask
            return worst_case({a: outcome_subset(o, keep) for a, o in same_norm.items()}, labels[keep],
                              (clean_pred == labels)[keep], positive_class, dataset.native_units,
                              self.intervals.subset(mask) if self.intervals and mask is not None else self.intervals,
                              {e: (name, np.asarray(hit)[keep]) for e, (name, hit) in probes.items()},
                              [a for a in upper if a in same_norm], norm,
                              {n: outcome_subset(o, keep) for n, o in clean_starts.items()})

        model = replace(model, worst_case=worst_for(dataset.positive_class))
        if model.classes:  # each class one-vs-rest, as its attacks are
            model = replace(model, classes={name: replace(one, worst_case=worst_for(dataset.class_names.index(name)))
                                            for name, one in model.classes.items()})
        if model.subgroups:
            model = replace(model, subgroups=with_subgroup_worst_cases(
                model.subgroups, self.metadata, lambda mask: worst_for(dataset.positive_class, mask)))
        self.results = self.results.with_model(role, model)
        self._save()
        settings = self.plan.report
        self._stage(f"{role}:examples", lambda: distributed.on_main(lambda: save_examples(
            self.run_dir, role, bundle.module, test, attacks, self.registry, self.device,
            self.batch_size, settings.n_examples, settings.susceptibility_cutoff, self.plan.seed), share=False))
        self._corruptions(role, bundle, dataset, clean_pred)
        self._certification(role, bundle, dataset, clean_pred)

    def _sweep(self, role: str, attack_model: Any, bundle: ModelBundle, test: Any, spec: AttackSpec, shown: str,
               clean_pred: np.ndarray, fingerprint: str) -> AttackOutcome:
        """One attack's sweep over the test split (harness.attacks.sweep), this rank's shard, merged; resumable from
        its checkpoint `<role>__<spec id>`."""
        shard = (self.rank, self.world)
        plugin = self.registry.get("attack", spec.attack)
        bar = self.progress(f"{role}: {shown}", batching.shard_size(len(test), self.batch_size, *shard))
        local = self._stage(f"{role}:attack:{spec.id}", lambda: run_attack(
            attack_model, test, spec, plugin, clean_pred, self.batch_size, self.device,
            self.plan.seed, role, bar.advance, self._attack_checkpoint(role, spec.id),
            judge=bundle.module, shard=shard, run_fingerprint=fingerprint))
        bar.close()
        return merge_outcomes(distributed.all_gather(local), self.batch_size)

    def _corruptions(self, role: str, bundle: ModelBundle, dataset: DatasetBundle, clean_pred: np.ndarray) -> None:
        """The plan's natural corruptions judged by this model (harness.run.corruption_stage), saved after each."""
        if not self.plan.corruptions:
            return
        stage = CorruptionStage(self.plan, self.registry, dataset, self.run_dir, self.device, self.batch_size,
                                self.progress, self.intervals)
        self.manifest["corruptions"] = stage.describe()
        self.fingerprint.add("corruptions", stage.inputs())
        fingerprint = self.fingerprint.digest()  # what this model's corruption checkpoints are valid for
        for spec in self.plan.corruptions:
            model = stage.run(role, bundle.module, spec, clean_pred, self.results.model(role), self._stage,
                              fingerprint)
            self.results = self.results.with_model(role, model)
            self._save()
        stage.examples(role, bundle.module, self._stage)

    def _certification(self, role: str, bundle: ModelBundle, dataset: DatasetBundle, clean_pred: np.ndarray) -> None:
        """The plan's randomized-smoothing certification of this model (harness.run.certification_stage)."""
        if self.plan.certification is None:
            return
        stage = CertificationStage(self.plan, dataset, self.run_dir, self.device, self.progress, self.intervals,
                                   self.echo)
        if "certification" not in self.manifest:
            self.manifest["certification"] = {**describe_certification(stage), "cost": {}}
            for line in stage.conversions():
                self.echo(line)
        self.fingerprint.add("certification", stage.inputs())
        model, warnings = stage.run(role, bundle, clean_pred, self.results.model(role), self._stage,
                                    self.fingerprint.digest(), self.manifest["certification"]["cost"])
        self.results = self.results.with_model(role, model).with_warnings(*(warnings if role == "naive" else ()))
        self._save()

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
                               clean_pred == test.labels, dataset.positive_class, dataset.native_units,
                               self.intervals)
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
        if self.plan.batch_size_auto:
            test = dataset.splits["test"]
            self.batch_size = self.resumed_batch_size or distributed.on_main(  # rank 0 probes; every rank uses it
                lambda: auto_batch_size(naive.module, tuple(test[0][0].shape), self.device, limit=len(test)))
        self.manifest["batch_size"] = {"requested": "auto" if self.plan.batch_size_auto else self.plan.batch_size,
                                       "used": self.batch_size, "input_mib_per_batch": input_mib_per_batch(
                                           tuple(dataset.image_shape), self.batch_size)}
        self.fingerprint.add("batch_size", self.batch_size)
        self._save()

    def _attack_model(self, role: str, bundle: ModelBundle, test: Any) -> Any:
        """The model attacks run on: the plan's engine options (or `engine: auto`'s choice, recorded in the
        manifest) applied to a copy (or the model itself)."""
        sample, _ = next(iter(batching.batches(test, self.batch_size)))
        grid = [eps for spec in self.plan.attacks if spec.kind == "fixed_epsilon" and spec.norm == "linf"
                for eps in spec.epsilons]
        settings, choice = resolve_engine(self.plan.engine, bundle.module, self.device,
                                          lambda n: next(iter(batching.batches(test, n))), grid or self.plan.epsilons,
                                          differentiable=bundle.differentiable,
                                          earlier=(self.fingerprint.previous or {}).get(f"engine.{role}"))
        self.manifest.setdefault("engine_choice", {})[role] = choice
        self.fingerprint.add(f"engine.{role}", choice["used"])  # the attack checkpoints are valid for these only
        model, notes = prepare_attack_model(bundle.module, settings, self.device, sample.to(self.device))
        self.results = self.results.with_warnings(*(f"{role}: engine: {note}" for note in notes))
        return model

    def _check_criteria(self) -> None:
        if {"naive", "hardened"} <= set(self.results.models):  # paired: the same test images, both models
            self.results = replace(self.results, comparisons=compare_roles(self.samples, "naive", "hardened"))
        criteria = evaluate(self.plan.acceptance, self.results, self.approved, self.samples)
        self.results = replace(self.results, criteria=criteria, verdict=Verdict.of(criteria))

    def _resolve_baselines(self) -> None:
        """The approved runs of the plan's regression gates, checked against the loaded data (run history: the
        output directory's); recorded in the manifest. Nothing to do without `baseline:` criteria."""
        if any(c.baseline for c in self.plan.acceptance):
            self.approved = self._stage("baselines", lambda: resolve_baselines(
                self.plan, self.results.dataset, self.run_dir.parent))
            self.manifest["baselines"] = approved_manifest(self.plan.acceptance, self.approved)

    def _record_in_history(self) -> None:
        """Rank 0: add the finished run to the output directory's run history (a warning if that fails; the report,
        rendered before, does not show it)."""
        try:
            record_run(self.run_dir.parent, RunResults(self.run_dir, self.results, self.manifest))
        except HarnessError as exc:
            self.results = self.results.with_warnings(f"the run was not recorded in the run history: "
                                                      f"{exc.one_line()}")

    # -- helpers -------------------------------------------------------------------------------------------
    def _stage(self, name: str, work: Callable[[], Any]) -> Any:
        """Run one stage, timed; under torchrun every rank runs it and the ranks agree on errors at its end."""
        start = time.perf_counter()
        self.current_stage = name
        if self.results.status == RUNNING:
            self.results = self.results.at_stage(name)
            self._save()  # a killed run's results.json names the stage it was in
        try:
            with self.progress.stage(name):
                return distributed.together(work)
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
            self.manifest["timings_seconds"] = dict(self.timings)
            self._save()

    def _previous_start(self) -> tuple[tuple[str, list[str]], dict[str, Any]]:
        """The run directory's start time and earlier resumptions, and the fingerprint parts its first attempt
        recorded (harness.run.fingerprint checks them as they become known)."""
        path = self.resume_dir / "manifest.json"
        try:
            previous = Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise HarnessError(f"cannot resume {self.resume_dir}: no readable manifest.json ({exc})") from None
        used = previous.batch_size.get("used")
        if self.plan.batch_size_auto and isinstance(used, int) and used >= 1:
            self.resumed_batch_size = used  # an automatic choice is kept, so checkpoints of the first attempt match
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return (previous.started_at or now, [*previous.resumed_at, now]), previous_parts(previous)

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
            "plan": PlanRecord.of(plan, copy=PLAN_SOURCE_FILE, hashes=PLAN_HASHES, resolved_yaml_sha256=hashlib.sha256(
                self.paths.text(plan.resolved_yaml()).encode("utf-8")).hexdigest(),
                git=plan_git_provenance(plan.source)).to_json(),
            "seeds": {"plan": plan.seed, "attack_batches": "sha256(seed:model:attack:batch) per batch"},
            "device": device_info(self.device),
            "versions": library_versions(),
            "platform": platform_info(),
            "engine": dataclasses.asdict(plan.engine),
            "plugins": [{"kind": e.kind, "name": e.name, "provider": e.provider, "version": e.version}
                        for e in self.registry.all() if self._used(e.kind, e.name)],
            "timings_seconds": {},
            "process": {"pid": os.getpid(), "host": socket.gethostname()},  # of the latest attempt
            **({"distributed": distributed.describe()} if self.world > 1 else {}),
        }

    def _used(self, kind: str, name: str) -> bool:
        plan = self.plan
        used = {("dataset", plan.dataset.plugin), ("model", plan.model.plugin)}
        used |= {("attack", spec.attack) for spec in plan.attacks}
        used |= {("corruption", spec.corruption) for spec in plan.corruptions}
        if plan.defence:
            used.add(("defence", plan.defence.plugin))
        architecture = getattr(plan.model.params, "architecture", None)
        if architecture:
            used.add(("architecture", split_architecture(architecture)[0]))
        return (kind, name) in used

    def _save(self) -> None:
        """Gather the warnings (harness.results.warnings), mirror status and fingerprint into the manifest, and
        write both files atomically (rank 0, once the run directory is being written)."""
        self.results = collect_warnings(self.results, self.manifest)
        document = self.results
        self.manifest["status"] = {"status": document.status, "stage": document.stage, "error": document.error,
                                   "exit_code": document.exit_code}
        self.manifest["fingerprint"] = self.fingerprint.to_json()
        if self.rank != 0 or not self.writing:
            return  # rank 0 alone writes the run directory
        write_json_atomic(self.run_dir / "results.json", self.paths.scrub(self.results.to_json()))
        write_json_atomic(self.run_dir / "manifest.json", self.paths.scrub(self.manifest))


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


def _spacing(dataset: DatasetBundle) -> dict[str, Any]:
    """The manifest's spacing entries: in-plane pixel size, and a volume's D, H, W voxel size (mm)."""
    out: dict[str, Any] = {"pixel_spacing_mm": dataset.pixel_spacing_mm}
    if dataset.voxel_spacing_mm is not None:
        out["voxel_spacing_mm"] = [float(v) for v in dataset.voxel_spacing_mm]
    return out
