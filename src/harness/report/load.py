"""Read a finished (or interrupted) run directory: results, manifest, per-sample CSV and saved examples."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

RESULTS_SCHEMA = "harness.results"
SUPPORTED_SCHEMA_VERSIONS = (1,)


@dataclass
class Examples:
    """One model's saved adversarial examples (see harness.attacks.example_images.save_examples)."""

    role: str
    clean: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    clean_pred: np.ndarray
    clean_conf: np.ndarray
    adv_pred: np.ndarray
    adv_conf: np.ndarray
    sample_ids: list[str]
    attack_id: str
    attack: str
    epsilon: float
    within_bound: np.ndarray | None = None


@dataclass
class RunData:
    """Everything the report reads from a run directory; nothing is recomputed."""

    results: dict[str, Any]
    manifest: dict[str, Any]
    samples: list[dict[str, str]]
    examples: dict[str, Examples]
    plan_yaml: str | None = None
    problems: list[str] = field(default_factory=list)  # files that could not be read (shown as warnings)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise HarnessError(f"cannot build the report: {what} not found at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarnessError(f"cannot build the report: {path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise HarnessError(f"cannot build the report: {path} does not hold a JSON object")
    return data


def load_run(run_dir: Path) -> RunData:
    """Read the run directory; missing or unreadable results/manifest raise HarnessError (one line)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"cannot build the report: run directory {run_dir} does not exist")
    results = _read_json(run_dir / "results.json", "results.json")
    if results.get("schema") != RESULTS_SCHEMA:
        raise HarnessError(f"cannot build the report: {run_dir / 'results.json'} is not a harness results "
                           f"document (schema {results.get('schema')!r})")
    if results.get("schema_version") not in SUPPORTED_SCHEMA_VERSIONS:
        raise HarnessError(f"cannot build the report: {run_dir / 'results.json'} has schema version "
                           f"{results.get('schema_version')!r}; this harness reads "
                           f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}")
    manifest = _read_json(run_dir / "manifest.json", "manifest.json")
    problems: list[str] = []
    samples = _read_samples(run_dir / "samples.csv", problems)
    examples: dict[str, Examples] = {}
    for path in sorted(run_dir.glob("examples_*.npz")):
        try:
            loaded = read_examples(path)
        except (OSError, ValueError, KeyError, EOFError) as exc:
            problems.append(f"{path.name} could not be read ({type(exc).__name__}); no examples shown from it")
            continue
        examples[loaded.role] = loaded
    plan_yaml = _plan_yaml(run_dir / "plan.resolved.yaml", manifest)
    return RunData(results=results, manifest=manifest, samples=samples, examples=examples, plan_yaml=plan_yaml,
                   problems=problems)


def _read_samples(path: Path, problems: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        problems.append("samples.csv is missing: per-image analyses (minimal-epsilon histogram, susceptible "
                        "images) are not shown")
        return []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"samples.csv could not be read ({type(exc).__name__}): per-image analyses are not shown")
        return []


def read_examples(path: Path) -> Examples:
    """Load examples_<role>.npz without pickle."""
    with np.load(path, allow_pickle=False) as data:
        role = str(data["role"]) if "role" in data else path.stem.removeprefix("examples_")
        clean = np.asarray(data["clean"], dtype=np.float32)
        adversarial = np.asarray(data["adversarial"], dtype=np.float32)
        if clean.shape != adversarial.shape or clean.ndim != 4:
            raise ValueError(f"clean {clean.shape} and adversarial {adversarial.shape} must both be N×C×H×W")
        return Examples(
            role=role, clean=clean, adversarial=adversarial, labels=np.asarray(data["labels"]),
            clean_pred=np.asarray(data["clean_pred"]), clean_conf=np.asarray(data["clean_conf"]),
            adv_pred=np.asarray(data["adv_pred"]), adv_conf=np.asarray(data["adv_conf"]),
            sample_ids=[str(s) for s in data["sample_ids"]], attack_id=str(data["attack_id"]),
            attack=str(data["attack"]) if "attack" in data else str(data["attack_id"]),
            epsilon=float(data["epsilon"]),
            within_bound=np.asarray(data["within_bound"], dtype=bool) if "within_bound" in data else None)


def _plan_yaml(path: Path, manifest: dict[str, Any]) -> str | None:
    """The resolved plan as YAML: plan.resolved.yaml (keeps the plan's key order) if it matches the manifest."""
    import yaml

    resolved = manifest.get("plan", {}).get("resolved")
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


def parse_float(text: str | None) -> float | None:
    """A CSV cell as a float ('inf' allowed); blank or malformed → None."""
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value
