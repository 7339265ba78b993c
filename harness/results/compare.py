"""Two runs compared metric by metric, and image by image where a metric is a proportion of the same images.

The paired test needs the same test images in both runs: the same de-identified sample ids (and labels) in their
samples.csv. `compare_runs` refuses runs measured on different test images. The exact McNemar test and the paired
table come from harness.results.paired (harness.stats).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import DataError, HarnessError
from harness.plan.metrics import CLEAN, METRICS, Metric, Outcomes, metrics_in
from harness.results.model import Json, PairedComparison, RunIdentity, thaw
from harness.results.paired import compare
from harness.results.samples import SampleOutcome
from harness.results.status import JUDGED
from harness.results.view import RunResults
from harness.stats.paired import TEST_NAME

SCHEMA = "harness.comparison"
SCHEMA_VERSION = 1
ROBUST_ACCURACY = METRICS["robust_accuracy"]
MEDIAN_MIN_EPSILON = METRICS["median_min_epsilon"]
Decisions = Mapping[str, tuple[int, bool, bool]]  # de-identified sample id -> (label, clean correct, correct)


def decisions_by_sample(samples: Iterable[SampleOutcome], role: str, attack: str | None = None,
                        epsilon: float | None = None) -> dict[str, tuple[int, bool, bool]]:
    """Per test image of one model role: its label, whether it was right without attack, and whether it was right
    in the condition measured: without attack (attack None: read from any attack's rows, which all repeat the clean
    prediction) or still right under `attack` at `epsilon`."""
    out: dict[str, tuple[int, bool, bool]] = {}
    for s in samples:
        if s.model != role or (attack is not None and s.attack != attack):
            continue
        if attack is None:
            out.setdefault(s.sample_id, (s.label, s.clean_correct, s.clean_correct))
        elif epsilon in s.success:
            out[s.sample_id] = (s.label, s.clean_correct, s.clean_correct and not s.success[epsilon])
    return out


def paired_test(metric: Metric, a: Decisions, b: Decisions, positive_class: int, attack: str | None = None,
                epsilon: float | None = None, names: tuple[str, str] = ("A", "B")) -> PairedComparison | None:
    """The exact McNemar test of a proportion on the images it counts in both runs (accuracy: every image;
    sensitivity: the positive class); None when the metric is not a proportion, the runs did not measure the same
    images with the same labels, or the metric counts other images in each (attack success: the clean-correct ones)."""
    if metric.counts is None or not a or set(a) != set(b):
        return None
    ids = sorted(a)
    if any(b[i][0] != a[i][0] for i in ids):
        return None
    labels = np.array([a[i][0] for i in ids])

    def counts(run: Decisions) -> tuple[np.ndarray, np.ndarray]:
        clean = np.array([run[i][1] for i in ids], dtype=bool)
        right = np.array([run[i][2] for i in ids], dtype=bool)
        return metric.counts(Outcomes(labels, positive_class, clean, right))  # type: ignore[misc]

    (hits_a, members_a), (hits_b, members_b) = counts(a), counts(b)
    if not np.array_equal(members_a, members_b):
        return None
    chosen = [i for i, member in zip(ids, members_a, strict=True) if member]
    return compare(names[0], names[1], attack, epsilon, chosen, dict(zip(ids, hits_a.tolist(), strict=True)),
                   dict(zip(ids, hits_b.tolist(), strict=True)))


def identify(run: RunResults) -> RunIdentity:
    """A run's directory, plan, data content hash, tested weights and verdict."""
    document = run.document
    return RunIdentity(run_dir=str(run.run_dir), plan_name=document.plan.name, plan_sha256=document.plan.sha256,
                       data_sha256=document.dataset.content_sha256 if document.dataset else None,
                       weights_sha256={role: model.weights_sha256 for role, model in document.models.items()},
                       passed=None if document.verdict is None else document.verdict.passed)


def finished(run: RunResults) -> RunResults:
    """The run, if it finished: status passed or failed (HarnessError naming it otherwise)."""
    if run.status not in JUDGED or run.verdict is None:
        raise HarnessError(f"{run.run_dir} is an unfinished run (status '{run.status}'): only a run that passed or "
                           "failed can be compared with another")
    return run


def run_samples(run: RunResults) -> tuple[SampleOutcome, ...]:
    """A run's samples.csv rows (HarnessError naming the file when missing or unreadable)."""
    path = run.run_dir / "samples.csv"
    if not path.is_file():
        raise HarnessError(f"{path} is missing: comparing runs image by image needs their samples.csv")
    try:
        samples = run.samples
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, ValueError) as exc:
        raise HarnessError(f"{path} is not readable ({type(exc).__name__}: {exc})") from None
    if not samples:
        raise HarnessError(f"{path} has no rows: comparing runs image by image needs per-image outcomes")
    return samples


def check_same_test_set(a: RunResults, b: RunResults) -> None:
    """DataError (one line) unless both runs measured the same test images (de-identified ids) with the same labels."""
    labels_a = {s.sample_id: s.label for s in run_samples(a)}
    labels_b = {s.sample_id: s.label for s in run_samples(b)}
    if set(labels_a) != set(labels_b):
        shared = len(set(labels_a) & set(labels_b))
        hint = ""
        if identify(a).data_sha256 == identify(b).data_sha256:
            hint = (" (their data content hashes are equal, so the ids were probably de-identified with another "
                    "salt: set HARNESS_DEID_SALT alike on both machines)")
        raise DataError(f"{a.run_dir} and {b.run_dir} were measured on different test images ({len(labels_a)} and "
                        f"{len(labels_b)} sample ids, {shared} in common): a paired comparison needs the same test "
                        f"set{hint}")
    relabelled = sum(1 for sample_id, label in labels_a.items() if labels_b[sample_id] != label)
    if relabelled:
        raise DataError(f"{a.run_dir} and {b.run_dir} give {relabelled} of their shared test images other labels: a "
                        "paired comparison needs the same test set")


@dataclass(frozen=True)
class MetricDifference:
    """One metric of one model role (and attack and epsilon) in runs A and B, with the paired test where it applies."""

    role: str
    metric: str
    attack: str | None
    epsilon: float | None
    a: float | None
    b: float | None
    paired: PairedComparison | None = None

    @property
    def difference(self) -> float | None:
        """B minus A; None where either was not measured."""
        return None if self.a is None or self.b is None else self.b - self.a

    def to_json(self) -> Json:
        """One entry of the comparison's `metrics`."""
        return {"model": self.role, "metric": self.metric, "attack": self.attack, "epsilon": self.epsilon,
                "a": self.a, "b": self.b, "difference": self.difference,
                "paired": self.paired.to_json() if self.paired else None}


@dataclass(frozen=True)
class Comparison:
    """Run B compared with run A: per model role every clean metric, robust accuracy per attack and epsilon and the
    median minimal epsilon, with notes on anything that makes them less comparable."""

    a: RunIdentity
    b: RunIdentity
    n_images: int
    rows: tuple[MetricDifference, ...]
    notes: tuple[str, ...]

    @property
    def roles(self) -> list[str]:
        """The model roles compared, in order."""
        return list(dict.fromkeys(row.role for row in self.rows))

    def to_json(self) -> Json:
        """The comparison as JSON data (schema harness.comparison)."""
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "a": self.a.to_json(), "b": self.b.to_json(),
                "n_images": self.n_images, "test": TEST_NAME, "notes": list(self.notes),
                "metrics": [row.to_json() for row in self.rows]}


def compare_runs(a: RunResults, b: RunResults) -> Comparison:
    """Compare two finished runs on the same test images (HarnessError, one line, when they cannot be compared)."""
    finished(a), finished(b)
    check_same_test_set(a, b)
    samples_a, samples_b = run_samples(a), run_samples(b)
    positive = a.dataset.positive_class if a.dataset else 1
    roles = [role for role in a.model_roles if role in b.model_roles]
    rows: list[MetricDifference] = []

    def add(metric: Metric, role: str, attack: str | None = None, epsilon: float | None = None) -> None:
        paired = paired_test(metric, decisions_by_sample(samples_a, role, attack, epsilon),
                             decisions_by_sample(samples_b, role, attack, epsilon), positive, attack, epsilon)
        rows.append(MetricDifference(role, metric.name, attack, epsilon, metric.read(a.model(role), attack, epsilon),
                                     metric.read(b.model(role), attack, epsilon), paired))

    for role in roles:
        for metric in metrics_in(CLEAN):
            add(metric, role)
        for attack_id in (attack for attack in a.attacks(role) if attack in b.attacks(role)):
            grid_b = b.attack(attack_id, role).grid
            for eps in (eps for eps in a.attack(attack_id, role).grid if eps in grid_b):
                add(ROBUST_ACCURACY, role, attack_id, eps)
            if a.min_epsilon(attack_id, role) and b.min_epsilon(attack_id, role):
                add(MEDIAN_MIN_EPSILON, role, attack_id)
    return Comparison(identify(a), identify(b), len({s.sample_id for s in samples_a}), tuple(rows),
                      tuple(comparability_notes(a, b)))


def comparability_notes(a: RunResults, b: RunResults) -> list[str]:
    """What differs between the runs beyond the model: plans, data content, model roles, attacks, epsilons."""
    notes = []
    ida, idb = identify(a), identify(b)
    if ida.plan_name != idb.plan_name:
        notes.append(f"the runs are of different plans ({ida.plan_name} and {idb.plan_name})")
    if ida.data_sha256 != idb.data_sha256:
        notes.append("the data sets' content hashes differ although the test images are the same by id and label: "
                     "the pixels, their preprocessing or the train/validation splits differ")
    for role in sorted(set(a.model_roles) ^ set(b.model_roles)):
        notes.append(f"the {role} model was evaluated in {'A' if role in a.model_roles else 'B'} only")
    for role in (role for role in a.model_roles if role in b.model_roles):
        attacks_a, attacks_b = a.attacks(role), b.attacks(role)
        for attack_id in [x for x in attacks_a if x not in attacks_b] + [x for x in attacks_b if x not in attacks_a]:
            notes.append(f"{role}: attack {attack_id} ran in {'A' if attack_id in attacks_a else 'B'} only")
        for attack_id in (x for x in attacks_a if x in attacks_b):
            notes += _attack_notes(role, attack_id, a.attack(attack_id, role), b.attack(attack_id, role))
    return notes


def _attack_notes(role: str, attack_id: str, a: Any, b: Any) -> list[str]:
    """Differences in one attack's plugin, parameters and epsilon grid between runs A and B."""
    notes = []
    if a.attack != b.attack:
        notes.append(f"{role}: attack {attack_id} is {a.attack} in A and {b.attack} in B")
    differing = parameter_differences(a.params, b.params)
    if differing:
        notes.append(f"{role}: attack {attack_id} ran with other parameters ({differing})")
    only = sorted(set(a.grid.values) ^ set(b.grid.values))
    if only:
        notes.append(f"{role}: attack {attack_id}: epsilons {', '.join(f'{eps:g}' for eps in only)} ran in one run "
                     "only and are not compared")
    return notes


def parameter_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """'steps 10 vs 20, restarts 1 vs 3' for the parameters whose values differ ('' when none do)."""
    plain_a, plain_b = (json.loads(json.dumps(thaw(p), default=str)) for p in (a, b))
    keys = sorted(set(plain_a) | set(plain_b))
    return ", ".join(f"{key} {json.dumps(plain_a.get(key))} vs {json.dumps(plain_b.get(key))}"
                     for key in keys if plain_a.get(key) != plain_b.get(key))

