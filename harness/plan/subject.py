"""The plan's `subject:` section: the device under test (product name, version, manufacturer, intended use,
indications, contraindications), printed as the report's title block and recorded in results.json and the history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import PlanError

SUBJECT_KEYS = ("name", "version", "manufacturer", "intended_use", "indications", "contraindications")
_LISTS = ("indications", "contraindications")


@dataclass(frozen=True)
class Subject:
    """The device under test as the plan states it; empty fields were not stated."""

    name: str = ""
    version: str = ""
    manufacturer: str = ""
    intended_use: str = ""
    indications: tuple[str, ...] = ()
    contraindications: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The fields that are stated, as plain JSON."""
        out: dict[str, Any] = {}
        for key in SUBJECT_KEYS:
            value = getattr(self, key)
            if value:
                out[key] = list(value) if key in _LISTS else value
        return out

    @classmethod
    def from_json(cls, raw: Any) -> Subject | None:
        """Read what to_json wrote (None for None or an empty mapping)."""
        if not isinstance(raw, dict) or not raw:
            return None
        return cls(**{k: (tuple(str(v) for v in raw[k]) if k in _LISTS else str(raw[k])) for k in SUBJECT_KEYS
                      if raw.get(k) not in (None, "", [])})


def parse_subject(raw: Any, error: Callable[[str, str], PlanError], intended_use: str = "") -> Subject | None:
    """The `subject:` mapping validated (None when absent); a top-level `intended_use` fills its intended use.

    Strings are versions too (`version: "2.1"`); numbers are refused so that 2.10 is not read as 2.1.
    """
    if raw is None:
        return Subject(intended_use=intended_use.strip()) if intended_use.strip() else None
    if not isinstance(raw, dict):
        raise error("expected a mapping with " + ", ".join(SUBJECT_KEYS), "subject")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"subject.{key}"
        if key not in SUBJECT_KEYS:
            raise error(f"unknown key (allowed: {', '.join(SUBJECT_KEYS)})", where)
        if value is None:
            continue
        if key in _LISTS:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
                raise error("expected a string or a list of strings", where)
            values[key] = tuple(i.strip() for i in items)
        elif not isinstance(value, str):
            hint = f' (quote it: {key}: "{value}")' if isinstance(value, (int, float)) else ""
            raise error(f"expected a string, got {value!r}{hint}", where)
        else:
            values[key] = value.strip()
    if not values.get("intended_use") and intended_use.strip():
        values["intended_use"] = intended_use.strip()
    return Subject(**values)
