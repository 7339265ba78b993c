"""Errors the CLI reports as one clear line (exit code 2 for bad input)."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name when the message is empty)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__


# Exit codes of every `harness` command (and of a run, in results.json): every criterion passed, a criterion failed,
# bad input (a HarnessError), an internal error (a bug), interrupted (Ctrl-C, as shells report SIGINT).
EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_INCONCLUSIVE = 4  # no criterion failed, but one rests on an attack its indicators show failed


def error_report(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message of an error that stops a command: a HarnessError's own line, or
    'internal error: Type: message' for anything else (a bug). Commands print it after 'harness: error: ' or
    'harness: '; a run records it in results.json."""
    if isinstance(exc, HarnessError):
        return exc.exit_code, exc.one_line()
    return EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"


def error_line(exc: BaseException) -> str:
    """The line a command prints for an error: 'harness: error: …' or 'harness: internal error: …'."""
    message = error_report(exc)[1]
    return f"harness: error: {message}" if isinstance(exc, HarnessError) else f"harness: {message}"


class HarnessError(Exception):
    """Base class for errors shown to the user as one line, never a traceback."""

    exit_code = EXIT_BAD_INPUT

    def one_line(self) -> str:
        """The message on a single line."""
        return " ".join(str(self).split())


class PlanError(HarnessError):
    """A plan is malformed: names the file, the key path and (where known) the YAML line."""

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None,
                 source: str | None = None) -> None:
        self.key, self.line, self.source, self.detail = key, line, source, message
        where = []
        if source:
            where.append(f"{source}" + (f":{line}" if line else ""))
        elif line:
            where.append(f"line {line}")
        if key:
            where.append(f"key '{key}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class MissingVariableError(PlanError):
    """A plan uses ${VAR} (without a default) and VAR is not set in the environment."""

    def __init__(self, variable: str, *, key: str | None = None, line: int | None = None,
                 source: str | None = None) -> None:
        self.variable = variable
        super().__init__(f"environment variable ${{{variable}}} is not set", key=key, line=line, source=source)


class DataError(HarnessError):
    """Input data is unreadable or inconsistent; the message names the file or sample."""


class ModelError(HarnessError):
    """A model cannot be built, loaded or run; the message names the file or architecture."""


class AttackError(HarnessError):
    """An attack failed or produced an invalid adversarial example."""


class PluginContractError(HarnessError):
    """An installed plugin breaks its kind's contract; the message names the provider and what is missing."""


class DistributedError(HarnessError):
    """The process group cannot be set up, or another rank failed (the message names the rank)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
