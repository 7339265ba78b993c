"""The plan's `corruptions:` section: which natural corruptions run, at which severities, with which parameters.

    corruptions:
      - corruption: ct_noise                 # a corruption plugin (`harness plugins` lists them)
        severities: [1, 2, 3, 4, 5]          # default: all five
      - corruption: ct_nps_noise
        id: ct_nps_sharp                     # needed when one corruption appears twice
        severities: [1, 3, 5]
        kernel: sharp                        # an explicit override of the plugin's other parameters

Each severity sets the plugin's own severity parameter, so that parameter cannot also be given here. Whether a
corruption fits the data set (modality, native units, pixel spacing) is known only once the data are loaded:
see harness.corruptions.fit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import PlanError
from harness.plan.criteria import ANY_CORRUPTION
from harness.plan.metrics import CORRUPTION_SUMMARY
from harness.plan.params import LineLookup, build_dataclass, params_to_dict
from harness.registry.severities import SEVERITY_LEVELS

ENTRY_KEYS = ("corruption", "id", "severities")
ErrorAt = Callable[[str, "str | None"], PlanError]  # (message, key path) → PlanError naming file and line


@dataclass
class CorruptionSpec:
    """One corruption of the plan: its id, plugin, base parameters (the plan's overrides) and severities."""

    id: str
    corruption: str
    params: Any  # the plugin's Params with the plan's overrides; each severity sets the plugin's `parameter`
    severities: list[int]
    key: str  # its path in the plan ('corruptions.0'), for errors found after the data are loaded
    line: int | None = None  # its line in the plan file

    def params_dict(self) -> dict[str, Any]:
        """The base parameters as plain data."""
        return params_to_dict(self.params)


def corruption_specs(raw: Any, registry: Any, error: ErrorAt, lines: LineLookup,
                     id_pattern: re.Pattern[str]) -> list[CorruptionSpec]:
    """Validate the `corruptions` list: known plugins, unique ids, severities in 1-5, valid parameters."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise error("expected a list of corruptions, each {corruption: NAME, severities: [1, ...]}", "corruptions")
    specs: list[CorruptionSpec] = []
    for i, item in enumerate(raw):
        key = f"corruptions.{i}"
        if not isinstance(item, dict) or "corruption" not in item:
            raise error("each entry needs a 'corruption' key naming a corruption plugin", key)
        name = item["corruption"]
        if not isinstance(name, str) or not registry.has("corruption", name):
            known = ", ".join(registry.names("corruption")) or "none installed"
            raise error(f"unknown corruption {name!r} (available: {known})", f"{key}.corruption")
        plugin = registry.get("corruption", name)
        corruption_id = item.get("id", name)
        if not isinstance(corruption_id, str) or not id_pattern.match(corruption_id) \
                or corruption_id == ANY_CORRUPTION:
            raise error(f"corruption id {corruption_id!r} must be letters, digits, '_', '-' or '.' (and not "
                        f"'{ANY_CORRUPTION}')", f"{key}.id")
        if corruption_id in {spec.id for spec in specs}:
            raise error(f"corruption id {corruption_id!r} is used twice; give one an 'id'", f"{key}.id")
        if plugin.parameter in item:
            values = ", ".join(f"{s.level}: {s.value:g}" for s in plugin.severities)
            raise error(f"'{plugin.parameter}' is what the severities of {name} set ({values}, in {plugin.unit}); "
                        "choose severities instead", f"{key}.{plugin.parameter}")
        severities = _severities(item.get("severities", list(SEVERITY_LEVELS)), f"{key}.severities", error)
        params = build_dataclass(plugin.Params, item, key, lines, ignore=ENTRY_KEYS)
        for level in severities:
            try:
                plugin.params_for(level, params)
            except PlanError as exc:
                raise error(f"{name} at severity {level}: {exc.detail}", exc.key or key) from None
        specs.append(CorruptionSpec(corruption_id, name, params, severities, key, lines(key)))
    return specs


def _severities(raw: Any, key: str, error: ErrorAt) -> list[int]:
    levels = ", ".join(map(str, SEVERITY_LEVELS))
    if not isinstance(raw, list) or not raw:
        raise error(f"expected a non-empty list of severities from {levels}", key)
    for i, level in enumerate(raw):
        if isinstance(level, bool) or not isinstance(level, int) or level not in SEVERITY_LEVELS:
            raise error(f"severity {level!r} is not one of {levels}", f"{key}.{i}")
    if len(set(raw)) != len(raw):
        raise error("severities must not repeat", key)
    return sorted(raw)


def criterion_corruption(metric: Any, item: dict[str, Any], specs: list[CorruptionSpec], key: str,
                         error: ErrorAt) -> tuple[str | None, int | None]:
    """The corruption id (or 'any') and severity a criterion names, checked against the metric and the plan."""
    corruption, severity = item.get("corruption"), item.get("severity")
    by_id = {spec.id: spec for spec in specs}
    if metric.scope is CORRUPTION_SUMMARY and not specs:
        raise error(f"metric {metric.name} needs corruptions in the plan (a 'corruptions' section)", f"{key}.metric")
    if not metric.needs_corruption:
        for name, value in (("corruption", corruption), ("severity", severity)):
            if value is not None:
                raise error(f"metric {metric.name} takes no {name}", f"{key}.{name}")
        return None, None
    if corruption != ANY_CORRUPTION and (not isinstance(corruption, str) or corruption not in by_id):
        raise error(f"metric {metric.name} needs 'corruption' naming one of the plan's corruptions "
                    f"({', '.join(by_id) or 'none'}) or '{ANY_CORRUPTION}', got {corruption!r}",
                    f"{key}.corruption")
    if not metric.needs_severity:
        if severity is not None:
            raise error(f"metric {metric.name} takes no severity (it summarises every severity run)",
                        f"{key}.severity")
        return corruption, None
    if isinstance(severity, bool) or not isinstance(severity, int):
        raise error(f"metric {metric.name} needs a 'severity' (one of {', '.join(map(str, SEVERITY_LEVELS))})",
                    f"{key}.severity")
    running = [spec.id for spec in specs if severity in spec.severities]
    if corruption == ANY_CORRUPTION and not running:
        raise error(f"no corruption of the plan runs at severity {severity}", f"{key}.severity")
    if corruption != ANY_CORRUPTION and severity not in by_id[corruption].severities:
        raise error(f"corruption {corruption!r} does not run at severity {severity} (its severities: "
                    f"{', '.join(map(str, by_id[corruption].severities))})", f"{key}.severity")
    return corruption, severity
