"""The pytest plugin: each acceptance criterion of a plan YAML becomes a test item; fixtures for teams' own tests.

`pytest specs/` collects every harness plan (YAML with the top-level `harness:` marker key) and yields one
item per criterion, e.g. ``specs/ct_nodule.yaml::pgd_linf[eps=0.004]::robust_accuracy>=0.60``. A plan runs
once per pytest process, on its first item; every item then reads its criterion from that run. Under xdist
each worker that gets items of a plan runs it once; ``--dist loadfile`` keeps a plan on one worker so it runs
exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.pytest_plugin.collection import PLAN_SUFFIXES, PlanFile, is_plan_file
from harness.pytest_plugin.fixtures import harness_plan, harness_run
from harness.pytest_plugin.junit import JunitNames
from harness.pytest_plugin.session import SESSION_KEY, HarnessSession, harness_session

__all__ = ["harness_plan", "harness_run"]  # fixtures: pytest finds them as attributes of this plugin module


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


def pytest_configure(config: pytest.Config) -> None:
    """Create the session state."""
    config.stash[SESSION_KEY] = HarnessSession.from_config(config)
    if config.getoption("xmlpath", None):
        config.pluginmanager.register(JunitNames(config), "harness-junit-names")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> PlanFile | None:
    """Collect harness plan YAML files; any other YAML is left alone."""
    if file_path.suffix in PLAN_SUFFIXES and is_plan_file(file_path):  # (suffix first: no imports for .py files)
        return PlanFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """A skipped plan file is reported at the plan file, not at the line of this plugin that skipped it."""
    report = yield
    if isinstance(collector, PlanFile) and report.skipped and isinstance(report.longrepr, tuple):
        report.longrepr = (collector.nodeid, None, report.longrepr[2])
    return report


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
