"""Validate a plan mapping against a plugin's Params dataclass, naming the key path on error."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union

from harness.errors import PlanError

LineLookup = Callable[[str], "int | None"]


def _no_line(_: str) -> None:
    return None


def describe_type(tp: Any) -> str:
    """A short human name for a type annotation."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list of {describe_type(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str, lines: LineLookup = _no_line) -> Any:
    """Check `value` against annotation `tp` (int, float, bool, str, Literal, list, Optional, dataclass)."""

    def fail(message: str) -> PlanError:
        return PlanError(message, key=key, line=lines(key))

    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key, lines)
            except PlanError as exc:
                errors.append(exc)
        deeper = [e for e in errors if e.key and e.key != key]
        if deeper:  # the value had the right shape for one option but a nested value was wrong: say which
            raise deeper[0]
        raise fail(f"expected {describe_type(tp)}, got {_show(value)}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise fail(f"must be one of {', '.join(repr(a) for a in allowed)}, got {_show(value)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise fail(f"expected a list, got {_show(value)}")
        (item_tp,) = typing.get_args(tp)[:1] or (Any,)
        items = [coerce(v, item_tp, f"{key}.{i}", lines) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise fail(f"expected a mapping, got {_show(value)}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise fail(f"expected a mapping, got {_show(value)}")
        return build_dataclass(tp, value, key, lines)
    if tp is bool:
        if not isinstance(value, bool):
            raise fail(f"expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(f"expected a number, got {_show(value)}")
        if value != value or value in (float("inf"), float("-inf")):
            raise fail(f"expected a finite number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail(f"expected a string, got {_show(value)}")
        return value
    raise fail(f"unsupported parameter type {tp!r}")


def build_dataclass(cls: type, mapping: dict, key: str = "", lines: LineLookup = _no_line,
                    ignore: tuple[str, ...] = ()) -> Any:
    """Build dataclass `cls` from `mapping`; unknown keys, missing keys and bad types are PlanErrors."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{key}." if key else ""
    for name in mapping:
        if name in ignore:
            continue
        if name not in fields:
            allowed = ", ".join(sorted(fields)) or "none"
            raise PlanError(f"unknown key '{name}' (allowed: {allowed})", key=f"{prefix}{name}",
                            line=lines(f"{prefix}{name}"))
    kwargs = {}
    for name, f in fields.items():
        path = f"{prefix}{name}"
        if name in mapping:
            value = coerce(mapping[name], hints[name], path, lines)
            _check_bounds(value, f.metadata, path, lines)
            kwargs[name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise PlanError("required key is missing", key=path, line=lines(key) if key else None)
    return cls(**kwargs)


def _check_bounds(value: Any, meta: Any, path: str, lines: LineLookup) -> None:
    if value is None or isinstance(value, bool) or not meta:
        return
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if not isinstance(v, (int, float)):
            continue
        if "min" in meta and v < meta["min"]:
            raise PlanError(f"must be ≥ {meta['min']}, got {v}", key=path, line=lines(path))
        if "gt" in meta and v <= meta["gt"]:
            raise PlanError(f"must be > {meta['gt']}, got {v}", key=path, line=lines(path))
        if "max" in meta and v > meta["max"]:
            raise PlanError(f"must be ≤ {meta['max']}, got {v}", key=path, line=lines(path))


def plan_path(value: str, base_dir: Path) -> Path:
    """A path from a plan: `~` expanded, relative to the plan's directory unless absolute."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


def params_to_dict(params: Any) -> dict[str, Any]:
    """A JSON-ready dict of a Params dataclass (verbatim values, for manifests and reports)."""
    if params is None:
        return {}
    return dataclasses.asdict(params)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
