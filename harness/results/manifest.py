"""The manifest model: manifest.json (everything that decided a number) as one typed, read-only record.

Like the results model, it has one codec: `Manifest.from_json` reads every manifest (v1 included: keys a version
did not write take their empty value, and keys this version does not know are kept in `extra`), `to_json` writes
it back unchanged. The codec is field-driven: a stored field is one line in `Manifest` (its JSON key is the field's
name unless `key` metadata says otherwise, its decoder the `decode` metadata), nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from harness.plan.record import PlanRecord
from harness.results.model import thaw

Json = dict[str, Any]


def _mapping(value: Any) -> Mapping[str, Any]:
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else MappingProxyType({})


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


def _records(value: Any) -> tuple[Mapping[str, Any], ...]:
    return tuple(_mapping(v) for v in value if isinstance(v, Mapping)) if isinstance(value, (list, tuple)) else ()


def stored(decode: Callable[[Any], Any], *, key: str | None = None, encode: Callable[[Any], Any] = thaw,
           default: Any = None, factory: Callable[[], Any] | None = None) -> Any:
    """A stored field: how its JSON value is decoded and encoded, and its JSON key when not the field's name."""
    metadata = {"decode": decode, "encode": encode, "key": key}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Manifest:
    """manifest.json, typed. Sections the report and the checks read are fields; the rest stays in `extra`."""

    plan: PlanRecord = stored(PlanRecord.from_json, encode=lambda r: r.to_json(), factory=PlanRecord)
    schema_version: int | None = stored(lambda v: None if v is None else int(v))
    harness_version: str | None = stored(_text)
    harness_revision: str | None = stored(_text)
    started_at: str | None = stored(_text)
    resumed_at: tuple[str, ...] = stored(_strings, factory=tuple)  # each resumption's start
    batch_size: Mapping[str, Any] = stored(_mapping, factory=dict)  # requested, used
    command: tuple[str, ...] = stored(_strings, factory=tuple)
    seeds: Mapping[str, Any] = stored(_mapping, factory=dict)
    device: Mapping[str, Any] = stored(_mapping, factory=dict)
    versions: Mapping[str, Any] = stored(_mapping, factory=dict)
    platform: Mapping[str, Any] = stored(_mapping, factory=dict)
    determinism: Mapping[str, Any] = stored(_mapping, factory=dict)
    plugins: tuple[Mapping[str, Any], ...] = stored(_records, factory=tuple)
    timings_seconds: Mapping[str, Any] = stored(_mapping, factory=dict)
    dataset: Mapping[str, Any] = stored(_mapping, factory=dict)
    models: Mapping[str, Any] = stored(_mapping, factory=dict)
    corruptions: Mapping[str, Any] = stored(_mapping, factory=dict)
    fingerprint: Mapping[str, Any] = stored(_mapping, factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # every other key, kept as written
    present: frozenset[str] = field(default=frozenset(), repr=False, compare=False)  # keys the JSON form had

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", _mapping(self.extra))
        for f in _stored_fields():  # values given directly (not through from_json) are frozen the same way
            value = getattr(self, f.name)
            if isinstance(value, Mapping) and not isinstance(value, MappingProxyType):
                object.__setattr__(self, f.name, _mapping(value))

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> Manifest:
        """The manifest from its JSON form (an empty manifest for a run directory without one)."""
        raw = raw if isinstance(raw, Mapping) else {}
        values, known = {}, set()
        for f in _stored_fields():
            key = f.metadata["key"] or f.name
            known.add(key)
            if key in raw:
                values[f.name] = f.metadata["decode"](raw[key])
        return cls(**values, extra={k: v for k, v in raw.items() if k not in known}, present=frozenset(raw))

    def to_json(self) -> Json:
        """The JSON form: the stored fields present, then every other key as it was read."""
        out: Json = {}
        for f in _stored_fields():
            key, value = f.metadata["key"] or f.name, getattr(self, f.name)
            if key not in self.present and (value is None or (not value and f.name != "plan")):
                continue  # not written by the run: left out, as the run left it out
            out[key] = f.metadata["encode"](value)
        out.update(thaw(self.extra))
        return out

    # -- what readers ask of it ------------------------------------------------------------------------------
    def model(self, role: str) -> Mapping[str, Any]:
        """One model role's provenance (plugin, architecture, weights and their sha256...), empty if not recorded."""
        return _mapping(self.models.get(role))

    @property
    def dataset_provenance(self) -> Mapping[str, Any]:
        """The data set plugin's provenance (content hash, files...)."""
        return _mapping(self.dataset.get("provenance"))

    @property
    def leakage(self) -> Mapping[str, Any]:
        """What the duplicate search across splits found."""
        return _mapping(self.dataset.get("leakage"))


def _stored_fields() -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(Manifest) if "decode" in f.metadata)
