"""A run's status: a small state machine, recorded in results.json and the manifest whenever it changes.

    running ──▶ passed | failed | inconclusive | error | interrupted
    passed | failed | inconclusive ──▶ error        (a later step, such as the report, failed)

inconclusive: no criterion failed, but one would pass only on an attack that an attack-failure indicator shows
failed at the ε it judges (harness.results.criteria).

`--resume` starts a new attempt (running) from error, interrupted or a run whose process is gone; it is refused
when the resume fingerprint differs (harness.run.fingerprint). A killed process (SIGKILL, power loss) cannot write
its status: its results.json still says running, and a reader tells it from a live run by the run directory's lock
(harness.storage.rundir.run_in_progress), which the kernel releases when the process ends however it ends.
"""

from __future__ import annotations

RUNNING, PASSED, FAILED, ERROR, INTERRUPTED = "running", "passed", "failed", "error", "interrupted"
INCONCLUSIVE = "inconclusive"
STATUSES = (RUNNING, PASSED, FAILED, INCONCLUSIVE, ERROR, INTERRUPTED)
FINAL = (PASSED, FAILED, INCONCLUSIVE, ERROR, INTERRUPTED)
JUDGED = (PASSED, FAILED, INCONCLUSIVE)  # the run finished and its criteria were judged
TRANSITIONS = {RUNNING: FINAL, PASSED: (ERROR,), FAILED: (ERROR,), INCONCLUSIVE: (ERROR,), ERROR: (),
               INTERRUPTED: ()}
LEGACY_COMPLETE = "complete"  # schema v1: a finished run; passed or failed by its verdict


def check_transition(current: str, new: str) -> None:
    """ValueError unless the state machine allows `current` → `new`."""
    if new not in TRANSITIONS.get(current, ()):
        raise ValueError(f"a run's status cannot go from {current!r} to {new!r}")


def effective(recorded: str, in_progress: bool) -> str:
    """The status a reader should report: a run recorded as running whose process is gone was interrupted."""
    return INTERRUPTED if recorded == RUNNING and not in_progress else recorded
