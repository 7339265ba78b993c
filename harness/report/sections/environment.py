"""Environment: library versions, device, seeds, determinism, platform, plugins and wall time per stage."""

from __future__ import annotations

from typing import Any

from harness.report.inputs import ReportInput
from harness.report.text import basename, reduce_command, utc_text, verbatim

TITLE = "Environment"
VERSION_ORDER = ("python", "harness", "torch", "foolbox", "eagerpy", "numpy", "scipy", "pydicom", "monai",
                 "scikit-learn")
DEVICE_FIELDS = (("type", "device type"), ("name", "device"), ("gpu_name", "GPU"), ("cuda", "CUDA"),
                 ("cudnn", "cuDNN"), ("cpu", "CPU"), ("torch_threads", "torch threads"))
PLATFORM_FIELDS = (("system", "operating system"), ("release", "kernel release"), ("machine", "machine"),
                   ("python_implementation", "Python implementation"))


def _rows(mapping: dict[str, Any], fields: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [(label, verbatim(mapping[key])) for key, label in fields if mapping.get(key) is not None]


def build(report: ReportInput) -> dict[str, Any]:
    """Everything the manifest recorded about where and how the run ran (paths reduced to file names)."""
    manifest = report.manifest
    versions = manifest.versions
    ordered = [k for k in VERSION_ORDER if k in versions] + sorted(k for k in versions if k not in VERSION_ORDER)
    device = manifest.device
    device_rows = _rows(device, DEVICE_FIELDS)
    if device.get("type") != "cuda":
        device_rows.append(("CUDA", "not used (CPU run)"))
    timings = manifest.timings_seconds
    plan = manifest.plan
    return {
        "versions": [(k, versions[k] if versions[k] is not None else "not installed") for k in ordered],
        "device": device_rows, "platform": _rows(manifest.platform, PLATFORM_FIELDS),
        "determinism": [(k.replace("_", " "), verbatim(v)) for k, v in manifest.determinism.items()],
        "seeds": [(k.replace("_", " "), verbatim(v)) for k, v in manifest.seeds.items()],
        "plugins": [dict(p) for p in manifest.plugins],
        "timings": [(k, f"{v:.2f}") for k, v in timings.items() if isinstance(v, (int, float))],
        "total_time": f"{sum(v for v in timings.values() if isinstance(v, (int, float))):.2f}",
        "started": utc_text(manifest.started_at),
        "command": reduce_command(list(manifest.command) or None),
        "plan_source": basename(str(plan.source)) if plan.source else "n/a",
        "plan_sha": report.plan_sha256 or "n/a",
        "overrides": [reduce_command([o]) for o in report.overrides],
    }
