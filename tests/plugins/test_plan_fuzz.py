"""Fuzzing the plan loader: any plan, override or YAML text validates or gives a one-line PlanError, never a crash."""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_plugins import fake_registry
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support import PLANS, REAL_PLANS, REPO

from harness.cli.main import main
from harness.errors import PlanError
from harness.plan.schema import Plan, load_plan_text
from harness.registry.manager import default_registry

TINY = PLANS / "tiny_phantom.yaml"
# Shrinking a failure to a minimal input can take minutes on a loaded machine: opt in with HARNESS_FUZZ_SHRINK=1.
SHRINK = [Phase.shrink] if os.environ.get("HARNESS_FUZZ_SHRINK") else []
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, *SHRINK]
FUZZ = settings(deadline=None, database=None, max_examples=200, report_multiple_bugs=False, phases=PHASES,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much, HealthCheck.data_too_large])

# A valid plan for the fake plugins (tests/fake_plugins.py), as data.
BASE: dict[str, Any] = {
    "harness": 1, "name": "fuzz_plan", "description": "fuzzed", "seed": 3, "device": "cpu", "batch_size": 16,
    "dataset": {"plugin": "toy", "n": 30, "size": 8},
    "model": {"plugin": "mean_threshold", "threshold": 0.5},
    "epsilons": [0.01, 0.004],
    "attacks": [{"attack": "shift", "steps": 2}, {"attack": "shift", "id": "shift_big", "epsilons": [0.2]}],
    "acceptance": [{"metric": "clean_accuracy", "min": 0.8},
                   {"metric": "robust_accuracy", "attack": "shift", "epsilon": 0.004, "min": 0.6,
                    "description": "robust at 0.004"}],
    "report": {"n_examples": 2},
}
KNOWN_KEYS = sorted({"harness", "name", "description", "intended_use", "seed", "device", "batch_size", "epsilons",
                     "dataset", "model", "attacks", "defence", "acceptance", "report", "engine", "plugin", "attack",
                     "id", "metric", "min", "max", "epsilon", "n", "size", "steps", "threshold", "architecture",
                     "epochs", "n_patients", "restarts", "rel_stepsize", "random_start", "window", "path"})
INTERESTING = ["toy", "mean_threshold", "shift", "fgsm", "pgd_linf", "train", "small_cnn", "phantom_ct", "naive",
               "hardened", "change", "clean_accuracy", "robust_accuracy", "median_min_epsilon", "auto", "cpu",
               "cuda:1", "${HOME}", "${HARNESS_FUZZ_SURELY_UNSET}", "${HARNESS_FUZZ_SURELY_UNSET:-fallback}", "$",
               "${", "1e400", ".nan", "", " ", "a\nb", "\u202e", "日本語", "²", "../x", 0.004, 0.01, 0.03, 0.2, 1,
               0, -1, 1e-300, 1e308, 2**63, -(2**63) - 1]
KEYS = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8), st.integers(-2, 3), st.none(), st.booleans())
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**200), max_value=2**200),
                    st.floats(), st.text(max_size=24), st.sampled_from(INTERESTING))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                      max_leaves=8)


# ------------------------------------------------------------------------------------------------ helpers


@functools.lru_cache(maxsize=1)
def fake() -> Any:
    """The fake registry, built once (building a plugin manager per example would dominate the run time)."""
    return fake_registry()


def node_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and indices) into a nested mapping, the root included."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += node_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += node_paths(value, (*prefix, i))
    return out


def at(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


def mutate(data: st.DataObject, plan: dict[str, Any]) -> dict[str, Any]:
    """Apply 1-4 random edits (replace, delete, insert, rename) at random key paths of a copy of `plan`."""
    plan = yaml.safe_load(yaml.safe_dump(plan))  # a deep copy
    for _ in range(data.draw(st.integers(1, 4), label="n_edits")):
        path = data.draw(st.sampled_from(node_paths(plan)), label="path")
        op = data.draw(st.sampled_from(["replace", "delete", "insert", "rename"]), label="op")
        target = at(plan, path)
        if op == "insert" and isinstance(target, dict):
            target[data.draw(KEYS, label="new key")] = data.draw(VALUES, label="value")
        elif op == "insert" and isinstance(target, list):
            target.insert(data.draw(st.integers(0, len(target)), label="index"), data.draw(VALUES, label="value"))
        elif not path:
            continue  # the root itself is only edited inside
        elif op == "delete":
            del at(plan, path[:-1])[path[-1]]
        elif op == "rename" and isinstance(at(plan, path[:-1]), dict):
            parent = at(plan, path[:-1])
            parent[data.draw(KEYS, label="renamed to")] = parent.pop(path[-1])
        else:
            at(plan, path[:-1])[path[-1]] = data.draw(VALUES, label="value")
    return plan


def dump(plan: Any) -> str:
    return yaml.safe_dump(plan, allow_unicode=True, sort_keys=False)


def validates_or_plan_error(text: str, overrides: list[str] | None = None, registry: Any = None) -> Plan | None:
    """The property: a Plan (whose hash and params can be taken) or a one-line PlanError; anything else fails."""
    try:
        plan = load_plan_text(text, overrides, registry=registry or fake(), source="fuzz.yaml")
    except PlanError as exc:
        line = exc.one_line()
        assert line.strip() and "\n" not in line and "\r" not in line, repr(line)
        return None
    assert len(plan.sha256) == 64
    for spec in plan.attacks:
        spec.params_dict()
        assert spec.epsilons and all(0 < e <= 1 for e in spec.epsilons)
    return plan


def override_strategy(plan: dict[str, Any]) -> st.SearchStrategy[str]:
    """'key.path=value' over the plan's own paths (list items by index or id) with random values, or random text."""
    dotted = [".".join(str(p) for p in path) for path in node_paths(plan) if path]
    path = st.one_of(st.sampled_from(dotted), st.sampled_from(["attacks.shift.steps", "attacks.shift_big.epsilons",
                                                               "dataset.n", "acceptance.0.min", "new.key.path"]),
                     st.text(max_size=12))
    tricky = ["!!float abc", "!!int x", "!!timestamp x", "!!binary x", "&x [*x]", "[", "{a: 1}", "[0.004, .nan]", "~",
              "", "${HOME}"]
    value = st.one_of(st.text(max_size=12), SCALARS.map(lambda v: yaml.safe_dump(v).removesuffix("\n...\n").strip()),
                      st.sampled_from(tricky))
    return st.one_of(st.tuples(path, value).map("=".join), st.text(max_size=20))


# ------------------------------------------------------------------------------------------------ properties


def test_the_base_plans_are_valid():
    assert validates_or_plan_error(dump(BASE)) is not None
    assert main(["validate", str(TINY)]) == 0


@FUZZ
@given(data=st.data())
def test_mutated_plans_validate_or_give_one_line_plan_error(data):
    validates_or_plan_error(dump(mutate(data, BASE)))


@FUZZ
@given(data=st.data())
def test_overrides_validate_or_give_one_line_plan_error(data):
    plan = mutate(data, BASE) if data.draw(st.booleans(), label="mutate too") else BASE
    overrides = data.draw(st.lists(override_strategy(plan), min_size=1, max_size=3), label="overrides")
    validates_or_plan_error(dump(plan), overrides)


def _edit_text(data: st.DataObject, text: str) -> str:
    """Character-level edits of YAML text: cut, insert random text, duplicate or swap lines."""
    for _ in range(data.draw(st.integers(1, 3), label="n_text_edits")):
        op = data.draw(st.sampled_from(["cut", "insert", "duplicate", "swap"]), label="text op")
        lines = text.split("\n")
        if op == "cut" and text:
            start = data.draw(st.integers(0, len(text) - 1), label="cut start")
            text = text[:start] + text[start + data.draw(st.integers(1, 40), label="cut length"):]
        elif op == "insert":
            where = data.draw(st.integers(0, len(text)), label="insert at")
            snippet = data.draw(st.one_of(st.text(max_size=12), st.sampled_from(
                [": ", "- ", "\n  ", "&a ", "*a", "!!float x", "!!int x", "!!timestamp x", "!!binary x", "? ",
                 "{", "[", "'", '"', "#", "\t", "\x00", "%YAML 1.1\n---\n", "---\n", "<<: *a\n"])), label="snippet")
            text = text[:where] + snippet + text[where:]
        elif op == "duplicate":
            i = data.draw(st.integers(0, len(lines) - 1), label="line")
            text = "\n".join(lines[: i + 1] + lines[i:])
        elif op == "swap" and len(lines) > 1:
            i = data.draw(st.integers(0, len(lines) - 2), label="line")
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
            text = "\n".join(lines)
    return text


@FUZZ
@given(data=st.data())
def test_random_and_edited_yaml_text_validates_or_gives_one_line_plan_error(data):
    if data.draw(st.booleans(), label="random text"):
        text = data.draw(st.text(max_size=200), label="text")
    else:
        text = _edit_text(data, dump(BASE))
    validates_or_plan_error(text)


# ------------------------------------------------------------------------------------------------ real plugins

REAL_BASES = [TINY, REPO / "specs" / "ct_nodule_hardened.yaml", REAL_PLANS / "dicom_samples.yaml",
              REAL_PLANS / "mammo_cbis_mass_roi.yaml", REAL_PLANS / "lidc_npz.yaml"]


@pytest.fixture
def real_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables the real plans expand (validation never opens the data)."""
    monkeypatch.setenv("HARNESS_SHARED_DATASETS", "/nonexistent/datasets")
    monkeypatch.setenv("HARNESS_DICOM_MANIFEST", "/nonexistent/manifest.csv")
    monkeypatch.delenv("HARNESS_FUZZ_SURELY_UNSET", raising=False)


@functools.cache
def real_base(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_real_base_plans_are_valid(real_env):
    for path in REAL_BASES:
        assert validates_or_plan_error(dump(real_base(path)), registry=default_registry()) is not None, path


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_mutated_real_plans_validate_or_give_one_line_plan_error(real_env, data):
    base = real_base(data.draw(st.sampled_from(REAL_BASES), label="base"))
    overrides = data.draw(st.lists(override_strategy(base), max_size=1), label="overrides")
    validates_or_plan_error(dump(mutate(data, base)), overrides, registry=default_registry())


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_cli_validate_exits_0_or_2_with_one_line(real_env, data):
    base = real_base(data.draw(st.sampled_from(REAL_BASES), label="base"))
    plan = mutate(data, base)
    overrides = data.draw(st.lists(override_strategy(base), max_size=1), label="overrides")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plan.yaml"
        path.write_text(dump(plan), encoding="utf-8")
        args = ["validate", str(path)] + [arg for o in overrides for arg in ("--set", o)]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
    stderr = err.getvalue()
    assert code in (0, 2), stderr
    assert "Traceback" not in stderr + out.getvalue()
    if code == 2:
        lines = stderr.strip().split("\n")
        assert len(lines) == 1 and lines[0].startswith("harness: error: "), stderr


# ------------------------------------------------------------------------------------------------ found by fuzzing

VALID_TEXT = dump(BASE)
# Minimal inputs the fuzzers found that crash the loader (each should be a one-line PlanError).
FOUND = {
    "recursive YAML alias": (VALID_TEXT + "intended_use: &x [*x]\n", []),
    "recursive YAML alias in a mapping": (VALID_TEXT + "defence: &y {a: *y}\n", []),
    "!!float tag on a non-number": (VALID_TEXT.replace("seed: 3", "seed: !!float abc"), []),
    "!!int tag on a non-number": (VALID_TEXT.replace("seed: 3", "seed: !!int abc"), []),
    "!!timestamp tag on a non-date": (VALID_TEXT.replace("seed: 3", "seed: !!timestamp abc"), []),
    "unhashable metric": (VALID_TEXT.replace("- metric: clean_accuracy", "- metric: [clean_accuracy]"), []),
    "unhashable criterion attack": (VALID_TEXT.replace("attack: shift\n  epsilon", "attack: {a: 1}\n  epsilon"), []),
    "override with a non-ASCII digit list index": (VALID_TEXT, ["attacks.²=1"]),
    "override value with a bad !!float tag": (VALID_TEXT, ["seed=!!float abc"]),
    "override value with a bad !!timestamp tag": (VALID_TEXT, ["seed=!!timestamp x"]),
}


@pytest.mark.parametrize("name", list(FOUND))
def test_inputs_found_by_fuzzing_give_plan_errors(name):
    text, overrides = FOUND[name]
    assert text != VALID_TEXT or overrides, "the replacement did not apply"
    with pytest.raises(PlanError) as info:
        load_plan_text(text, overrides, registry=fake(), source="fuzz.yaml")
    assert "\n" not in info.value.one_line()


# Plans that validate but cannot run: `harness: true` reads as schema 1 (True == 1), and a seed outside
# torch.manual_seed's range passes validation, then the run stops with an internal error (exit 3).
GAPS = {
    "harness: true": VALID_TEXT.replace("harness: 1", "harness: true"),
    "seed ≥ 2**64": VALID_TEXT.replace("seed: 3", f"seed: {2**64}"),
    "seed < -2**63": VALID_TEXT.replace("seed: 3", f"seed: {-(2**63) - 1}"),
}


@pytest.mark.parametrize("name", list(GAPS))
def test_plans_that_cannot_run_are_refused_at_validation(name):
    assert GAPS[name] != VALID_TEXT
    with pytest.raises(PlanError):
        load_plan_text(GAPS[name], registry=fake(), source="fuzz.yaml")


def test_nan_and_inf_numbers_never_crash_validation():
    for value in (math.nan, math.inf, -math.inf):
        for key in ("seed", "batch_size"):
            validates_or_plan_error(dump({**BASE, key: value}))
        validates_or_plan_error(dump({**BASE, "epsilons": [value]}))
        validates_or_plan_error(dump({**BASE, "acceptance": [{"metric": "clean_accuracy", "min": value}]}))
