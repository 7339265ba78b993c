"""The hook contract: every hookspec documented in docs/plugins.md (as datasette checks its own), typed with its
kind's Protocol, unknown hook implementations refused in one line, and the corruption kind's five-severity rule
enforced by the core."""

from __future__ import annotations

import inspect
import re
import types
import typing

import pytest
from fake_plugins import Darken
from support import REPO

import harness
from harness.errors import PluginContractError
from harness.registry import hookspecs
from harness.registry.contracts import Severity
from harness.registry.hookspecs import hookimpl
from harness.registry.manager import KINDS, Registry, make_plugin_manager

PLUGINS_DOC = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("harness_"))


def test_there_are_hooks_to_check():
    assert len(HOOKS) >= 9 and {kind.hook for kind in KINDS.values()} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_is_documented_in_the_plugin_guide(hook):
    """docs/plugins.md's hook table names each hook with its arguments, in order; its docstring says what it
    returns or what each argument is."""
    spec = getattr(hookspecs, hook)
    arguments = ", ".join(inspect.signature(spec).parameters)
    assert f"`{hook}({arguments})`" in PLUGINS_DOC
    doc = inspect.getdoc(spec) or ""
    assert doc and (":return:" in doc or all(f":param {a}:" in doc for a in inspect.signature(spec).parameters))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_register_hook_is_typed_with_its_kinds_protocol(kind):
    spec = KINDS[kind]
    returned = typing.get_type_hints(getattr(hookspecs, spec.hook))["return"]
    assert typing.get_origin(returned) is list and typing.get_args(returned) == (spec.protocol,)


def test_a_misspelt_hook_is_refused_in_one_line_naming_the_module():
    module = types.ModuleType("my_plugins")

    @hookimpl
    def harness_register_atacks() -> list:
        return []

    module.harness_register_atacks = harness_register_atacks
    with pytest.raises(PluginContractError) as caught:
        make_plugin_manager(load_entry_points=False, extra=[module])
    line = caught.value.one_line()
    assert line.startswith("plugin module my_plugins: unknown hook harness_register_atacks (the harness hooks are: ")
    assert "harness_register_attacks" in line and "\n" not in line


def corruption_module(severities: tuple[Severity, ...], parameter: str = "amount") -> types.ModuleType:
    """A plugin module registering one Darken corruption with the given severity table."""
    bad = type("BadDarken", (Darken,), {"name": "bad_darken", "severities": severities, "parameter": parameter})
    module = types.ModuleType("bad_corruptions")

    @hookimpl
    def harness_register_corruptions() -> list:
        return [bad()]

    module.harness_register_corruptions = harness_register_corruptions
    return module


@pytest.mark.parametrize(("values", "levels", "parameter", "problem"), [
    ((0.1, 0.2, 0.3, 0.4), (1, 2, 3, 4), "amount", "severities must have levels (1, 2, 3, 4, 5), got (1, 2, 3, 4)"),
    ((0.1, 0.2, 0.3, 0.4, 0.5), (1, 2, 3, 5, 4), "amount", "severities must have levels (1, 2, 3, 4, 5)"),
    ((0.1, 0.2, 0.2, 0.4, 0.5), (1, 2, 3, 4, 5), "amount", "severity values must be strictly monotone"),
    ((0.1, 0.2, 0.3, 0.4, 0.5), (1, 2, 3, 4, 5), "nope", "parameter 'nope' is not a field of DarkenParams"),
])
def test_the_core_refuses_a_corruption_that_breaks_the_five_severity_rule(values, levels, parameter, problem):
    severities = tuple(Severity(level, f"s{level}", value) for level, value in zip(levels, values, strict=True))
    with pytest.raises(PluginContractError) as caught:
        Registry(make_plugin_manager(load_entry_points=False, extra=[corruption_module(severities, parameter)]))
    line = caught.value.one_line()
    assert re.match(r"plugin module bad_corruptions \(.*\): corruption plugin 'bad_darken' breaks the corruption "
                    r"contract \(CorruptionPlugin\): ", line), line
    assert problem in line and "\n" not in line


def test_a_corruption_with_five_good_severities_registers():
    good = tuple(Severity(level, f"s{level}", 0.1 * level) for level in range(1, 6))
    registry = Registry(make_plugin_manager(load_entry_points=False, extra=[corruption_module(good)]))
    assert registry.names("corruption") == ["bad_darken"]


def test_the_corruption_types_are_public():
    for name in ("CorruptionPlugin", "CorruptionContext", "Severity", "SEVERITY_LEVELS"):
        assert name in harness.__all__ and getattr(harness, name) is not None
    assert harness.contract_problems(Darken(), harness.CorruptionPlugin) == []


def test_run_end_observers_get_the_typed_run_results_with_its_json_form(tmp_path):
    import fake_plugins
    from test_plan import VALID

    from harness.plan.schema import load_plan_text
    from harness.run.runner import RunConfig, Runner

    seen = {}
    observer = types.ModuleType("observer")

    @hookimpl
    def harness_run_end(plan, run_dir, results):
        seen.update(plan=plan, run_dir=run_dir, results=results)

    observer.harness_run_end = harness_run_end
    registry = Registry(make_plugin_manager(load_entry_points=False, extra=[fake_plugins, observer]))
    plan = load_plan_text(VALID, registry=registry)
    result = Runner(plan, registry, RunConfig(out_root=tmp_path, progress=False, echo=lambda m: None)).run()
    delivered = seen["results"]
    assert isinstance(delivered, harness.RunResults) and delivered.run_dir == result.run_dir
    assert delivered.verdict == result.verdict and delivered.record.plan.seed == plan.seed
    assert delivered.raw == result.raw and delivered.raw["status"] in ("passed", "failed")
