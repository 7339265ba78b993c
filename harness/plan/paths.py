"""Paths as written, not as resolved: how outputs record data and model locations.

A folder named after a patient or a study must not reach the manifest, results, resolved plan, report or error
lines through its absolute path. Every text a run writes passes through `PathRecorder.text`: each path parameter's
resolved forms are written back as the plan wrote them, the value of each ${VAR} the plan uses as `${VAR}`, and
the plan's own folder as a path relative to it (`images/…`).
What the plan wrote literally is already in its copy (plan.source.yaml). `record_paths: absolute` in a plan turns
this off.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RECORD_PATHS = ("as_written", "absolute")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def plan_variables(text: str) -> dict[str, str]:
    """The value of each ${VAR} (or its default) a plan text uses, by name, as expanded now."""
    found = {}
    for match in _VARIABLE.finditer(text):
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name, default)
        if value:
            found[name] = value
    return found


class PathRecorder:
    """Rewrites absolute paths in output text to the form the plan wrote (see the module docstring)."""

    def __init__(self, base_dir: Path, variables: Mapping[str, str], mode: str = "as_written",
                 written: Mapping[str, str] | None = None) -> None:
        self.mode = mode
        pairs: dict[str, str] = {}
        for value, form in (written or {}).items():  # each path parameter's resolved forms → as the plan wrote it
            for absolute in {os.path.abspath(base_dir / value), os.path.realpath(base_dir / value)}:
                if len(absolute) > 1 and absolute != form:
                    pairs[absolute.rstrip(os.sep)] = form.rstrip("/") or form
        for name, value in variables.items():
            if os.sep in value or "/" in value:  # a path-like value; a bare word (e.g. a device) is left alone
                for form in {value.rstrip("/"), os.path.abspath(value), os.path.realpath(value)}:
                    if len(form) > 1:
                        pairs[form] = f"${{{name}}}"
        for form in {str(base_dir), os.path.realpath(base_dir)}:
            if len(form) > 1:
                pairs.setdefault(form + os.sep, "")
                pairs.setdefault(form, ".")
        self._pairs = sorted(pairs.items(), key=lambda kv: -len(kv[0]))  # longest first: the most specific wins

    @property
    def active(self) -> bool:
        """False under `record_paths: absolute`."""
        return self.mode != "absolute"

    def text(self, value: str) -> str:
        """`value` with every absolute form of the plan's path variables and folder rewritten."""
        if not self.active or not value:
            return value
        for absolute, written in self._pairs:
            if absolute in value:
                value = re.sub(re.escape(absolute) + r"(?![A-Za-z0-9_.-])" if not absolute.endswith(os.sep) else
                               re.escape(absolute), lambda _m, w=written: w, value)
        return value

    def scrub(self, value: Any) -> Any:
        """A JSON-like document with `text` applied to every string (keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.scrub(k) if isinstance(k, str) else k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.scrub(v) for v in value]
        return value

    def error(self, exc: BaseException) -> None:
        """Rewrite an exception's message in place, so the command's error line names paths as written."""
        if self.active and exc.args and isinstance(exc.args[0], str):
            exc.args = (self.text(exc.args[0]), *exc.args[1:])
            if isinstance(getattr(exc, "detail", None), str):
                exc.detail = self.text(exc.detail)  # type: ignore[attr-defined]
