"""harness-example-plugins: the hook implementations harness finds through the `harness` entry-point group."""

from __future__ import annotations

from harness import hookimpl
from harness_example_plugins.brightness import BrightnessShift
from harness_example_plugins.contrast import ContrastLoss
from harness_example_plugins.npy_folder import NpyFolder


@hookimpl
def harness_register_attacks() -> list[BrightnessShift]:
    """The package's attack plugins."""
    return [BrightnessShift()]


@hookimpl
def harness_register_datasets() -> list[NpyFolder]:
    """The package's data-set plugins."""
    return [NpyFolder()]


@hookimpl
def harness_register_corruptions() -> list[ContrastLoss]:
    """The package's corruption plugins."""
    return [ContrastLoss()]
