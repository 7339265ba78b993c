"""Hook specifications: what a harness plugin may implement (one line each, datasette style)."""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def harness_register_datasets() -> list[Any]:
    """Return dataset plugins (objects with name, Params and load())."""


@hookspec
def harness_register_architectures() -> list[Any]:
    """Return network architectures (objects with name and build())."""


@hookspec
def harness_register_models() -> list[Any]:
    """Return model providers (objects with name, Params and provide()): train, state_dict, torchscript."""


@hookspec
def harness_register_attacks() -> list[Any]:
    """Return attack plugins (objects with name, norm, kind, Params and run())."""


@hookspec
def harness_register_defences() -> list[Any]:
    """Return defence plugins (objects with name, Params and harden())."""


@hookspec
def harness_register_corruptions() -> list[Any]:
    """Return corruption plugins (objects with name, modality, five severities, Params and apply()).

    Each object satisfies `harness.registry.contracts.CorruptionPlugin`; its name must be unique across plugins.
    """


@hookspec
def harness_run_start(plan: Any, run_dir: str) -> None:
    """Called once when a run starts, after the plan is resolved."""


@hookspec
def harness_attack_result(plan: Any, model_role: str, attack_id: str, epsilon: float | None,
                          robust_accuracy: float) -> None:
    """Called after each attack × epsilon result is computed."""


@hookspec
def harness_run_end(plan: Any, run_dir: str, results: dict) -> None:
    """Called once when a run ends, with the final results document."""
