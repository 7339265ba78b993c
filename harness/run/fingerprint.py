"""The resume fingerprint: everything that decides a run's numbers, recorded in the manifest as it becomes known. At
the start: torch's thread count (the plan's `threads`), the resolved plan (seeds, attacks, engine options and
overrides included), how attack batches are seeded, the determinism settings applied, the device and the versions of
the libraries that compute the numbers. Later: the data's content hash once loaded, the batch size once chosen, each
model's weights sha256 once provided, the attack engine options used for it (engine: auto's choice), and the
corruption stage's inputs (corruption ids, plugins, severities, parameters, what they know of the data) when it
starts.
`--resume` compares every part with the attempt that made the run directory as soon as the part is known, and
refuses at the first difference with one line naming it. Each attack's and each corruption's per-batch checkpoint
stores the digest of the parts known when its stage started and is reused only under the same digest, so results
can never mix two models, data sets or settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results.manifest import Manifest

VERSIONED = ("harness", "torch", "foolbox", "numpy")  # libraries whose version can change a number
LABELS = {
    "plan_sha256": "the plan (another plan or other --set overrides)",
    "attack_seeding": "how attack batches are seeded",
    "determinism": "the determinism settings",
    "device": "the device",
    "torch_threads": "torch's CPU thread count (--threads)",
    "data_sha256": "the data (content sha256)",
    "leakage_reference": "the leakage reference's images (sha256 of their pixel digests)",
    "batch_size": "the batch size",
    "weights.naive": "the naive model's weights (sha256)",
    "weights.hardened": "the hardened model's weights (sha256)",
    "engine.naive": "the attack engine options for the naive model (engine: auto's choice)",
    "engine.hardened": "the attack engine options for the hardened model (engine: auto's choice)",
    "corruptions": "the corruptions (ids, plugins, severities, parameters, what they know of the data)",
    "certification": "the certification settings (σ, n0, n, α, noise batch, images, radius grid)",
    **{f"versions.{name}": f"the {name} version" for name in VERSIONED},
}


class ResumeRefused(HarnessError):
    """--resume found that something deciding the numbers differs from the attempt that made the run directory."""


@dataclass
class Fingerprint:
    """The parts known so far, checked against an earlier attempt's parts (`previous`) when resuming."""

    previous: Mapping[str, Any] | None = None
    run_dir: Path | None = None
    parts: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: Any) -> None:
        """Record one part; ResumeRefused when resuming and the earlier attempt recorded another value."""
        value = json.loads(json.dumps(value, sort_keys=True, default=str))  # as the manifest stores it
        if self.previous is not None and name in self.previous and self.previous[name] != value:
            what = LABELS.get(name, name)
            raise ResumeRefused(f"cannot resume {self.run_dir}: {what} changed since it was started "
                                f"({_show(self.previous[name])} then, {_show(value)} now); start a fresh run "
                                "(the same command without --resume)")
        self.parts[name] = value

    def digest(self) -> str:
        """sha256 of the parts known so far (canonical JSON)."""
        return hashlib.sha256(json.dumps(self.parts, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The manifest's `fingerprint` section."""
        return {"parts": dict(self.parts), "sha256": self.digest()}


def previous_parts(manifest: Manifest) -> dict[str, Any]:
    """The parts an earlier attempt recorded; a run directory from before the fingerprint has its plan hash only."""
    recorded = manifest.fingerprint.get("parts")
    if isinstance(recorded, Mapping):
        return dict(recorded)
    sha = manifest.plan.sha256
    return {"plan_sha256": sha} if sha else {}


def start_parts(plan_sha256: str, attack_seeding: str, determinism: Any, device: Mapping[str, Any],
                threads: int, versions: Mapping[str, Any]) -> dict[str, Any]:
    """The parts known when a run starts. `device` is harness.run.environment.device_info: its kind, CPU, GPU model
    and CUDA versions count; its index (which GPU of a node, per torchrun rank) does not."""
    return {"torch_threads": threads,  # first: a --threads other than the plan's also changes the plan's hash, and
            # the refusal should name the thread count
            "plan_sha256": plan_sha256, "attack_seeding": attack_seeding, "determinism": determinism,
            "device": {k: v for k, v in device.items() if k not in ("name", "torch_threads")},
            **{f"versions.{name}": versions.get(name) for name in VERSIONED}}


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:12] + "…" if isinstance(value, str) and len(value) == 64 else text
