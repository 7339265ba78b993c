"""The template context: every section of harness.report.sections built from one ReportInput, numbered in order."""

from __future__ import annotations

import string
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from harness.formatting import eps_text
from harness.report.inputs import ReportInput
from harness.report.sections import SECTIONS
from harness.report.text import short_hash


@dataclass(frozen=True)
class RenderedSection:
    """One section as the skeleton template includes it."""

    name: str  # the module name
    template: str  # sections/<name>.html
    anchor: str  # the id of its <section>
    heading: str | None  # '5. Results', 'Appendix A. Resolved test plan'; None for untitled parts
    contents: str | None  # its line in the contents
    appendix: bool
    context: dict[str, Any]  # what its build() returned


def section_name(module: ModuleType) -> str:
    """'plan_summary' for harness.report.sections.plan_summary."""
    return module.__name__.rsplit(".", 1)[-1]


def build_sections(report: ReportInput, modules: tuple[ModuleType, ...] = SECTIONS) -> list[RenderedSection]:
    """Build each section in order; sections whose build() returns None are left out and not numbered."""
    out, number, letter = [], 0, 0
    for module in modules:
        context = module.build(report)
        if context is None:
            continue
        name, title, appendix = section_name(module), getattr(module, "TITLE", None), getattr(module, "APPENDIX", False)
        heading = contents = None
        if title and appendix:
            heading = contents = f"Appendix {string.ascii_uppercase[letter]}. {title}"
            letter += 1
        elif title:
            number += 1
            heading, contents = f"{number}. {title}", title
        out.append(RenderedSection(name=name, template=f"sections/{name}.html", anchor=name.replace("_", "-"),
                                   heading=heading, contents=contents, appendix=bool(appendix), context=context))
    return out


def build_context(report: ReportInput) -> dict[str, Any]:
    """The skeleton template's context: the sections, the contents and what every section may show."""
    sections = build_sections(report)
    word, css = report.verdict_word()
    return {
        "sections": sections,
        "contents": [s for s in sections if s.contents],
        "numbers": {s.name: s.heading.split(".", 1)[0] for s in sections if s.heading and not s.appendix},
        "report": {"title": report.title, "plan_hash": (f"plan file sha256 {short_hash(report.plan_file_sha256)}…"
                                                        if report.plan_file_sha256 else
                                                        f"plan {short_hash(report.plan_sha256)}…"),
                   "verdict_word": word,
                   "verdict_css": css, "harness_version": report.harness_version, "cutoff": eps_text(report.cutoff),
                   "cutoff_native": report.native_text(report.cutoff)},
    }
