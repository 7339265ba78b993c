"""How a plan names an architecture: `architecture: resnet18` or `architecture: {name: resnet18, option: value}`."""

from __future__ import annotations

from typing import Any

from harness.errors import PlanError

ArchitectureSpec = str | dict[str, Any]


def split_architecture(spec: ArchitectureSpec, key: str = "model.architecture") -> tuple[str, dict[str, Any]]:
    """The architecture's name and the plan's constructor options (empty for a bare name)."""
    if isinstance(spec, str):
        return spec, {}
    name = spec.get("name")
    if not isinstance(name, str):
        raise PlanError("a mapping names the architecture under 'name' (e.g. {name: resnet18, conv1_t_stride: 2})",
                        key=f"{key}.name")
    return name, {k: v for k, v in spec.items() if k != "name"}


def check_architecture(spec: ArchitectureSpec | None, section: str, architectures: dict[str, Any]) -> None:
    """PlanError (naming the key) for an unknown architecture or an option its constructor does not take."""
    if spec is None:
        return
    key = f"{section}.architecture"
    name, options = split_architecture(spec, key)
    if name not in architectures:
        known = ", ".join(sorted(architectures)) or "none installed"
        raise PlanError(f"unknown architecture {name!r} (available: {known})",
                        key=key if isinstance(spec, str) else f"{key}.name")
    check_options = getattr(architectures[name], "check_options", None)
    if options and check_options is None:
        raise PlanError(f"architecture '{name}' takes no options", key=key)
    if check_options is not None:
        check_options(options, key)
