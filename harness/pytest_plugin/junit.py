"""JUnit XML names: each criterion's testcase is named by its criterion id, its class by the plan file."""

from __future__ import annotations

import pytest

from harness.pytest_plugin.collection import PROPERTY_PREFIX


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
        criterion = dict(report.user_properties).get(f"{PROPERTY_PREFIX}criterion")
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
