"""Safe YAML loading that remembers the line of every key, expands ${VAR} and applies --set overrides."""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import MissingVariableError, PlanError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class YamlDocument:
    """A parsed YAML mapping plus the line (1-based) of every key path like 'attacks.1.steps'."""

    data: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)
    source: str = "<plan>"
    text: str = ""  # the YAML exactly as written (comments included)

    def line(self, path: str) -> int | None:
        """The line of `path` or of its nearest ancestor that has one."""
        parts = path.split(".") if path else []
        while parts:
            key = ".".join(parts)
            if key in self.lines:
                return self.lines[key]
            parts.pop()
        return None


def _tab_problem(text: str, mark: Any) -> str | None:
    """The message for a tab in a plan's indentation: the key, the column and the fix (PyYAML says only 'found
    character '\\t' that cannot start any token'); None when no tab is to blame."""
    lines = text.splitlines()
    if mark is None or not 0 <= mark.line < len(lines):
        return None
    line = lines[mark.line]
    candidates = [n for n in (mark.line, mark.line - 1) if 0 <= n < len(lines) and "\t" in lines[n]]
    if "\t" not in line and not candidates:
        return None
    n = candidates[0] if candidates else mark.line
    line = lines[n]
    column = line.index("\t") + 1
    key = line.strip().split(":", 1)[0].strip() or "(blank)"
    return (f"a tab character at line {n + 1}, column {column} (key '{key}'): YAML indents with spaces only; "
            "replace the tab with spaces")


def load_yaml_text(text: str, source: str) -> YamlDocument:
    """Parse YAML safely (no tags, no duplicate keys) into a mapping with key lines."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = _tab_problem(text, mark) or getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PlanError(f"invalid YAML: {problem}", source=source,
                        line=mark.line + 1 if mark else None) from None
    if node is None:
        raise PlanError("the plan is empty", source=source)
    if not isinstance(node, yaml.MappingNode):
        raise PlanError("the plan must be a YAML mapping of keys to values", source=source,
                        line=node.start_mark.line + 1)
    lines: dict[str, int] = {}
    _walk(node, "", lines, source, set())
    try:
        data = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - SafeLoader
    except (ValueError, TypeError, AttributeError) as exc:  # e.g. '!!float abc': PyYAML's constructors raise these
        raise PlanError(f"invalid YAML: {' '.join(str(exc).split())}", source=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PlanError(f"invalid YAML: {getattr(exc, 'problem', exc)}", source=source,
                        line=mark.line + 1 if mark else None) from None
    return YamlDocument(data=data, lines=lines, source=source, text=text)


def load_yaml_file(path: Path) -> YamlDocument:
    """Read and parse a plan file; an unreadable file is a PlanError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError("plan file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read plan: {exc}", source=str(path)) from None
    return load_yaml_text(text, str(path))


def _walk(node: yaml.Node, prefix: str, lines: dict[str, int], source: str, open_nodes: set[int]) -> None:
    if id(node) in open_nodes:
        raise PlanError("a YAML alias refers to the node that contains it (recursive structure)",
                        key=prefix or None, line=node.start_mark.line + 1, source=source)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        open_nodes = open_nodes | {id(node)}
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{prefix}.{key}" if prefix else key
            if key in seen:
                raise PlanError("duplicate key", key=path, line=key_node.start_mark.line + 1, source=source)
            seen.add(key)
            lines[path] = key_node.start_mark.line + 1
            _walk(value_node, path, lines, source, open_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}.{i}" if prefix else str(i)
            lines[path] = item.start_mark.line + 1
            _walk(item, path, lines, source, open_nodes)


def expand_env(value: Any, doc: YamlDocument, path: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string from the environment."""
    if isinstance(value, dict):
        return {k: expand_env(v, doc, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, doc, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value)]
    if isinstance(value, str):
        def replace(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise MissingVariableError(name, key=path, line=doc.line(path), source=doc.source)
        return _ENV.sub(replace, value)
    return value


def override_source(assignment: str) -> str:
    """How errors name a command-line override: `--set key.path=value` (it stands where a file:line would)."""
    return f"--set {assignment}"


def apply_overrides(data: dict[str, Any], assignments: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Apply each 'key.path=value' in order; the new mapping and {key path set (list items by index): override}."""
    overridden: dict[str, str] = {}
    for assignment in assignments:
        data, key = apply_override(data, assignment)
        overridden[key] = assignment
    return data, overridden


def blame_override(exc: PlanError, overridden: dict[str, str]) -> PlanError | None:
    """The error restated as the fault of the --set override that set its key (or a parent of it), else None."""
    if not exc.key:
        return None
    for key, assignment in reversed(list(overridden.items())):  # the last override of a key is the one in effect
        if exc.key == key or exc.key.startswith(f"{key}."):
            return PlanError(exc.detail, key=exc.key, source=override_source(assignment))
    return None


def apply_override(data: dict[str, Any], assignment: str) -> tuple[dict[str, Any], str]:
    """Apply one 'key.path=value' override (value parsed as a YAML scalar): a new mapping and the key path it set,
    list items by index. Errors name the override, not the plan file."""
    source = override_source(assignment)
    if "=" not in assignment:
        raise PlanError("an override must look like key.path=value", source=source)
    path, raw = assignment.split("=", 1)
    path = path.strip()
    if not path:
        raise PlanError("the override has an empty key", source=source)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError, TypeError, AttributeError):  # e.g. '!!float abc': keep the text
        value = raw
    result = copy.deepcopy(data)
    parts = path.split(".")
    target: Any = result
    canonical: list[str] = []
    for i, part in enumerate(parts[:-1]):
        target, step = _child(target, part, ".".join(parts[: i + 1]), source, create=True)
        canonical.append(step)
    last = parts[-1]
    if isinstance(target, list):
        index = _list_index(target, last, path, source)
        target[index] = value
        canonical.append(str(index))
    elif isinstance(target, dict):
        target[last] = value
        canonical.append(last)
    else:
        raise PlanError(f"'{'.'.join(parts[:-1])}' is not a mapping", key=path, source=source)
    return result, ".".join(canonical)


def _child(target: Any, part: str, sofar: str, source: str, create: bool) -> tuple[Any, str]:
    """The item `part` names in a mapping or list, and its canonical key step (a list item's index)."""
    if isinstance(target, dict):
        if part not in target and create:
            target[part] = {}
        return target[part], part
    if isinstance(target, list):
        index = _list_index(target, part, sofar, source)
        return target[index], str(index)
    raise PlanError(f"'{sofar}' is not a mapping or list", key=sofar, source=source)


def _list_index(items: list, part: str, sofar: str, source: str) -> int:
    if part.isascii() and part.isdigit():
        index = int(part)
        if index >= len(items):
            raise PlanError(f"index {index} is out of range", key=sofar, source=source)
        return index
    for index, item in enumerate(items):  # select list items by their id (e.g. attacks.pgd_linf.steps)
        if isinstance(item, dict) and part in (item.get("id"), item.get("attack")):
            return index
    raise PlanError(f"no list item with id '{part}'", key=sofar, source=source)
