"""The runner: sequences data → model → clean metrics → attack sweep → criteria, writing the run directory."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from harness import __version__
from harness.attacks.engine import auto_batch_size, enable_determinism, prepare_attack_model, resolve_engine
from harness.attacks.example_images import save_examples
from harness.attacks.indicators import compute_indicators
from harness.attacks.sweep import batches, merge_outcomes, predict_logits, run_attack
from harness.data.splits import SPLIT_NAMES, check_no_group_crosses
from harness.errors import DataError, HarnessError
from harness.plan.schema import Plan
from harness.registry.contracts import DatasetBundle, DatasetContext, DefenceContext, ModelBundle, ModelContext
from harness.registry.manager import Registry
from harness.results.criteria import evaluate, verdict
from harness.results.document import attack_summary, new_results, sample_rows, write_samples
from harness.results.metrics import clean_metrics
from harness.run import distributed
from harness.run.environment import device_info, library_versions, platform_info, resolve_device
from harness.run.progress import ProgressReporter
from harness.storage.atomic import write_json_atomic, write_text_atomic
from harness.storage.rundir import create_run_dir, default_cache_dir, deid_salt


@dataclass
class RunConfig:
    """How to run a plan: where outputs go, device override, cache, and console output."""

    out_root: Path = Path("runs")
    device: str | None = None
    cache_dir: Path | None = None
    progress: bool | None = None
    report: bool = False  # also render report.html and report.pdf at the end
    echo: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr))


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    results: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def passed(self) -> bool:
        """Whether every acceptance criterion passed."""
        return bool(self.results["verdict"]["passed"])


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
        self.echo = self.config.echo if self.rank == 0 else _silent
        self.cache_dir = self.config.cache_dir or default_cache_dir()
        self.timings: dict[str, float] = {}
        self.sample_rows: list[dict[str, Any]] = []
        self.resumed_batch_size: int | None = None
        self.batch_size = plan.batch_size  # replaced once the model is known when the plan says `batch_size: auto`

    # -- stages --------------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run every stage; results and manifest are rewritten atomically after each one."""
        plan = self.plan
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise HarnessError(f"device {self.device} was requested but CUDA is not available")
        self.results = new_results(plan.name, plan.sha256)
        self.manifest = self._initial_manifest()
        if self.resume_dir is not None:
            self.run_dir = self.resume_dir
            self.manifest["started_at"], self.manifest["resumed_at"] = distributed.together(self._previous_start)
        else:
            self.run_dir = distributed.on_main(lambda: create_run_dir(self.config.out_root, plan.name, plan.sha256))
        distributed.on_main(self._start_files, share=False)
        self._seed(plan.seed)
        self.manifest["determinism"] = enable_determinism(plan.engine, self.device)
        with ProgressReporter(self.config.progress if self.rank == 0 else False) as progress:
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
        self.results["status"] = "complete"
        self._save()
        if self.config.report:
            self._stage("report", lambda: distributed.on_main(self._render_report, share=False))
        if self.rank == 0:
            self.registry.pm.hook.harness_run_end(plan=plan, run_dir=str(self.run_dir), results=self.results)
        return RunResult(self.run_dir, self.results, self.manifest)

    def _start_files(self) -> None:
        """Rank 0: the first results and manifest, the resolved plan, and the run-start hook."""
        self._save()
        write_text_atomic(self.run_dir / "plan.resolved.yaml", yaml.safe_dump(self.plan.resolved, sort_keys=False))
        self.registry.pm.hook.harness_run_start(plan=self.plan, run_dir=str(self.run_dir))

    def _render_report(self) -> None:
        from harness.report import render_report

        self.echo("harness: rendering report.html and report.pdf")
        render_report(self.run_dir)

    def _load_dataset(self) -> DatasetBundle:
        plugin = self.registry.get("dataset", self.plan.dataset.plugin)
        salt = distributed.main_first(lambda: deid_salt(self.cache_dir))  # rank 0 creates it; the others read it
        context = DatasetContext(seed=self.plan.seed, salt=salt, base_dir=self.plan.base_dir,
                                 cache_dir=self.cache_dir)
        self.echo(f"harness: loading data set '{self.plan.dataset.plugin}'")
        dataset = plugin.load(self.plan.dataset.params, context)
        validate_dataset(dataset)
        self.manifest["dataset"] = {"plugin": self.plan.dataset.plugin, "name": dataset.name,
                                    "class_names": dataset.class_names, "positive_class": dataset.positive_class,
                                    "image_shape": list(dataset.image_shape),
                                    "native_units": _native(dataset), "provenance": dataset.provenance}
        self.results["dataset"] = {"name": dataset.name, "class_names": dataset.class_names,
                                   "positive_class": dataset.positive_class,
                                   "content_sha256": dataset.provenance.get("content_sha256"),
                                   "n_test": len(dataset.splits["test"]), "native_units": _native(dataset)}
        return dataset

    def _provide_model(self, dataset: DatasetBundle) -> ModelBundle:
        plugin = self.registry.get("model", self.plan.model.plugin)
        context = ModelContext(dataset=dataset, device=self.device, seed=self.plan.seed, base_dir=self.plan.base_dir,
                               cache_dir=self.cache_dir, architectures=self.registry.of_kind("architecture"),
                               progress=self.progress, log=self.echo)
        self.echo(f"harness: preparing model '{self.plan.model.plugin}' on {self.device}")
        bundle = plugin.provide(self.plan.model.params, context)
        bundle.module.eval()
        self.manifest["models"] = {"naive": {"plugin": self.plan.model.plugin, **bundle.provenance}}
        return bundle

    def _harden(self, naive: ModelBundle, dataset: DatasetBundle) -> ModelBundle:
        ref = self.plan.defence
        plugin = self.registry.get("defence", ref.plugin)
        context = DefenceContext(dataset=dataset, device=self.device, seed=self.plan.seed, cache_dir=self.cache_dir,
                                 checkpoint_dir=self.run_dir / "checkpoints" / ref.plugin, progress=self.progress,
                                 log=self.echo)
        self.echo(f"harness: hardening the model with defence '{ref.plugin}'")
        bundle = plugin.harden(naive, ref.params, context)
        bundle.module.eval()
        provenance = bundle.provenance
        self.manifest["models"]["hardened"] = {"plugin": ref.plugin, **provenance}
        self.results["defence"] = {"plugin": ref.plugin, "params": ref.params_dict(),
                                   "selected_round": provenance.get("selected_round"),
                                   "selected_weights_sha256": provenance.get("weights_sha256"),
                                   "training_log": provenance.get("training_log", []),
                                   **{key: provenance[key] for key in ("early_stopped", "resumed_from_round",
                                                                       "naive_selected", "mixed_precision",
                                                                       "selection", "distributed")
                                     if key in provenance}}
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
        clean_correct = clean_pred == labels
        section = {"weights_sha256": bundle.provenance.get("weights_sha256"),
                   "clean": clean_metrics(labels, logits, dataset.positive_class), "attacks": {}}
        self.results["models"][role] = section
        self._save()
        attack_model = self._stage(f"{role}:engine", lambda: self._attack_model(role, bundle, test))
        shard = (self.rank, self.world)
        outcomes = {}  # per-image outcomes by attack id: the indicators reuse them instead of attacking again
        for spec in self.plan.attacks:
            plugin = self.registry.get("attack", spec.attack)
            bar = self.progress(f"{role}: {spec.id}", distributed.shard_size(len(test), self.batch_size, *shard))
            local = self._stage(f"{role}:attack:{spec.id}", lambda spec=spec, plugin=plugin, bar=bar: run_attack(
                attack_model, test, spec, plugin, clean_pred, self.batch_size, self.device,
                self.plan.seed, role, bar.advance, self._attack_checkpoint(role, spec.id),
                judge=bundle.module, shard=shard))
            bar.close()
            outcome = outcomes[spec.id] = merge_outcomes(distributed.all_gather(local), self.batch_size)
            summary = attack_summary(spec, outcome, labels, clean_correct, dataset.positive_class,
                                     dataset.native_units)
            section["attacks"][spec.id] = summary
            for point in summary["points"]:
                if point["bound_violations"]:
                    self.results["warnings"].append(
                        f"{role}/{spec.id} at eps={point['epsilon']:g}: {point['bound_violations']} adversarial "
                        "examples were outside their epsilon bound and were not counted")
                if self.rank == 0:
                    self.registry.pm.hook.harness_attack_result(
                        plan=self.plan, model_role=role, attack_id=spec.id, epsilon=point["epsilon"],
                        robust_accuracy=point["robust_accuracy"])
            self.sample_rows += sample_rows(role, spec, outcome, test.sample_ids, labels, clean_pred)
            if self.rank == 0:
                write_samples(self.run_dir / "samples.csv", self.sample_rows, self._all_epsilons())
            self._save()
        if self.plan.indicators.enabled:
            section["indicators"] = self._stage(f"{role}:indicators", lambda: distributed.on_main(
                lambda: compute_indicators(bundle.module, test, section, self.plan, self.registry, self.device,
                                           self.batch_size, self.plan.seed, self.plan.indicators.n_images,
                                           dataset.class_names, outcomes)))
            if not section["indicators"]["credible"]:
                self.results["warnings"].append(f"{role}: the attack results may not be credible (attack-failure "
                                                "indicators: " + "; ".join(section["indicators"]["flags"]) + ")")
            self._save()
        settings = self.plan.report
        self._stage(f"{role}:examples", lambda: distributed.on_main(lambda: save_examples(
            self.run_dir, role, bundle.module, test, self.plan.attacks, self.registry, self.device,
            self.batch_size, settings.n_examples, settings.susceptibility_cutoff, self.plan.seed), share=False))

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
                                          lambda n: next(iter(batches(test, n))), grid or self.plan.epsilons)
        self.manifest.setdefault("engine_choice", {})[role] = choice
        model, notes = prepare_attack_model(bundle.module, settings, self.device, sample.to(self.device))
        self.results["warnings"] += [f"{role}: engine: {note}" for note in notes]
        return model

    def _check_criteria(self) -> None:
        entries = evaluate(self.plan.acceptance, self.results)
        self.results["criteria"] = entries
        self.results["verdict"] = verdict(entries)

    # -- helpers -------------------------------------------------------------------------------------------
    def _stage(self, name: str, work: Callable[[], Any]) -> Any:
        """Run one stage, timed; under torchrun every rank runs it and the ranks agree on errors at its end."""
        start = time.perf_counter()
        try:
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

    def _all_epsilons(self) -> list[float]:
        return sorted({eps for spec in self.plan.attacks for eps in spec.epsilons})

    def _seed(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _initial_manifest(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "schema": "harness.manifest", "schema_version": 1,
            "harness_version": __version__,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": sys.argv,
            "plan": {"name": plan.name, "source": plan.source, "sha256": plan.sha256, "resolved": plan.resolved,
                     "overrides": plan.overrides},
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
            used.add(("architecture", architecture))
        return (kind, name) in used

    def _save(self) -> None:
        if self.rank != 0:
            return  # rank 0 alone writes the run directory
        write_json_atomic(self.run_dir / "results.json", self.results)
        write_json_atomic(self.run_dir / "manifest.json", self.manifest)


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


def validate_dataset(dataset: DatasetBundle) -> None:
    """The core's own checks on any dataset plugin's output: splits present, shapes, ranges, no patient leak."""
    for name in SPLIT_NAMES:
        if name not in dataset.splits:
            raise DataError(f"data set '{dataset.name}' has no {name} split")
    if len(dataset.splits["test"]) == 0:
        raise DataError(f"data set '{dataset.name}' has an empty test split")
    if len(dataset.splits["train"]) == 0:
        raise DataError(f"data set '{dataset.name}' has an empty train split")
    k = len(dataset.class_names)
    for name, split in dataset.splits.items():
        labels = np.asarray(split.labels)
        if len(labels) and (labels.min() < 0 or labels.max() >= k):
            raise DataError(f"data set '{dataset.name}' split {name} has labels outside 0..{k - 1}")
    check_no_group_crosses({name: split.group_ids for name, split in dataset.splits.items()})


def _native(dataset: DatasetBundle) -> dict[str, Any] | None:
    units = dataset.native_units
    return None if units is None else {"per_unit": units.per_unit, "unit": units.unit, "note": units.note}
