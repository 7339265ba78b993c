"""Whether each corruption of the plan fits the loaded data set, checked before any model is trained.

A corruption fits when its modality is 'any' or the data set's, and when it runs on the data set's first test
image with what the data set tells it (native units, the native value of intensity 0, pixel spacing): the
plugin itself says what it needs, by raising DataError. A misfit is a PlanError naming the plan entry.
"""

from __future__ import annotations

from typing import Any

from harness.errors import DataError, PlanError
from harness.plan.corruptions import CorruptionSpec
from harness.registry.contracts import CorruptionContext, DatasetBundle

ANY_MODALITY = "any"


def corruption_context(dataset: DatasetBundle, seed: int) -> CorruptionContext:
    """What the corruptions may know of the images: the run seed, native units and offset, pixel spacing."""
    units = dataset.native_units
    return CorruptionContext(seed=seed, native_units=units, native_offset=units.offset if units else None,
                             pixel_spacing_mm=dataset.pixel_spacing_mm, voxel_spacing_mm=dataset.voxel_spacing_mm)


def describe_context(dataset: DatasetBundle, context: CorruptionContext) -> dict[str, Any]:
    """The corruption context as the manifest records it."""
    units = context.native_units
    return {"seed": context.seed, "modality": dataset.modality,
            "native_units": None if units is None else {"per_unit": units.per_unit, "unit": units.unit},
            "native_offset": context.native_offset, "pixel_spacing_mm": context.pixel_spacing_mm,
            **({"voxel_spacing_mm": list(context.voxel_spacing_mm)} if context.voxel_spacing_mm else {})}


def check_fit(specs: list[CorruptionSpec], registry: Any, dataset: DatasetBundle, seed: int, source: str) -> None:
    """Raise PlanError (file, line, key) for the first corruption the data set cannot take."""
    if not specs:
        return
    context = corruption_context(dataset, seed)
    image, _ = dataset.splits["test"][0]
    for spec in specs:
        plugin = registry.get("corruption", spec.corruption)

        def misfit(message: str, spec: CorruptionSpec = spec) -> PlanError:
            return PlanError(message, key=f"{spec.key}.corruption", line=spec.line, source=source)

        if plugin.modality != ANY_MODALITY and plugin.modality != dataset.modality:
            found = f"is {dataset.modality}" if dataset.modality else "does not state its modality"
            raise misfit(f"corruption '{spec.corruption}' is for {plugin.modality} images, but the data set "
                         f"'{dataset.name}' {found}" + ("" if dataset.modality else
                                                        f"; set dataset.modality: {plugin.modality} if it is"))
        try:
            plugin.apply(image[None], [0], plugin.params_for(spec.severities[0], spec.params), context)
        except DataError as exc:
            raise misfit(exc.one_line()) from None
