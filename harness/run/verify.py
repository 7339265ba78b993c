"""`harness verify RUN_DIR`: re-check a run directory against its own records.

Checked: SHA256SUMS (every file, the report and the model copy included), the plan hashes (the plan file's bytes,
plan.resolved.yaml, and the plan id, canonical JSON of the resolved plan), each model copy against the manifest,
results.json against the manifest, and (when the data can be loaded again) the data's content hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.storage.checksums import SUMS_FILE, check_sums
from harness.storage.hashing import canonical_json_sha256, file_sha256


@dataclass
class Verification:
    """What `harness verify` found: mismatches (each one line naming the file), checks passed, checks skipped."""

    mismatches: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether everything checked matched."""
        return not self.mismatches


def _json(path: Path, found: Verification) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        found.mismatches.append(f"{path.name}: missing")
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        found.mismatches.append(f"{path.name}: not readable JSON ({type(exc).__name__})")
        return None
    return data if isinstance(data, dict) else None


def _compare(found: Verification, label: str, run_dir: Path, name: str, expected: Any) -> None:
    """One file's sha256 (`name`, relative to the run directory) against the manifest's record."""
    path = run_dir / name
    if not isinstance(expected, str) or not expected:
        found.skipped.append(f"{label}: no hash recorded")
    elif not path.is_file():
        found.mismatches.append(f"{name}: missing ({label})")
    elif file_sha256(path) != expected:
        found.mismatches.append(f"{name}: sha256 differs from the manifest's {label} hash")
    else:
        found.passed.append(f"{label} sha256 matches")


def _sums(run_dir: Path, found: Verification) -> None:
    try:
        problems = check_sums(run_dir)
    except FileNotFoundError:
        found.mismatches.append(f"{SUMS_FILE}: missing (the run did not finish writing its directory)")
        return
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        found.mismatches.append(f"{SUMS_FILE}: not readable ({exc})")
        return
    found.mismatches += [p.line() for p in problems]
    if not problems:
        found.passed.append(f"{SUMS_FILE}: every file matches")


def _plan(run_dir: Path, manifest: dict[str, Any], results: dict[str, Any] | None, found: Verification) -> None:
    plan = manifest.get("plan") or {}
    _compare(found, "plan file", run_dir, Path(str(plan.get("copy") or "plan.source.yaml")).name,
             plan.get("file_sha256"))
    _compare(found, "plan.resolved.yaml", run_dir, "plan.resolved.yaml", plan.get("resolved_yaml_sha256"))
    plan_id, resolved = plan.get("sha256"), plan.get("resolved")
    if not plan_id or resolved is None:
        found.skipped.append("plan id: not recorded")
    elif canonical_json_sha256(resolved) != plan_id:
        found.mismatches.append("manifest.json: the plan id differs from the canonical JSON of plan.resolved")
    else:
        found.passed.append("plan id matches the resolved plan (canonical JSON)")
    if results is not None and plan_id and (results.get("plan") or {}).get("sha256") not in (None, plan_id):
        found.mismatches.append("results.json: its plan id differs from manifest.json's")


def _models(run_dir: Path, manifest: dict[str, Any], found: Verification) -> None:
    for role, info in sorted((manifest.get("models") or {}).items()):
        copy = (info or {}).get("stored_copy")
        if isinstance(copy, dict) and copy.get("path"):
            _compare(found, f"{role} model copy", run_dir, str(copy["path"]), copy.get("sha256"))
        else:
            found.skipped.append(f"{role} model: no copy kept in the run directory")


def _data(run_dir: Path, manifest: dict[str, Any], results: dict[str, Any] | None, found: Verification) -> None:
    """Load the data again from the resolved plan and compare content hashes; skipped when they cannot be loaded."""
    recorded = ((manifest.get("dataset") or {}).get("provenance") or {}).get("content_sha256")
    in_results = ((results or {}).get("dataset") or {}).get("content_sha256")
    if recorded and in_results and recorded != in_results:
        found.mismatches.append("results.json: the data content hash differs from manifest.json's")
    if not recorded:
        found.skipped.append("data: no content hash recorded")
        return
    try:
        actual = load_content_hash(run_dir, manifest)
    except (HarnessError, OSError, ValueError, KeyError) as exc:
        line = exc.one_line() if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {exc}"
        found.skipped.append(f"data: not reachable, content hash not re-checked ({line})")
        return
    if actual != recorded:
        found.mismatches.append(f"data: content sha256 {actual[:12]}… differs from the recorded {recorded[:12]}…")
    else:
        found.passed.append("data content sha256 matches (data loaded again)")


def load_content_hash(run_dir: Path, manifest: dict[str, Any]) -> str:
    """The content hash of the data the run's resolved plan names, loaded again (relative paths from the plan's
    original folder)."""
    from harness.data.loading import load_dataset
    from harness.plan.schema import load_plan_text
    from harness.registry.contracts import DatasetContext
    from harness.registry.manager import default_registry
    from harness.storage.rundir import default_cache_dir, deid_salt

    source = (manifest.get("plan") or {}).get("source")
    base_dir = Path(str(source)).resolve().parent if source else run_dir
    text = (run_dir / "plan.resolved.yaml").read_text(encoding="utf-8")
    plan = load_plan_text(text, base_dir=base_dir, source=str(run_dir / "plan.resolved.yaml"))
    plugin = default_registry().get("dataset", plan.dataset.plugin)
    cache_dir = default_cache_dir()
    context = DatasetContext(seed=plan.seed, base_dir=plan.base_dir, cache_dir=cache_dir,
                             show_paths=plan.show_paths, sandbox_roots=plan.sandbox_roots)
    bundle = load_dataset(plugin, plan.dataset.params, context, deid_salt(cache_dir))
    return str(bundle.provenance.get("content_sha256"))


def verify_run(run_dir: Path, check_data: bool = True) -> Verification:
    """Every check; HarnessError (one line) when `run_dir` is not a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir}: not a directory")
    if not (run_dir / "manifest.json").exists() and not (run_dir / SUMS_FILE).exists():
        raise HarnessError(f"{run_dir}: not a run directory (no manifest.json and no {SUMS_FILE})")
    found = Verification()
    _sums(run_dir, found)
    manifest = _json(run_dir / "manifest.json", found)
    results = _json(run_dir / "results.json", found)
    if manifest is not None:
        _plan(run_dir, manifest, results, found)
        _models(run_dir, manifest, found)
        if check_data:
            _data(run_dir, manifest, results, found)
        else:
            found.skipped.append("data: not re-checked (--no-data)")
    return found
