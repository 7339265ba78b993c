"""The pytest session's harness state: options, the per-process cache of plan runs, and plan loading."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.pytest_plugin.messages import one_line

if TYPE_CHECKING:
    from harness.plan.schema import Plan
    from harness.results.view import RunResults


@dataclass
class RunRecord:
    """One plan run in this process: its result, or the error that stopped it, and the PDF report outcome."""

    label: str
    result: RunResults | None = None
    error: BaseException | None = None
    run_dir: Path | None = None
    shown_dir: str = "-"
    report_error: str | None = None
    error_shown: bool = False
    checked: dict[str, bool] = field(default_factory=dict)  # criterion id → passed, for the items run (-k, -x)

    def summary(self) -> dict[str, str]:
        """A JSON-able line for the terminal summary (sent from xdist workers to the controller): the criteria this
        session checked, and the run's own verdict when that was a selection."""
        if self.result is not None:
            verdict = self.result.verdict
            n_passed, n_criteria = (verdict.n_passed, verdict.n_criteria) if verdict else (0, 0)
            run_word = verdict.word if verdict else "FAIL"
            outcome = f"{run_word} ({n_passed}/{n_criteria} criteria passed)"
            if self.checked and len(self.checked) < n_criteria:
                passed = sum(self.checked.values())
                word = "PASS" if passed == len(self.checked) else "FAIL"
                outcome = (f"{word} ({passed}/{len(self.checked)} selected criteria passed; the run's verdict: "
                           f"{run_word}, {n_passed}/{n_criteria})")
        else:
            outcome = f"run failed: {one_line(self.error)}"
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
        piped = sys.__stdout__ is None or not sys.__stdout__.isatty()
        config = RunConfig(out_root=self.out_root, device=self.device, progress="lines" if piped else False,
                           echo=self.echo if piped else lambda message: print(message, file=sys.stderr))
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

    def echo(self, message: str) -> None:
        """A status or progress line on stderr past pytest's capture, as `harness run` prints it in a CI log."""
        capture = self.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(message, file=sys.stderr, flush=True)

    def summaries(self) -> list[dict[str, str]]:
        """Every run of this session: this process's and those reported by xdist workers."""
        return [record.summary() for record in self.runs.values()] + self.remote_summaries


SESSION_KEY = pytest.StashKey[HarnessSession]()


def harness_session(config: pytest.Config) -> HarnessSession:
    """The harness state of a pytest session."""
    return config.stash[SESSION_KEY]


def load_plan_file(path: Path, source: str, overrides: list[str]) -> Plan:
    """Load a plan like harness.plan.schema.load_plan, naming it by `source` in errors."""
    from harness.errors import PlanError
    from harness.plan.schema import plan_from_document
    from harness.plan.yaml_source import load_yaml_text
    from harness.registry.manager import default_registry
    from harness.results.baselines import check_baselines

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError("plan file not found", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read plan: {exc}", source=source) from None
    doc = load_yaml_text(text, source)
    plan = plan_from_document(doc, path.resolve().parent, list(overrides), default_registry())
    check_baselines(plan)
    return plan


def render_pdf(run_dir: Path) -> str | None:
    """Render the PDF report of a run (harness.report.render_report); the problem in one line, or None."""
    try:
        from harness.report import render_report
    except ImportError as exc:
        return f"--harness-report: the report renderer is not available ({type(exc).__name__}: {exc})"
    try:
        render_report(run_dir)
    except Exception as exc:  # any failure of the renderer fails the gates, in one line
        return f"--harness-report: rendering the PDF report failed: {one_line(exc)}"
    return None
