"""The pluggy plugin manager and the registry of named datasets, models, attacks, defences and corruptions."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from harness.errors import PlanError, PluginContractError
from harness.registry import hookspecs
from harness.registry.contracts import (
    Architecture,
    AttackPlugin,
    CorruptionPlugin,
    DatasetPlugin,
    DefencePlugin,
    ModelPlugin,
)
from harness.registry.validation import contract_problems, severity_problems

ENTRY_POINT_GROUP = "harness"


@dataclass(frozen=True)
class Kind:
    """One kind of plugin: the hook that registers it, the Protocol every object of the kind must meet, and the
    kind's own rules beyond the Protocol (each returns the problems of one object)."""

    hook: str
    protocol: type
    rules: tuple[Callable[[Any], list[str]], ...] = ()


KINDS = {
    "dataset": Kind("harness_register_datasets", DatasetPlugin),
    "architecture": Kind("harness_register_architectures", Architecture),
    "model": Kind("harness_register_models", ModelPlugin),
    "attack": Kind("harness_register_attacks", AttackPlugin),
    "defence": Kind("harness_register_defences", DefencePlugin),
    "corruption": Kind("harness_register_corruptions", CorruptionPlugin, (severity_problems,)),
}


@dataclass(frozen=True)
class Registered:
    """One named plugin object with where it came from."""

    name: str
    kind: str
    obj: Any
    provider: str  # distribution (package) name, or the module name when not from a distribution
    version: str
    module: str
    description: str


def make_plugin_manager(load_entry_points: bool = True, extra: Iterable[Any] = ()) -> pluggy.PluginManager:
    """A plugin manager with the hook specs, the entry-point plugins and any extra plugin objects."""
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    if load_entry_points and not os.environ.get("HARNESS_NO_ENTRY_POINTS"):
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra:
        pm.register(plugin)
    refuse_unknown_hooks(pm)
    return pm


def refuse_unknown_hooks(pm: pluggy.PluginManager) -> None:
    """PluginContractError, one line naming the plugin and the hook, when a plugin implements a hook the harness
    does not define (a misspelt `harness_register_atacks` would otherwise register nothing, silently)."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
        dist = dists.get(id(exc.plugin))
        where = f"{pm.get_name(exc.plugin)}" + (f" ({dist.project_name} {dist.version})" if dist else "")
        unknown = sorted(name for name, caller in pm.hook.__dict__.items()
                         if isinstance(caller, pluggy.HookCaller) and not caller.has_spec()
                         and any(impl.plugin is exc.plugin for impl in caller.get_hookimpls()))
        known = ", ".join(sorted(name for name in dir(hookspecs) if name.startswith("harness_")))
        raise PluginContractError(f"plugin module {where}: unknown hook {', '.join(unknown) or '?'} (the harness "
                                  f"hooks are: {known}; see docs/plugins.md)") from None


class Registry:
    """Every plugin object by kind and name, built by calling the register hooks."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
        self._items: dict[str, dict[str, Registered]] = {kind: {} for kind in KINDS}
        for kind, spec in KINDS.items():
            hook = getattr(pm.hook, spec.hook)
            for impl in hook.get_hookimpls():
                dist = dists.get(id(impl.plugin))
                provider = dist.project_name if dist else getattr(impl.plugin, "__name__", repr(impl.plugin))
                version = dist.version if dist else "-"
                module = getattr(impl.plugin, "__name__", impl.plugin_name)
                for obj in impl.function() or []:
                    _check_contract(kind, spec, obj, f"{module} ({provider} {version})")
                    name = obj.name
                    if name in self._items[kind]:
                        other = self._items[kind][name]
                        raise PlanError(f"two {kind} plugins are named '{name}': {other.module} and "
                                        f"{impl.plugin_name}")
                    self._items[kind][name] = Registered(
                        name=name, kind=kind, obj=obj, provider=provider, version=version, module=module,
                        description=obj.description.strip())

    def names(self, kind: str) -> list[str]:
        """Sorted names of every plugin of one kind."""
        return sorted(self._items[kind])

    def get(self, kind: str, name: str) -> Any:
        """The plugin object of `kind` called `name`, or KeyError."""
        return self._items[kind][name].obj

    def entry(self, kind: str, name: str) -> Registered:
        """The registry entry (with provider and version) of one plugin."""
        return self._items[kind][name]

    def has(self, kind: str, name: str) -> bool:
        """Whether a plugin of this kind and name is registered."""
        return name in self._items[kind]

    def all(self) -> list[Registered]:
        """Every registered plugin object, by kind then name."""
        return [self._items[k][n] for k in KINDS for n in sorted(self._items[k])]

    def of_kind(self, kind: str) -> dict[str, Any]:
        """Name → plugin object for one kind."""
        return {name: reg.obj for name, reg in self._items[kind].items()}


def _check_contract(kind: str, spec: Kind, obj: Any, source: str) -> None:
    """Refuse an object that breaks its kind's contract, naming where it came from and what it lacks."""
    protocol = spec.protocol
    problems = contract_problems(obj, protocol)
    if not problems:
        problems = [problem for rule in spec.rules for problem in rule(obj)]
    if problems:
        label = getattr(obj, "name", None)
        what = f"{kind} plugin {label!r}" if isinstance(label, str) else f"a {kind} plugin ({type(obj).__name__})"
        raise PluginContractError(f"plugin module {source}: {what} breaks the {kind} contract "
                                  f"({protocol.__name__}): {'; '.join(problems)} (see docs/plugins.md)")


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry of every installed plugin (entry-point group 'harness'), built once per process."""
    return Registry(make_plugin_manager())
