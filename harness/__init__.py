"""harness: adversarial robustness testing for medical-imaging classifiers.

What this module exports is the public API, for plugin authors and for teams' own tests; everything under
``harness.*`` submodules is internal and may change between releases (as pytest keeps ``_pytest`` private behind
``pytest``). Names are imported on first use, so ``import harness`` stays cheap.

- Writing plugins: ``hookimpl``; the contract types ``DatasetBundle``, ``DatasetContext``, ``TensorSplit``,
  ``NativeUnits``, ``ModelBundle``, ``ModelContext``, ``AttackOutput``, ``DefenceContext``, ``Severity``,
  ``CorruptionContext`` and ``SEVERITY_LEVELS``; the Protocols ``DatasetPlugin``, ``ModelPlugin``,
  ``Architecture``, ``AttackPlugin``, ``DefencePlugin``, ``CorruptionPlugin``; the helpers
  ``grouped_stratified_split``, ``load_dataset`` (a data set as the core sees it) and ``contract_problems``. See
  docs/plugins.md.
- Errors shown to users as one line: ``HarnessError``, ``PlanError``, ``DataError``, ``ModelError``, ``AttackError``,
  ``PluginContractError``.
- Reading runs: ``RunResults`` (``RunResults.load(run_dir)``) and ``load_plan``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("harness")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

_EXPORTS = {
    "hookimpl": "harness.registry.hookspecs",
    **dict.fromkeys(("DatasetBundle", "DatasetContext", "TensorSplit", "NativeUnits", "ModelBundle", "ModelContext",
                     "AttackOutput", "DefenceContext", "DatasetPlugin", "ModelPlugin", "Architecture", "AttackPlugin",
                     "DefencePlugin", "Severity", "CorruptionContext", "CorruptionPlugin", "SEVERITY_LEVELS"),
                    "harness.registry.contracts"),
    "grouped_stratified_split": "harness.data.splits",
    "load_dataset": "harness.data.loading",
    "contract_problems": "harness.registry.validation",
    **dict.fromkeys(("HarnessError", "PlanError", "DataError", "ModelError", "AttackError", "PluginContractError"),
                    "harness.errors"),
    "RunResults": "harness.results.view",
    "load_plan": "harness.plan.schema",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import a public name from its home module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
