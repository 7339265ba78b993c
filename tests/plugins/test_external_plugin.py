"""A throwaway third-party plugin package, registered through the `harness` entry-point group, used by a plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import PLANS

PLUGIN_MODULE = textwrap.dedent('''\
    """An external attack plugin: uniform sign noise of size epsilon (a weak baseline attack)."""
    from dataclasses import dataclass, field

    import torch

    from harness.registry.contracts import AttackOutput
    from harness.registry.hookspecs import hookimpl


    @dataclass
    class Params:
        draws: int = field(default=2, metadata={"min": 1})


    class SignNoise:
        name, norm, kind, Params = "sign_noise_linf", "linf", "fixed_epsilon", Params
        description = "Random ±epsilon noise (external test plugin)."
        iterative, requires_gradients = False, False

        def strengthen(self, params, steps_factor, restarts):
            return None

        def run(self, model, images, labels, epsilons, params):
            out = []
            for eps in epsilons:
                noise = torch.sign(torch.randn_like(images)) * eps
                out.append((images + noise).clamp(0, 1))
            return AttackOutput(out)


    @hookimpl
    def harness_register_attacks():
        return [SignNoise()]
    ''')


def install_throwaway_package(root: Path) -> Path:
    """Lay out an installed distribution (module + dist-info with an entry point) on a PYTHONPATH folder."""
    site = root / "site"
    site.mkdir()
    (site / "harness_sign_noise.py").write_text(PLUGIN_MODULE)
    info = site / "harness_sign_noise-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-sign-noise\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text("[harness]\nsign_noise = harness_sign_noise\n")
    (info / "RECORD").write_text("")
    return site


@pytest.mark.slow
def test_external_attack_plugin_is_listed_and_used_by_a_plan(tmp_path, session_cache):
    site = install_throwaway_package(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site), "HARNESS_CACHE_DIR": str(session_cache)}
    listing = subprocess.run([sys.executable, "-m", "harness", "plugins", "--json"], capture_output=True,
                             text=True, env=env, timeout=300)
    assert listing.returncode == 0, listing.stderr
    entries = {e["name"]: e for e in json.loads(listing.stdout)}
    assert entries["sign_noise_linf"]["provider"] == "harness-sign-noise"
    assert entries["sign_noise_linf"]["version"] == "0.3.1" and entries["sign_noise_linf"]["kind"] == "attack"

    plan = (PLANS / "tiny_phantom.yaml").read_text()
    plan = plan.replace("  - attack: fgsm\n", "  - attack: sign_noise_linf\n    draws: 1\n")
    plan_path = tmp_path / "external.yaml"
    plan_path.write_text(plan)
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(plan_path), "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert "sign_noise_linf" in results["models"]["naive"]["attacks"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {"kind": "attack", "name": "sign_noise_linf", "provider": "harness-sign-noise", "version": "0.3.1"} \
        in manifest["plugins"]
