"""The report's sections, in the order the report shows them.

Each section is a module here and a template `templates/sections/<module name>.html`. The module defines

- ``TITLE``: the heading, numbered ("5. Results") and listed in the contents; ``None`` for the cover and for a
  part that continues the section before it (its template then starts at ``<h3>``).
- ``APPENDIX = True`` (optional): lettered "Appendix A." instead of numbered; appendices, like other
  sections follow on the page of the one before (wrap a block that must stay together in ``<div class="keep">``).
  A ``<table class="data">`` stays on one page; give one that can run longer than half a page the class ``long``
  so that it splits between rows instead.
- ``build(report: ReportInput) -> dict | None``: the values its template shows, read from ``report`` (the run's
  RunResults as ``report.run``, ``report.samples``, ``report.examples``, ``report.manifest`` and the shared
  queries of harness.report.inputs); ``None`` leaves the section out. Format numbers with
  harness.formatting (pct, num, eps_text) and name metrics through harness.plan.metrics.

Its template gets ``section`` (what ``build`` returned), ``heading`` ("5. Results"), ``anchor`` (the id for its
``<section>``), and, shared by every section, ``report`` (title, plan hash, verdict), ``contents`` and
``numbers`` (heading number by module name, for cross-references).

To add a section: write ``sections/<name>.py`` and ``templates/sections/<name>.html``, and add the module to
SECTIONS below where it belongs.
"""

from __future__ import annotations

from types import ModuleType

from harness.report.sections import (
    appendix,
    approval,
    baselines,
    certification,
    corruption_examples,
    corruptions,
    cover,
    criteria,
    environment,
    examples,
    indicators,
    intervals,
    limitations,
    minimal_epsilon,
    paired,
    plan_summary,
    provenance,
    results,
    robustness_profile,
    scope,
    subgroups,
    summary,
    susceptibility,
    warnings,
)

SECTIONS: tuple[ModuleType, ...] = (
    cover,
    summary,
    robustness_profile,
    scope,
    limitations,
    plan_summary,
    criteria,
    baselines,
    intervals,
    results,
    subgroups,
    paired,
    minimal_epsilon,
    susceptibility,
    indicators,
    examples,
    corruptions,
    corruption_examples,
    certification,
    provenance,
    environment,
    warnings,
    approval,
    appendix,
)
