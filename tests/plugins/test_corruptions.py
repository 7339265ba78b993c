"""The corruption plugin kind and the built-in corruptions: contract, determinism, units and severity scales.

Severity scales are checked on phantom images (CT nodule patches for CT, brain slices for MRI, mammogram
patches for the general corruptions) with a measured statistic that must move monotonically with severity.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from harness.cli.main import main
from harness.errors import DataError, PlanError
from harness.plan.params import build_dataclass
from harness.registry.contracts import CorruptionContext, CorruptionPlugin, NativeUnits, Severity
from harness.registry.manager import Registry, make_plugin_manager
from harness_plugins.corruptions.base import Corruption, check_severities, severity_scale
from harness_plugins.datasets.phantoms import brain_mri, ct, mammogram

CT_NAMES = {"ct_noise", "ct_nps_noise", "ct_quantum_noise", "ct_blur", "ct_window_shift", "ct_ring"}
MRI_NAMES = {"mri_motion", "mri_ghosting", "mri_spike", "mri_bias_field", "mri_rician_noise"}
GENERAL_NAMES = {"gamma", "contrast", "jpeg", "jpeg2000", "gaussian_blur", "gaussian_noise", "resolution_loss"}
ALL_NAMES = CT_NAMES | MRI_NAMES | GENERAL_NAMES
VOLUME_NAMES = {"slice_thickness"}  # volumes only: tests/plugins/test_volume_corruptions.py
SEEDED = {"ct_noise", "ct_nps_noise", "ct_quantum_noise", "ct_ring", "gaussian_noise"} | MRI_NAMES  # use their rng
LUNG_WINDOW = NativeUnits(1500.0, "HU", "lung window W1500 L-600")
LUNG_OFFSET = -1350.0  # HU at intensity 0 for W1500 L-600
SPACING_MM = 0.7  # nominal in-plane pixel size given to the phantom in these tests (the phantom records none)
N_IMAGES = 16


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The registry of installed plugins (entry points)."""
    return Registry(make_plugin_manager())


@pytest.fixture(scope="module")
def phantoms() -> dict[str, torch.Tensor]:
    """N_IMAGES phantom images per modality: CT nodule, brain MRI and mammogram patches, 64×64 in [0,1]."""
    return {
        "CT": torch.from_numpy(ct.generate(ct.PhantomParams(n_patients=20))[0][:N_IMAGES]),
        "MRI": torch.from_numpy(brain_mri.generate(brain_mri.BrainMRIParams(n_patients=20))[0][:N_IMAGES]),
        "any": torch.from_numpy(mammogram.generate(mammogram.MammogramParams(n_patients=20))[0][:N_IMAGES]),
    }


def context(seed: int = 0, **changes: object) -> CorruptionContext:
    """A CT-capable context: lung window in HU, its offset and a nominal pixel spacing."""
    base = CorruptionContext(seed=seed, native_units=LUNG_WINDOW, native_offset=LUNG_OFFSET,
                             pixel_spacing_mm=SPACING_MM)
    return dataclasses.replace(base, **changes)


def corrupt(plugin: CorruptionPlugin, images: torch.Tensor, level: int, ctx: CorruptionContext | None = None,
            indices: object = None) -> torch.Tensor:
    """Apply `plugin` at severity `level` with global indices 0..N-1 (or `indices`)."""
    idx = np.arange(len(images)) if indices is None else indices
    return plugin.apply(images, idx, plugin.params_for(level), ctx or context())


# ---------------------------------------------------------------------------------------------- registry, contract


def test_registry_lists_every_builtin_corruption(registry):
    assert set(registry.names("corruption")) == ALL_NAMES | VOLUME_NAMES
    for name in ALL_NAMES:
        entry = registry.entry("corruption", name)
        assert entry.provider == "harness" and entry.description


def test_harness_plugins_lists_corruptions(capsys):
    assert main(["plugins", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {e["name"] for e in entries if e["kind"] == "corruption"} == ALL_NAMES | VOLUME_NAMES


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_builtin_satisfies_the_protocol(registry, name):
    plugin = registry.get("corruption", name)
    assert isinstance(plugin, CorruptionPlugin)
    assert plugin.modality == ("CT" if name in CT_NAMES else "MRI" if name in MRI_NAMES else "any")
    assert [s.level for s in plugin.severities] == [1, 2, 3, 4, 5]
    assert len({s.name for s in plugin.severities}) == 5
    assert plugin.parameter in {f.name for f in dataclasses.fields(plugin.Params)}
    default = build_dataclass(plugin.Params, {}, "corruption.params")  # every field has a default
    for severity in plugin.severities:
        params = plugin.params_for(severity.level, default)
        assert getattr(params, plugin.parameter) == severity.value
        # The severity value is itself a valid explicit override, so plan validation accepts it.
        assert build_dataclass(plugin.Params, {plugin.parameter: getattr(params, plugin.parameter)}) == params


def test_params_for_keeps_other_overrides_and_types(registry):
    nps = registry.get("corruption", "ct_nps_noise")
    params = nps.params_for(5, nps.Params(kernel="sharp"))
    assert (params.kernel, params.sigma_hu) == ("sharp", nps.severities[4].value)
    quality = registry.get("corruption", "jpeg").params_for(2).quality
    assert isinstance(quality, int) and quality == 60


@pytest.mark.parametrize("level", [0, 6, 2.5, "3"])
def test_params_for_refuses_unknown_levels(registry, level):
    with pytest.raises(PlanError, match="severity must be one of 1, 2, 3, 4, 5"):
        registry.get("corruption", "ct_noise").params_for(level)


@dataclass
class _ValueParams:
    value: float = 1.0


MEMBERS = {
    "name": "third_party", "description": "a corruption", "modality": "any", "requires_unit": None,
    "parameter": "value", "unit": "u", "severities": severity_scale([1, 2, 3, 4, 5]), "Params": _ValueParams,
    "params_for": lambda self, level, base=None: _ValueParams(value=level),
    "apply": lambda self, images, indices, params, context: images,
}


def test_a_complete_third_party_corruption_satisfies_the_protocol():
    assert isinstance(type("ThirdParty", (), MEMBERS)(), CorruptionPlugin)


@pytest.mark.parametrize("missing", sorted(MEMBERS))
def test_a_corruption_missing_a_member_fails_the_protocol(missing):
    members = {k: v for k, v in MEMBERS.items() if k != missing}
    assert not isinstance(type("Malformed", (), members)(), CorruptionPlugin)


@pytest.mark.parametrize(("severities", "parameter", "message"), [
    (severity_scale([1, 2, 3, 4, 5])[:4], "value", "levels"),
    (severity_scale([1, 2, 2, 4, 5]), "value", "monotone"),
    (severity_scale([1, 2, 3, 4, 5]), "missing", "not a field"),
    (tuple(Severity(level, "s", level) for level in (1, 2, 3, 5, 4)), "value", "levels"),
])
def test_a_builtin_with_a_bad_severity_table_is_refused_at_definition(severities, parameter, message):
    with pytest.raises(TypeError, match=message):
        type("Bad", (Corruption,), {"name": "bad", "description": "", "modality": "any", "parameter": parameter,
                                    "unit": "u", "severities": severities, "Params": _ValueParams,
                                    "corrupt": lambda self, images, rngs, params, context: images})
    check_severities(type("Good", (), {"severities": severity_scale([5, 4, 3, 2, 1]), "parameter": "value",
                                       "Params": _ValueParams}))


# ---------------------------------------------------------------------------------------------- every corruption


def images_for(registry, phantoms, name: str) -> torch.Tensor:
    """The phantom images of the corruption's modality."""
    return phantoms[registry.get("corruption", name).modality]


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_shape_dtype_range_and_input_untouched(registry, phantoms, name):
    plugin = registry.get("corruption", name)
    images = images_for(registry, phantoms, name)
    before = images.clone()
    for level in (1, 5):
        out = corrupt(plugin, images, level)
        assert out.shape == images.shape and out.dtype == torch.float32 and out.device == images.device
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 and bool(torch.isfinite(out).all())
        assert not torch.equal(out, images)
    assert torch.equal(images, before)


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_non_square_multichannel_batches_keep_their_shape(registry, name):
    plugin = registry.get("corruption", name)
    images = torch.rand(3, 2, 40, 56, generator=torch.Generator().manual_seed(1))
    out = corrupt(plugin, images, 3)
    assert out.shape == images.shape and out.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_deterministic_and_independent_of_batching(registry, phantoms, name):
    plugin = registry.get("corruption", name)
    images = images_for(registry, phantoms, name)
    indices = np.arange(100, 100 + len(images))  # global sample indices of this test batch
    whole = corrupt(plugin, images, 4, indices=indices)
    assert torch.equal(whole, corrupt(plugin, images, 4, indices=indices))
    chunks = torch.cat([corrupt(plugin, images[a:b], 4, indices=indices[a:b]) for a, b in ((0, 5), (5, 6), (6, None))])
    assert torch.equal(whole, chunks)
    order = np.random.default_rng(0).permutation(len(images))
    assert torch.equal(whole[order], corrupt(plugin, images[order], 4, indices=indices[order]))


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_seed_and_index_choose_the_realisation(registry, phantoms, name):
    plugin = registry.get("corruption", name)
    images = images_for(registry, phantoms, name)[:4]
    base = corrupt(plugin, images, 4, context(seed=0))
    assert not torch.equal(base, corrupt(plugin, images, 4, context(seed=1)))
    shifted = corrupt(plugin, images, 4, context(seed=0), indices=np.arange(4) + 1)
    assert all(not torch.equal(base[i], shifted[i]) for i in range(4))


@pytest.mark.parametrize("name", sorted(MRI_NAMES))
def test_torchio_corruptions_leave_torchs_global_generator_alone(registry, phantoms, name):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    corrupt(registry.get("corruption", name), phantoms["MRI"][:3], 3)
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------------------------------------- units


@pytest.mark.parametrize("name", ["ct_noise", "ct_nps_noise", "ct_quantum_noise", "ct_window_shift", "ct_ring"])
@pytest.mark.parametrize("units", [None, NativeUnits(255.0, "grey levels (8-bit)")])
def test_hu_corruptions_refuse_data_not_in_hu(registry, phantoms, name, units):
    with pytest.raises(DataError, match=rf"'{name}' is defined in HU.*native units are"):
        corrupt(registry.get("corruption", name), phantoms["CT"][:2], 3, context(native_units=units))


def test_ct_blur_needs_the_pixel_spacing(registry, phantoms):
    with pytest.raises(DataError, match="pixel spacing"):
        corrupt(registry.get("corruption", "ct_blur"), phantoms["CT"][:2], 3, context(pixel_spacing_mm=None))


def test_quantum_noise_needs_absolute_hu(registry, phantoms):
    with pytest.raises(DataError, match="absolute HU"):
        corrupt(registry.get("corruption", "ct_quantum_noise"), phantoms["CT"][:2], 3, context(native_offset=None))


def test_window_shift_refuses_a_non_positive_width(registry, phantoms):
    plugin = registry.get("corruption", "ct_window_shift")
    with pytest.raises(DataError, match="window width"):
        plugin.apply(phantoms["CT"][:2], [0, 1], plugin.Params(width_change_hu=-1500.0), context())


def test_mismatched_indices_are_a_caller_error(registry, phantoms):
    with pytest.raises(ValueError, match="2 images but 3 indices"):
        registry.get("corruption", "gamma").apply(phantoms["any"][:2], [0, 1, 2], None, context())


# ---------------------------------------------------------------------------------------------- measured scales


def _diff_hu(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """(y − x) in HU on pixels well inside the lung window, where clipping cannot bite."""
    mask = ((x > 0.15) & (x < 0.85)).numpy()
    return ((y - x).double().numpy() * LUNG_WINDOW.per_unit)[mask]


def _psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean PSNR in dB (peak 1.0) over images."""
    mse = (y.double() - x.double()).pow(2).mean(dim=(1, 2, 3))
    return float((10 * torch.log10(1.0 / mse)).mean())


def _rms(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((y.double() - x.double()).pow(2).mean().sqrt())


def _gradient_energy(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared finite difference of the corrupted images (sharpness)."""
    z = y.double()
    return float((z[..., 1:, :] - z[..., :-1, :]).pow(2).mean() + (z[..., 1:] - z[..., :-1]).pow(2).mean())


def _head(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return ((x > 0.3) & (y > 0.01) & (y < 0.99)).numpy()


def _log_bias_std(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spread of log(y/x) over head pixels: the bias-field amplitude."""
    mask = _head(x, y)
    return float(np.std(np.log(y.double().numpy()[mask] / x.double().numpy()[mask])))


def _head_noise(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(np.std((y - x).double().numpy()[_head(x, y)]))


# name → (statistic(clean, corrupted), +1 if it must increase with severity, −1 if it must decrease)
STATISTICS: dict[str, tuple[Callable[[torch.Tensor, torch.Tensor], float], int]] = {
    "ct_noise": (lambda x, y: float(_diff_hu(x, y).std()), +1),
    "ct_nps_noise": (lambda x, y: float(_diff_hu(x, y).std()), +1),
    "ct_quantum_noise": (lambda x, y: float(_diff_hu(x, y).std()), +1),
    "ct_blur": (_gradient_energy, -1),
    "ct_window_shift": (lambda x, y: -float(_diff_hu(x, y).mean()), +1),
    "ct_ring": (lambda x, y: float(_diff_hu(x, y).std()), +1),
    "mri_motion": (_rms, +1),
    "mri_ghosting": (_rms, +1),
    "mri_spike": (_rms, +1),
    "mri_bias_field": (_log_bias_std, +1),
    "mri_rician_noise": (_head_noise, +1),
    "gamma": (lambda x, y: float((x - y).double().mean()), +1),
    "contrast": (lambda x, y: float(y.double().std(dim=(2, 3)).mean()), -1),
    "jpeg": (_psnr, -1),
    "jpeg2000": (_psnr, -1),
    "gaussian_blur": (_gradient_energy, -1),
    "gaussian_noise": (lambda x, y: float((y - x).double().std()), +1),
    "resolution_loss": (_psnr, -1),
}


def test_every_corruption_has_a_measured_statistic():
    assert set(STATISTICS) == ALL_NAMES


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_severity_scale_is_monotone_in_a_measured_statistic(registry, phantoms, name):
    plugin = registry.get("corruption", name)
    images = images_for(registry, phantoms, name)
    statistic, direction = STATISTICS[name]
    values = [statistic(images, corrupt(plugin, images, level)) for level in (1, 2, 3, 4, 5)]
    assert all(direction * (b - a) > 0 for a, b in zip(values, values[1:], strict=False)), values


@pytest.mark.parametrize("name", ["ct_noise", "ct_nps_noise"])
def test_ct_noise_sigma_is_the_stated_hu(registry, phantoms, name):
    plugin = registry.get("corruption", name)
    for severity in plugin.severities:
        measured = _diff_hu(phantoms["CT"], corrupt(plugin, phantoms["CT"], severity.level)).std()
        assert measured == pytest.approx(severity.value, rel=0.05)


def test_nps_kernels_shape_the_noise_texture(registry):
    plugin = registry.get("corruption", "ct_nps_noise")
    flat = torch.full((4, 1, 64, 64), 0.5)
    ctx = CorruptionContext(seed=0, native_units=NativeUnits(1500.0, "HU"))
    roughness = []
    for kernel in ("soft", "standard", "sharp"):
        noise = plugin.apply(flat, range(4), plugin.Params(sigma_hu=40.0, kernel=kernel), ctx).double() - 0.5
        assert float(noise.std()) * 1500 == pytest.approx(40.0, rel=0.05)
        roughness.append(float((noise[..., 1:] - noise[..., :-1]).std() / noise.std()))
    assert roughness[0] < roughness[1] < roughness[2]


def test_quantum_noise_is_sigma_at_water_and_scales_with_attenuation(registry):
    plugin = registry.get("corruption", "ct_quantum_noise")
    ctx = CorruptionContext(seed=0, native_units=NativeUnits(2000.0, "HU"), native_offset=-1000.0)
    water, lung = torch.full((4, 1, 64, 64), 0.5), torch.full((4, 1, 64, 64), 0.2)  # 0 HU and −600 HU
    params = plugin.Params(sigma_hu=40.0)
    sigma_water = float((plugin.apply(water, range(4), params, ctx).double() - 0.5).std()) * 2000
    sigma_lung = float((plugin.apply(lung, range(4), params, ctx).double() - 0.2).std()) * 2000
    assert sigma_water == pytest.approx(40.0, rel=0.05)
    assert sigma_lung == pytest.approx(40.0 * np.sqrt(0.4), rel=0.05)


def _measured_fwhm_px(out: np.ndarray) -> float:
    """FWHM in pixels of a blurred point source's central row, from its second moment."""
    row = out[out.shape[0] // 2]
    positions = np.arange(row.size)
    weights = row - row.min()
    mean = np.sum(positions * weights) / weights.sum()
    return float(np.sqrt(np.sum(weights * (positions - mean) ** 2) / weights.sum()) * 2.3548)


@pytest.mark.parametrize(("name", "px_per_unit"), [("ct_blur", 1 / SPACING_MM), ("gaussian_blur", 1.0)])
def test_blur_fwhm_is_the_stated_width(registry, name, px_per_unit):
    plugin = registry.get("corruption", name)
    point = torch.zeros(1, 1, 65, 65)
    point[0, 0, 32, 32] = 1.0
    for severity in plugin.severities:
        out = plugin.apply(point, [0], plugin.params_for(severity.level), context())[0, 0].double().numpy()
        out = out / out.max()  # scale does not change the width; keeps small blurs above float32 rounding
        assert _measured_fwhm_px(out) == pytest.approx(severity.value * px_per_unit, rel=0.05)


def test_window_shift_moves_mid_window_pixels_by_the_level_shift(registry, phantoms):
    plugin = registry.get("corruption", "ct_window_shift")
    for severity in plugin.severities:
        shift = -_diff_hu(phantoms["CT"], corrupt(plugin, phantoms["CT"], severity.level))
        inside = shift[shift < severity.value + 1]  # pixels not pushed below the window
        assert np.median(inside) == pytest.approx(severity.value, abs=0.5)


def test_gaussian_noise_sigma_is_in_grey_levels(registry):
    plugin = registry.get("corruption", "gaussian_noise")
    flat = torch.full((4, 1, 64, 64), 0.5)
    for severity in plugin.severities:
        noise = plugin.apply(flat, range(4), plugin.params_for(severity.level), context()).double() - 0.5
        assert float(noise.std()) * 255 == pytest.approx(severity.value, rel=0.05)


def test_jpeg2000_reaches_about_its_target_psnr(registry, phantoms):
    plugin = registry.get("corruption", "jpeg2000")
    for severity in plugin.severities:
        assert _psnr(phantoms["any"], corrupt(plugin, phantoms["any"], severity.level)) == \
            pytest.approx(severity.value, abs=2.0)
