"""Collection: a plan YAML file becomes a PlanFile with one CriterionItem per acceptance criterion."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.pytest_plugin.messages import failure_message, one_line
from harness.pytest_plugin.session import RunRecord, harness_session

if TYPE_CHECKING:
    from harness.plan.criteria import Criterion
    from harness.plan.schema import Plan
    from harness.results.model import CriterionResult
    from harness.results.view import RunResults

PLAN_SUFFIXES = {".yaml", ".yml"}
_MARKER_LINE = re.compile(r"^[\"']?harness[\"']?\s*:", re.MULTILINE)
PROPERTY_PREFIX = "harness_"


def is_plan_file(path: Path) -> bool:
    """Whether a YAML file is a harness plan: its top-level mapping has the `harness` marker key.

    YAML that does not parse counts as a plan only when a line starts with `harness:` (so its error is
    reported); the plan copies in a run directory (beside its manifest.json) are never collected.
    """
    import yaml

    from harness.plan.schema import is_plan_mapping

    if path.suffix not in PLAN_SUFFIXES:
        return False
    if (path.parent / "manifest.json").exists():  # a run directory's copies of its plan are not gates
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if "harness" not in text:
        return False
    try:
        return is_plan_mapping(yaml.safe_load(text))
    except yaml.YAMLError:
        return bool(_MARKER_LINE.search(text))


def split_criterion_id(criterion_id: str) -> tuple[list[str], str]:
    """Group names and item name so the node id is the criterion id and `pytest FILE::ID` selects it.

    pytest reads ``a::b[x]::c`` on the command line as names ``a``, ``b`` plus the parametrization
    ``[x]::c``, so only the '::' parts before the first '[' become groups.
    """
    head, bracket, tail = criterion_id.partition("[")
    parts = head.split("::")
    return parts[:-1], parts[-1] + bracket + tail


class PlanFile(pytest.File):
    """A harness plan: validated at collection; one item per acceptance criterion."""

    plan: Plan | None = None

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        """Validate the plan (one collection error naming key and line if invalid) and build its criteria."""
        from harness.errors import MissingVariableError, PlanError

        try:
            self.plan = harness_session(self.config).load(self.path)
        except MissingVariableError as exc:  # e.g. a real-data plan on a machine without the data: skip, say why
            where = ", ".join(part for part in (f"line {exc.line}" if exc.line else "",
                                                f"key '{exc.key}'" if exc.key else "") if part)
            pytest.skip(f"${{{exc.variable}}} is not set ({where}): set {exc.variable} to run this plan's gates")
        except PlanError as exc:
            raise self.CollectError(exc.one_line()) from None
        if not self.plan.acceptance:
            self.warn(pytest.PytestWarning(f"{self.plan.source}: the plan has no acceptance criteria, so no gates"))
        lines = _criterion_lines(self.path)
        top: list[pytest.Item | pytest.Collector] = []
        groups: dict[tuple[str, ...], CriterionGroup] = {}
        for index, criterion in enumerate(self.plan.acceptance):
            prefix, name = split_criterion_id(criterion.id)
            parent: pytest.Collector = self
            siblings = top
            for depth in range(1, len(prefix) + 1):
                key = tuple(prefix[:depth])
                if key not in groups:
                    groups[key] = CriterionGroup.from_parent(parent, name=prefix[depth - 1])
                    siblings.append(groups[key])
                parent, siblings = groups[key], groups[key].members
            siblings.append(CriterionItem.from_parent(parent, name=name, criterion=criterion, line=lines.get(index)))
        return top


class CriterionGroup(pytest.Collector):
    """The leading '::' parts of criterion ids (e.g. 'hardened'), so node ids read like the criterion id."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.members: list[pytest.Item | pytest.Collector] = []

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        """The items (and deeper groups) the plan file put here."""
        return self.members


class CriterionFailed(Exception):
    """A criterion did not hold, or its plan's run failed: reported as one line, without a traceback."""


class CriterionItem(pytest.Item):
    """One acceptance criterion of one plan; its run is shared by every criterion of the plan."""

    def __init__(self, *, criterion: Criterion, line: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.criterion = criterion
        self.line = line
        plan_file = self.getparent(PlanFile)
        assert plan_file is not None and plan_file.plan is not None
        self.plan_file = plan_file
        self.user_properties.append((f"{PROPERTY_PREFIX}criterion", criterion.id))

    def setup(self) -> None:
        """Run the plan if this process has not yet: its time is a setup cost of the plan's first item, once."""
        self.record = harness_session(self.config).run(self.plan_file.plan)  # type: ignore[arg-type]

    def runtest(self) -> None:
        """Check this criterion against the plan's run (a failed run fails every criterion, in one line)."""
        record = self.record
        if record.run_dir is not None:
            self.user_properties.append((f"{PROPERTY_PREFIX}run_dir", record.shown_dir))
        if record.error is not None:
            self._fail_run(record)
        entry = _criterion_entry(record.result, self.criterion.id)  # type: ignore[arg-type]
        record.checked[self.criterion.id] = entry.passed
        self.user_properties += [(f"{PROPERTY_PREFIX}measured", entry.measured),
                                 (f"{PROPERTY_PREFIX}threshold", entry.threshold)]
        session = harness_session(self.config)
        problems = [] if entry.passed else [failure_message(entry, record.shown_dir,
                                                            lambda path: session.shown_dir(Path(path)))]
        if record.report_error:
            problems.append(f"{self.criterion.id}: {record.report_error}")
        if problems:
            raise CriterionFailed("; ".join(problems))

    def _fail_run(self, record: RunRecord) -> None:
        from harness.errors import HarnessError

        error = record.error
        first_internal = not isinstance(error, HarnessError) and not record.error_shown
        record.error_shown = True
        if first_internal:  # an internal error: its traceback once, on the first item
            raise error  # type: ignore[misc]
        where = f" (run directory: {record.shown_dir})" if record.run_dir else ""
        raise CriterionFailed(f"{self.criterion.id}: the run of {record.label} failed: {one_line(error)}{where}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        """One line for a failed criterion or a failed run; a traceback only for internal errors."""
        if isinstance(excinfo.value, CriterionFailed):
            return str(excinfo.value)
        if style is None and self.config.getoption("tbstyle", "auto") == "auto":
            style = "short"
        return super().repr_failure(excinfo, style)

    def _traceback_filter(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        """An internal error's traceback from the runner down, without pytest's own frames."""
        from harness.run import runner

        traceback = excinfo.traceback
        return (traceback.cut(path=Path(runner.__file__)) or traceback).filter(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """The plan file, the criterion's line in it, and the failure heading "criterion id (plan file)".

        The heading must not be a suffix of the node id: pytest would rewrite the dots of such a "domain" into
        '::' in `-v` lines (e.g. 'clean_accuracy>=0::80').
        """
        line = None if self.line is None else self.line - 1
        return self.path, line, f"{self.criterion.id} ({self.path.name})"


def _criterion_lines(path: Path) -> dict[int, int]:
    """The YAML line of each acceptance entry (index → 1-based line); empty if unavailable."""
    from harness.errors import PlanError
    from harness.plan.yaml_source import load_yaml_text

    try:
        doc = load_yaml_text(path.read_text(encoding="utf-8"), str(path))
    except (PlanError, OSError, UnicodeDecodeError):
        return {}
    return {int(key.split(".")[1]): line for key, line in doc.lines.items()
            if key.startswith("acceptance.") and key.count(".") == 1}


def _criterion_entry(result: RunResults, criterion_id: str) -> CriterionResult:
    for entry in result.criteria:
        if entry.id == criterion_id:
            return entry
    raise CriterionFailed(f"{criterion_id}: not in the run's results (run directory: {result.run_dir})")
