"""The approved runs of regression gates (criteria with `baseline:`): opened, checked and resolved.

A path baseline is checked when the plan is loaded (the directory exists and holds a finished run that measured the
criterion's metric with the same attack); every baseline is checked again once the data set is loaded (the same
data content hash), and `latest-pass` is resolved then from the run history of the output directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError, PlanError
from harness.plan.criteria import BaselineRef, Criterion
from harness.results.compare import finished, identify, parameter_differences
from harness.results.criteria import measure
from harness.results.formatting import eps_label
from harness.results.model import DatasetSummary, Json
from harness.results.view import RunResults
from harness.storage.history import history_path, latest_pass

if TYPE_CHECKING:
    from harness.plan.schema import AttackSpec, Plan


def plan_error(ref: BaselineRef, message: str) -> PlanError:
    """A PlanError at the criterion's `baseline` key."""
    return PlanError(message, key=ref.key, line=ref.line, source=ref.source)


def open_approved(path: Path) -> RunResults:
    """A finished run directory (HarnessError naming it when missing, unreadable or unfinished)."""
    if not path.is_dir():
        raise HarnessError(f"baseline run directory {path} does not exist")
    try:
        return finished(RunResults.load(path))
    except HarnessError as exc:
        raise HarnessError(f"baseline {exc.one_line()}") from None


def approved_value(run: RunResults, criterion: Criterion, attack: AttackSpec | None) -> float:
    """The approved run's value of the criterion's metric (HarnessError when it did not measure it, or measured it
    with another attack or attack parameters than the plan's)."""
    roles = ("naive", "hardened") if criterion.model == "change" else (criterion.model,)
    for role in roles:
        if role not in run.model_roles:
            raise HarnessError(f"baseline {run.run_dir} did not evaluate the {role} model")
        if attack is not None:
            if attack.id not in run.attacks(role):
                raise HarnessError(f"baseline {run.run_dir} did not run attack {attack.id} on the {role} model")
            recorded = run.attack(attack.id, role)
            if recorded.attack != attack.attack:
                raise HarnessError(f"baseline {run.run_dir} ran attack {attack.id} as {recorded.attack}, this plan "
                                   f"as {attack.attack}: their results are not comparable")
            differing = parameter_differences(recorded.params, attack.params_dict())
            if differing:
                raise HarnessError(f"baseline {run.run_dir} ran attack {attack.id} with other parameters (approved "
                                   f"vs this plan: {differing}): their results are not comparable")
    value = measure(run.document, criterion)
    if value is None:
        where = f" under {criterion.attack}" if criterion.attack else ""
        where += f" at epsilon {eps_label(criterion.epsilon)}" if criterion.epsilon is not None else ""
        raise HarnessError(f"baseline {run.run_dir} has no value of {criterion.metric} for the {criterion.model} "
                           f"model{where}")
    return value


def check_approved(ref: BaselineRef, criterion: Criterion, attacks: Mapping[str, AttackSpec]) -> None:
    """Plan validation of a path baseline: a finished run that measured the criterion (PlanError otherwise)."""
    assert ref.path is not None
    try:
        approved_value(open_approved(ref.path), criterion, attacks.get(criterion.attack or ""))
    except HarnessError as exc:
        raise plan_error(ref, exc.one_line()) from None


def resolve_baselines(plan: Plan, dataset: DatasetSummary | None, out_root: Path) -> dict[str, RunResults]:
    """The approved run of every regression gate, by criterion id, checked against the data just loaded: the same
    data content hash; `latest-pass` is the newest passing run of the plan on that data in out_root's history."""
    data_sha256 = dataset.content_sha256 if dataset else None
    attacks = {spec.id: spec for spec in plan.attacks}
    opened: dict[Path, RunResults] = {}
    approved = {}
    for criterion in plan.acceptance:
        ref = criterion.baseline
        if ref is None:
            continue
        path = ref.path or _latest_pass(ref, plan.name, data_sha256, out_root)
        try:
            run = opened[path] if path in opened else open_approved(path)
            opened[path] = run
            approved_value(run, criterion, attacks.get(criterion.attack or ""))
        except HarnessError as exc:
            raise plan_error(ref, exc.one_line()) from None
        if identify(run).data_sha256 != data_sha256:
            raise plan_error(ref, f"baseline {path} was measured on another data set (content sha256 "
                                  f"{_short(identify(run).data_sha256)}, this run's {_short(data_sha256)})")
        approved[criterion.id] = run
    return approved


def _latest_pass(ref: BaselineRef, plan_name: str, data_sha256: str | None, out_root: Path) -> Path:
    """The run directory `latest-pass` names (PlanError when the history has none, or it is gone)."""
    history = history_path(out_root)
    try:
        entry = latest_pass(out_root, plan_name, data_sha256)
    except HarnessError as exc:
        raise plan_error(ref, exc.one_line()) from None
    if entry is None:
        raise plan_error(ref, f"latest-pass: no passing run of plan '{plan_name}' on this data (content sha256 "
                              f"{_short(data_sha256)}) is recorded in {history}: approve a run first (a passing run "
                              "of the plan without its baseline criteria), or name a run directory")
    if not entry.path.is_dir():
        raise plan_error(ref, f"latest-pass: the newest passing run of plan '{plan_name}' on this data, {entry.path} "
                              f"(recorded in {history}), no longer exists")
    return entry.path


def approved_manifest(criteria: Iterable[Criterion], approved: Mapping[str, RunResults]) -> list[Json]:
    """The manifest's `baselines`: per regression gate, the approved run it was judged against."""
    return [{"criterion": c.id, "spec": c.baseline.spec, "max_drop": c.baseline.max_drop,
             "run": identify(approved[c.id]).to_json()}
            for c in criteria if c.baseline is not None and c.id in approved]


def _short(sha256: Any) -> str:
    return str(sha256)[:12] if sha256 else "none"
