"""The pytest plugin: each acceptance criterion of a plan YAML becomes a test item; fixtures for teams' own tests.

`pytest specs/` collects every harness plan (YAML with the top-level `harness:` marker key) and yields one
item per criterion, e.g. ``specs/ct_nodule.yaml::pgd_linf[eps=0.004]::robust_accuracy>=0.60``. A plan runs
once per pytest process, on its first item; every item then reads its criterion from that run. Under xdist
each worker that gets items of a plan runs it once; ``--dist loadfile`` keeps a plan on one worker so it runs
exactly once.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.plan.criteria import Criterion
    from harness.plan.schema import Plan
    from harness.results.view import RunResults
    from harness.run.runner import RunResult

PLAN_SUFFIXES = {".yaml", ".yml"}
_MARKER_LINE = re.compile(r"^[\"']?harness[\"']?\s*:", re.MULTILINE)
_PROPERTY_PREFIX = "harness_"


# -- options and session state -----------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    """The --harness-* options."""
    group = parser.getgroup("harness", "harness robustness gates (plan YAML files become tests)")
    group.addoption("--harness-out", default="runs", metavar="DIR",
                    help="where run directories go (default: runs/, relative to the invocation directory)")
    group.addoption("--harness-set", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="override a plan value in every plan this session runs (repeatable), "
                         "e.g. --harness-set model.epochs=3")
    group.addoption("--harness-device", default=None, metavar="DEVICE",
                    help="override the plans' device (cpu, cuda, cuda:N)")
    group.addoption("--harness-report", action="store_true", default=False,
                    help="also render each run's PDF report (harness.report.render_report)")


@dataclass
class RunRecord:
    """One plan run in this process: its result, or the error that stopped it, and the PDF report outcome."""

    label: str
    result: RunResult | None = None
    error: BaseException | None = None
    run_dir: Path | None = None
    shown_dir: str = "-"
    report_error: str | None = None
    error_shown: bool = False

    def summary(self) -> dict[str, str]:
        """A JSON-able line for the terminal summary (sent from xdist workers to the controller)."""
        if self.result is not None:
            verdict = self.result.results.get("verdict") or {}
            outcome = (f"{'PASS' if verdict.get('passed') else 'FAIL'} "
                       f"({verdict.get('n_passed', 0)}/{verdict.get('n_criteria', 0)} criteria passed)")
        else:
            outcome = f"run failed: {_one_line(self.error)}"
        if self.report_error:
            outcome += f"; {self.report_error}"
        return {"label": self.label, "run_dir": self.shown_dir, "outcome": outcome}


@dataclass
class HarnessSession:
    """Options and the per-process cache of plan runs, keyed by (plan source, resolved-plan hash)."""

    config: pytest.Config
    out_root: Path
    overrides: list[str]
    device: str | None
    render: bool
    runs: dict[tuple[str, str], RunRecord] = field(default_factory=dict)
    remote_summaries: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: pytest.Config) -> HarnessSession:
        """Read the options; a relative --harness-out is anchored at the invocation directory."""
        out = Path(config.getoption("harness_out")).expanduser()
        return cls(config=config, out_root=out if out.is_absolute() else config.invocation_params.dir / out,
                   overrides=list(config.getoption("harness_set") or []), device=config.getoption("harness_device"),
                   render=bool(config.getoption("harness_report")))

    def display(self, path: Path) -> str:
        """A path as users see it: relative to the rootdir (like node ids) when inside it."""
        try:
            return path.resolve().relative_to(self.config.rootpath.resolve()).as_posix()
        except ValueError:
            return str(path)

    def shown_dir(self, path: Path) -> str:
        """A run directory relative to the invocation directory when inside it."""
        try:
            return str(path.resolve().relative_to(self.config.invocation_params.dir.resolve()))
        except ValueError:
            return str(path)

    def resolve(self, path: str | Path) -> Path:
        """A plan path given to a fixture: absolute, or relative to the rootdir."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.config.rootpath / path

    def load(self, path: Path, extra: Sequence[str] = ()) -> Plan:
        """Load and validate a plan with the session's --harness-set overrides, then `extra`."""
        return load_plan_file(path, self.display(path), [*self.overrides, *extra])

    def run(self, plan: Plan) -> RunRecord:
        """The plan's run in this process, running it on first use."""
        key = (plan.source, plan.sha256)
        if key not in self.runs:
            self.runs[key] = self._execute(plan)
        return self.runs[key]

    def _execute(self, plan: Plan) -> RunRecord:
        from harness.registry.manager import default_registry
        from harness.run.runner import RunConfig, Runner

        label = plan.source + (f" (overrides: {' '.join(plan.overrides)})" if plan.overrides else "")
        record = RunRecord(label=label)
        config = RunConfig(out_root=self.out_root, device=self.device, progress=False,
                           echo=lambda message: print(message, file=sys.stderr))
        runner = Runner(plan, default_registry(), config)
        try:
            record.result = runner.run()
        except Exception as exc:  # kept for every item of the plan; the plan is never re-run
            record.error = exc
        record.run_dir = getattr(runner, "run_dir", None)
        if record.run_dir is not None:
            record.shown_dir = self.shown_dir(record.run_dir)
        if record.result is not None and self.render:
            record.report_error = render_pdf(record.result.run_dir)
        return record

    def summaries(self) -> list[dict[str, str]]:
        """Every run of this session: this process's and those reported by xdist workers."""
        return [record.summary() for record in self.runs.values()] + self.remote_summaries


_SESSION = pytest.StashKey[HarnessSession]()


def pytest_configure(config: pytest.Config) -> None:
    """Create the session state."""
    config.stash[_SESSION] = HarnessSession.from_config(config)
    if config.getoption("xmlpath", None):
        config.pluginmanager.register(JunitNames(config), "harness-junit-names")


def harness_session(config: pytest.Config) -> HarnessSession:
    """The harness state of a pytest session."""
    return config.stash[_SESSION]


# -- plan loading --------------------------------------------------------------------------------------------
def load_plan_file(path: Path, source: str, overrides: list[str]) -> Plan:
    """Load a plan like harness.plan.schema.load_plan, naming it by `source` in errors."""
    from harness.errors import PlanError
    from harness.plan.schema import plan_from_document
    from harness.plan.yaml_source import load_yaml_text
    from harness.registry.manager import default_registry

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError("plan file not found", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read plan: {exc}", source=source) from None
    doc = load_yaml_text(text, source)
    return plan_from_document(doc, path.resolve().parent, list(overrides), default_registry())


def is_plan_file(path: Path) -> bool:
    """Whether a YAML file is a harness plan: its top-level mapping has the `harness` marker key.

    YAML that does not parse counts as a plan only when a line starts with `harness:` (so its error is
    reported); a run directory's own plan.resolved.yaml is never collected.
    """
    import yaml

    from harness.plan.schema import is_plan_mapping

    if path.suffix not in PLAN_SUFFIXES:
        return False
    if path.name == "plan.resolved.yaml" and (path.parent / "manifest.json").exists():
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


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> PlanFile | None:
    """Collect harness plan YAML files; any other YAML is left alone."""
    if file_path.suffix in PLAN_SUFFIXES and is_plan_file(file_path):  # (suffix first: no imports for .py files)
        return PlanFile.from_parent(parent, path=file_path)
    return None


# -- collection: plan file → criterion items ------------------------------------------------------------------
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
        from harness.errors import PlanError

        try:
            self.plan = harness_session(self.config).load(self.path)
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
        self.user_properties.append((f"{_PROPERTY_PREFIX}criterion", criterion.id))

    def runtest(self) -> None:
        """Run the plan if this process has not yet, then check this criterion."""
        session = harness_session(self.config)
        record = session.run(self.plan_file.plan)  # type: ignore[arg-type]
        if record.run_dir is not None:
            self.user_properties.append((f"{_PROPERTY_PREFIX}run_dir", record.shown_dir))
        if record.error is not None:
            self._fail_run(record)
        entry = _criterion_entry(record.result, self.criterion.id)  # type: ignore[arg-type]
        self.user_properties += [(f"{_PROPERTY_PREFIX}measured", entry.get("measured")),
                                 (f"{_PROPERTY_PREFIX}threshold", entry.get("threshold"))]
        problems = [] if entry.get("passed") else [failure_message(entry, record.shown_dir)]
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
        raise CriterionFailed(f"{self.criterion.id}: the run of {record.label} failed: {_one_line(error)}{where}")

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
        """The plan file and the criterion's line in it."""
        return self.path, None if self.line is None else self.line - 1, f"{self.plan_file.nodeid}::{self.criterion.id}"


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


def _criterion_entry(result: RunResult, criterion_id: str) -> dict[str, Any]:
    for entry in result.results.get("criteria", []):
        if entry["id"] == criterion_id:
            return entry
    raise CriterionFailed(f"{criterion_id}: not in the run's results (run directory: {result.run_dir})")


def format_value(value: float) -> str:
    """A measured value: three decimals, or three significant digits for small values."""
    return f"{value:.3f}" if value == 0 or abs(value) >= 0.01 else f"{value:.3g}"


def format_threshold(value: float) -> str:
    """A threshold as in criterion ids: two decimals when exact, else %g."""
    return f"{value:.2f}" if round(value, 2) == value else f"{value:g}"


def failure_message(entry: dict[str, Any], run_dir: str) -> str:
    """E.g. 'pgd_linf[eps=0.004]::robust_accuracy>=0.60: measured 0.231 < 0.60 (run directory: runs/…)'."""
    measured, threshold = entry.get("measured"), format_threshold(float(entry["threshold"]))
    if measured is None:
        detail = f"{entry.get('note') or 'not measured'}; required {entry['op']} {threshold}"
    else:
        detail = f"measured {format_value(float(measured))} {'<' if entry['op'] == '>=' else '>'} {threshold}"
    return f"{entry['id']}: {detail} (run directory: {run_dir})"


def _one_line(error: BaseException | None) -> str:
    from harness.errors import HarnessError

    if isinstance(error, HarnessError):
        return error.one_line()
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def render_pdf(run_dir: Path) -> str | None:
    """Render the PDF report of a run (harness.report.render_report); the problem in one line, or None."""
    try:
        from harness.report import render_report
    except ImportError as exc:
        return f"--harness-report: the report renderer is not available ({type(exc).__name__}: {exc})"
    try:
        render_report(run_dir)
    except Exception as exc:  # any failure of the renderer fails the gates, in one line
        return f"--harness-report: rendering the PDF report failed: {_one_line(exc)}"
    return None


# -- reporting: junit names, terminal summary, xdist ------------------------------------------------------------
class JunitNames:
    """Names each criterion's JUnit testcase by its criterion id, its class by the plan file.

    pytest would split ids such as 'naive::clean_auc' into class and name and append a stray ']' to ids
    with an epsilon.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Set the testcase name before the junitxml plugin records the report."""
        if report.when != "setup":
            return
        criterion = dict(report.user_properties).get(f"{_PROPERTY_PREFIX}criterion")
        try:
            from _pytest.junitxml import xml_key
        except ImportError:  # pragma: no cover - another pytest keeps its own naming
            return
        xml = self.config.stash.get(xml_key, None)
        if criterion is not None and xml is not None:
            classname = report.nodeid.split("::", 1)[0].replace("/", ".")
            reporter = xml.node_reporter(report)
            reporter.add_attribute("classname", f"{xml.prefix}.{classname}" if xml.prefix else classname)
            reporter.add_attribute("name", criterion)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In an xdist worker, hand this worker's runs to the controller for its terminal summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["harness_runs"] = json.dumps(harness_session(session.config).summaries())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect the runs a worker made."""
    raw = getattr(node, "workeroutput", {}).get("harness_runs")
    if raw:
        harness_session(node.config).remote_summaries.extend(json.loads(raw))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """List the run directory of every plan run in this session."""
    summaries = harness_session(config).summaries()
    if not summaries:
        return
    terminalreporter.section("harness runs", sep="-")
    for item in summaries:
        terminalreporter.write_line(f"{item['label']}: {item['outcome']} -> run directory: {item['run_dir']}")


# -- fixtures for teams' own tests ---------------------------------------------------------------------------------
def settings_to_overrides(overrides: list[str] | tuple[str, ...] | None, settings: dict[str, Any]) -> list[str]:
    """`overrides` strings ('model.epochs=2') then keyword settings, where '__' stands for '.' (model__epochs=2)."""
    out = list(overrides or [])
    for key, value in settings.items():
        out.append(f"{key.replace('__', '.')}={json.dumps(value)}")
    return out


@pytest.fixture(scope="session")
def harness_plan(pytestconfig: pytest.Config) -> Callable[..., Plan]:
    """Factory: ``harness_plan(path, overrides=None, **settings)`` → a validated Plan (PlanError if invalid).

    A relative path is taken from the rootdir. Overrides apply after --harness-set: ``overrides=["model.epochs=2"]``
    and/or settings with '__' for '.', ``harness_plan("specs/ct_nodule.yaml", model__epochs=2)``.
    """
    session = harness_session(pytestconfig)

    def load(path: str | Path, overrides: list[str] | None = None, **settings: Any) -> Plan:
        return session.load(session.resolve(path), settings_to_overrides(overrides, settings))

    return load


@pytest.fixture(scope="session")
def harness_run(pytestconfig: pytest.Config, harness_plan: Callable[..., Plan]) -> Callable[..., RunResults]:
    """Factory: ``harness_run(plan_or_path, overrides=None, **settings)`` → RunResults of that plan's run.

    Runs are cached for the session by plan file and resolved content, shared with the plan's collected items.
    A run that fails raises its HarnessError; with --harness-report a failed PDF rendering fails the test.
    """
    from harness.plan.schema import Plan
    from harness.results.view import RunResults

    session = harness_session(pytestconfig)

    def run(plan_or_path: Plan | str | Path, overrides: list[str] | None = None, **settings: Any) -> RunResults:
        if isinstance(plan_or_path, Plan):
            if overrides or settings:
                raise TypeError("harness_run: overrides apply to a plan path; pass them to harness_plan instead")
            plan = plan_or_path
        else:
            plan = harness_plan(plan_or_path, overrides, **settings)
        record = session.run(plan)
        if record.error is not None:
            raise record.error
        if record.report_error:
            pytest.fail(record.report_error, pytrace=False)
        return RunResults.from_run(record.result)

    return run
