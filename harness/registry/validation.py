"""Registration-time checks: every plugin object must meet its kind's Protocol, or the registry refuses it.

Like Foolbox's attack base classes, this makes a plugin that breaks the contract fail early, with one line that
names the provider and what is missing, instead of an AttributeError deep inside a run.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any, Literal

from harness.registry.severities import SEVERITY_LEVELS

_PROTOCOL_BASES = {"Protocol", "Generic", "object"}


def protocol_members(protocol: type) -> tuple[dict[str, Any], dict[str, Callable[..., Any]]]:
    """(attribute name → annotation, method name → function) that a Protocol declares, bases included."""
    attributes: dict[str, Any] = {}
    methods: dict[str, Callable[..., Any]] = {}
    for cls in reversed(protocol.__mro__):
        if cls.__name__ in _PROTOCOL_BASES:
            continue
        hints = typing.get_type_hints(cls, include_extras=False) if "__annotations__" in cls.__dict__ else {}
        attributes.update({name: hint for name, hint in hints.items() if not name.startswith("_")})
        methods.update({name: value for name, value in cls.__dict__.items()
                        if callable(value) and not name.startswith("_") and name not in hints})
    return attributes, methods


def contract_problems(obj: Any, protocol: type) -> list[str]:
    """What `obj` lacks to meet `protocol` (empty when it meets it), one short phrase per problem."""
    attributes, methods = protocol_members(protocol)
    problems = []
    for name, annotation in attributes.items():
        if not hasattr(obj, name):
            problems.append(f"no attribute '{name}'")
            continue
        problem = _value_problem(name, getattr(obj, name), annotation)
        if problem:
            problems.append(problem)
    for name, declared in methods.items():
        member = getattr(obj, name, None)
        if member is None or not callable(member):
            problems.append(f"no method '{name}()'")
            continue
        problem = _signature_problem(name, member, declared)
        if problem:
            problems.append(problem)
    return problems


def _value_problem(name: str, value: Any, annotation: Any) -> str | None:
    """Why `value` does not fit `annotation` (simple annotations only: str, bool, numbers, Literal, type)."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        allowed = typing.get_args(annotation)
        return None if value in allowed else f"'{name}' must be one of {', '.join(map(repr, allowed))}, got {value!r}"
    if annotation is str:
        return None if isinstance(value, str) and value.strip() else f"'{name}' must be a non-empty string"
    if annotation is bool:
        return None if isinstance(value, bool) else f"'{name}' must be true or false, got {value!r}"
    if annotation in (int, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"'{name}' must be a number, got {value!r}"
    if annotation is type:
        if not isinstance(value, type):
            return f"'{name}' must be a class, got {value!r}"
        if name == "Params" and not dataclasses.is_dataclass(value):
            return "'Params' must be a dataclass (its fields are the plan's keys)"
    return None


def _signature_problem(name: str, member: Callable[..., Any], declared: Callable[..., Any]) -> str | None:
    """Why `member` cannot be called the way the contract calls `declared` (positionally, same count)."""
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    expected = [p for p in inspect.signature(declared).parameters.values()
                if p.name != "self" and p.kind in positional and p.default is inspect.Parameter.empty]
    try:
        inspect.signature(member).bind(*([None] * len(expected)))
    except TypeError:
        names = ", ".join(p.name for p in expected)
        return f"'{name}()' must accept ({names})"
    except ValueError:  # no signature available (a builtin): trust it
        return None
    return None


def severity_problems(obj: Any) -> list[str]:
    """What breaks the corruption contract's five-severity rule (empty when none): exactly five severities with
    levels 1..5 in order, strictly monotone values (increasing harm), and a `parameter` that names a field of
    `Params`. The registry applies it to every corruption plugin; the built-ins' base class also at definition."""
    severities = getattr(obj, "severities", None)
    try:
        levels = [s.level for s in severities]  # type: ignore[union-attr]
        values = [float(s.value) for s in severities]  # type: ignore[union-attr]
    except (TypeError, AttributeError, ValueError):
        return ["'severities' must be five Severity(level, name, value) entries"]
    problems = []
    if tuple(levels) != SEVERITY_LEVELS:
        problems.append(f"severities must have levels {SEVERITY_LEVELS}, got {tuple(levels)}")
    steps = [b - a for a, b in zip(values, values[1:], strict=False)]
    if len(values) < 2 or not (all(d > 0 for d in steps) or all(d < 0 for d in steps)):
        problems.append("severity values must be strictly monotone (increasing harm from level 1 to 5)")
    params, parameter = getattr(obj, "Params", None), getattr(obj, "parameter", None)
    if dataclasses.is_dataclass(params) and isinstance(parameter, str) \
            and parameter not in {f.name for f in dataclasses.fields(params)}:
        problems.append(f"parameter '{parameter}' is not a field of {params.__name__}")
    return problems
