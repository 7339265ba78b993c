"""Read what the report shows from a run directory: RunResults, samples.csv, saved examples and the plan text."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError
from harness.report.inputs import ReportInput
from harness.report.saved_corruption_examples import CorruptionExamples, read_corruption_examples
from harness.report.saved_examples import Examples, read_examples
from harness.results.model import thaw
from harness.results.samples import SampleOutcome
from harness.results.view import RunResults


def load_report(run_dir: Path) -> ReportInput:
    """Read the run directory; missing or unreadable results/manifest raise HarnessError (one line)."""
    try:
        run = RunResults.load(run_dir, require_manifest=True)
    except HarnessError as exc:
        raise HarnessError(f"cannot build the report: {exc.one_line()}") from None
    problems: list[str] = []
    samples = _read_samples(run, problems)
    examples: dict[str, Examples] = {}
    for path in sorted(run.run_dir.glob("examples_*.npz")):
        try:
            loaded = read_examples(path)
        except (OSError, ValueError, KeyError, EOFError) as exc:
            problems.append(f"{path.name} could not be read ({type(exc).__name__}); no examples shown from it")
            continue
        examples[loaded.role] = loaded
    corruption_examples = _corruption_examples(run.run_dir, problems)
    plan = run.record.plan
    plan_yaml = _plan_yaml(run.run_dir / "plan.resolved.yaml", thaw(plan.resolved) or None)
    plan_source, source_sha256 = _plan_source(run.run_dir, plan.copy, problems)
    return ReportInput(run=run, samples=samples, examples=examples, plan_yaml=plan_yaml, plan_source=plan_source,
                       plan_source_sha256=source_sha256, problems=problems,
                       corruption_examples=corruption_examples)


def _plan_source(run_dir: Path, copy: Any, problems: list[str]) -> tuple[str | None, str | None]:
    """The run's copy of the plan file (manifest `plan.copy`, e.g. plan.source.yaml) as UTF-8 text and the sha256
    of its bytes; (None, None) for runs made before the copy was kept."""
    if not isinstance(copy, str) or not copy:
        return None, None
    path = run_dir / Path(copy).name
    if not path.is_file():
        problems.append(f"{path.name} (the plan file as written) is missing; Appendix A shows the resolved plan")
        return None, None
    try:
        data = path.read_bytes()
        return data.decode("utf-8"), hashlib.sha256(data).hexdigest()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path.name} could not be read ({type(exc).__name__}); Appendix A shows the resolved plan")
        return None, None


def _corruption_examples(run_dir: Path, problems: list[str]) -> dict[str, CorruptionExamples]:
    """The corruption strips by model role; an unreadable file becomes a warning."""
    found: dict[str, CorruptionExamples] = {}
    for path in sorted(run_dir.glob("corruption_examples_*.npz")):
        try:
            loaded = read_corruption_examples(path)
        except (OSError, ValueError, KeyError, EOFError) as exc:
            problems.append(f"{path.name} could not be read ({type(exc).__name__}); no corruption examples shown "
                            "from it")
            continue
        found[loaded.role] = loaded
    return found


def _read_samples(run: RunResults, problems: list[str]) -> tuple[SampleOutcome, ...]:
    if not (run.run_dir / "samples.csv").is_file():
        problems.append("samples.csv is missing: per-image analyses (minimal-epsilon histogram, susceptible "
                        "images) are not shown")
        return ()
    try:
        return run.samples
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, ValueError) as exc:
        problems.append(f"samples.csv could not be read ({type(exc).__name__}): per-image analyses are not shown")
        return ()


def _plan_yaml(path: Path, resolved: Any) -> str | None:
    """The resolved plan as YAML: plan.resolved.yaml (keeps the plan's key order) if it matches the manifest."""
    resolved = thaw(resolved)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
            if resolved is None or _json_equal(yaml.safe_load(text), resolved):
                return text
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            pass
    if resolved is None:
        return None
    return yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True)


def _json_equal(a: Any, b: Any) -> bool:
    try:
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return False
