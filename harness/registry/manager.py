"""The pluggy plugin manager and the registry of named datasets, models, attacks, defences and corruptions."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
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
from harness.registry.validation import contract_problems

ENTRY_POINT_GROUP = "harness"


@dataclass(frozen=True)
class Kind:
    """One kind of plugin: the hook that registers it and the Protocol every object of the kind must meet."""

    hook: str
    protocol: type


KINDS = {
    "dataset": Kind("harness_register_datasets", DatasetPlugin),
    "architecture": Kind("harness_register_architectures", Architecture),
    "model": Kind("harness_register_models", ModelPlugin),
    "attack": Kind("harness_register_attacks", AttackPlugin),
    "defence": Kind("harness_register_defences", DefencePlugin),
    "corruption": Kind("harness_register_corruptions", CorruptionPlugin),
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
    return pm


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
                    _check_contract(kind, spec.protocol, obj, f"{module} ({provider} {version})")
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


def _check_contract(kind: str, protocol: type, obj: Any, source: str) -> None:
    """Refuse an object that breaks its kind's contract, naming where it came from and what it lacks."""
    problems = contract_problems(obj, protocol)
    if problems:
        label = getattr(obj, "name", None)
        what = f"{kind} plugin {label!r}" if isinstance(label, str) else f"a {kind} plugin ({type(obj).__name__})"
        raise PluginContractError(f"plugin module {source}: {what} breaks the {kind} contract "
                                  f"({protocol.__name__}): {'; '.join(problems)} (see docs/plugins.md)")


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry of every installed plugin (entry-point group 'harness'), built once per process."""
    return Registry(make_plugin_manager())
