"""Scaling out with torchrun: sharding/merge helpers, 2 CPU ranks (gloo) equal to 1 process byte for byte,
per-rank attack checkpoints on resume, DDP adversarial fine-tuning, and a failing rank that stops the run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from support import PLANS, REPO

from harness.attacks.sweep import merge_outcomes, run_attack
from harness.data import batches as batching
from harness.errors import DistributedError
from harness.plan.schema import AttackSpec
from harness.registry.contracts import AttackOutput, TensorSplit
from harness.results.attack_outcome import AttackOutcome
from harness.run import distributed
from harness_plugins.defences import parallel

TINY = PLANS / "tiny_phantom.yaml"
DEFENCE = PLANS / "tiny_defence.yaml"
# 26 test images in batches of 8 (8, 8, 8, 2): rank 0 attacks batches 0 and 2, rank 1 batches 1 and 3; rank 0
# alone runs the corruptions and every rank gets their results.
SHARDED = ["--set", "batch_size=8",
           "--set", "corruptions=[{corruption: ct_noise, severities: [1, 5]}, {corruption: jpeg, severities: [3]}]"]
# A shorter hardening (one round per stage, no indicators) with several test batches per rank.
SHORT_DEFENCE = ["--set", "batch_size=16", "--set", "indicators.enabled=false",
                 "--set", "defence.stages=[{epsilon: 0.015, rounds: 1}, {epsilon: 0.03, rounds: 1}]"]


# --------------------------------------------------------------------------- helpers without a process group


def test_shards_are_whole_batches_round_robin_uneven_and_possibly_empty():
    assert list(batching.shard_batches(26, 8, 0, 2)) == [0, 2]
    assert list(batching.shard_batches(26, 8, 1, 2)) == [1, 3]
    assert [list(batching.shard_batches(10, 8, r, 3)) for r in range(3)] == [[0], [1], []]
    assert [batching.shard_size(10, 8, r, 3) for r in range(3)] == [8, 2, 0]
    assert not batching.owned_mask(10, 8, 2, 3).any()
    assert list(batching.batch_range(3, 26, 8)) == [24, 25]
    assert batching.n_batches(0, 8) == 0 and batching.n_batches(16, 8) == 2


@pytest.mark.parametrize("n,batch_size,world", [(26, 8, 2), (26, 7, 3), (5, 8, 4), (1, 1, 2), (33, 4, 5)])
def test_owned_masks_partition_the_samples(n, batch_size, world):
    masks = np.stack([batching.owned_mask(n, batch_size, r, world) for r in range(world)])
    assert (masks.sum(axis=0) == 1).all()
    assert [int(m.sum()) for m in masks] == [batching.shard_size(n, batch_size, r, world) for r in range(world)]


def test_merge_takes_each_sample_from_the_rank_that_owns_its_batch():
    n, batch_size, world = 23, 4, 3
    truth = np.arange(2 * n, dtype=float).reshape(2, n)
    parts = []
    for r in range(world):
        part = np.full_like(truth, -1.0)  # what a rank leaves untouched
        mask = batching.owned_mask(n, batch_size, r, world)
        part[:, mask] = truth[:, mask]
        parts.append(part)
    assert np.array_equal(batching.merge_by_batch(parts, batch_size), truth)
    with pytest.raises(DistributedError):
        batching.merge_by_batch([truth, truth[:, :-1]], batch_size)


def test_merge_outcomes_sums_violations_and_keeps_min_epsilon_none_for_fixed_attacks():
    parts = [AttackOutcome([0.1], np.array([[True, False, False]]), np.array([1]), None),
             AttackOutcome([0.1], np.array([[False, False, True]]), np.array([2]), None)]
    merged = merge_outcomes(parts, batch_size=2)  # rank 0: samples 0-1, rank 1: sample 2
    assert merged.success.tolist() == [[True, False, True]]
    assert merged.violations.tolist() == [3] and merged.min_epsilon is None
    assert merge_outcomes(parts[:1], batch_size=2) is parts[0]


def test_without_a_process_group_every_helper_is_the_single_process_behaviour(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup() is False and not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.together(lambda: 5) == 5 and distributed.on_main(lambda: 6) == 6
    assert distributed.main_first(lambda: 7) == 7
    assert distributed.all_gather("x") == ["x"] and distributed.broadcast({"a": 1}) == {"a": 1}
    assert distributed.all_sum([1, 2.5]) == [1.0, 2.5]
    assert distributed.describe() is None
    distributed.barrier()
    distributed.shutdown()
    with pytest.raises(ValueError):
        distributed.together(lambda: (_ for _ in ()).throw(ValueError("plain")))
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.setup() is False
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(distributed.DistributedError, match="WORLD_SIZE"):
        distributed.setup()


def test_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    assert distributed.timeout_s() == distributed.DEFAULT_TIMEOUT_S
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "90")
    assert distributed.timeout_s() == 90.0
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "-1")
    with pytest.raises(distributed.DistributedError):
        distributed.timeout_s()


class NoiseAttack:
    """Sign noise from torch's global RNG (which run_attack seeds per batch): order-sensitive on purpose."""

    name, norm, kind, description, Params = "noise", "linf", "fixed_epsilon", "noise", dict

    def run(self, model, images, labels, epsilons, params):
        return AttackOutput([(images + eps * torch.randn_like(images).sign()).clamp(0, 1) for eps in epsilons])


def _toy_split(n: int = 23) -> TensorSplit:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 4, 4, generator=generator)
    labels = (images.mean(dim=(1, 2, 3)) > 0.5).long().numpy()
    return TensorSplit(images, labels, [f"s{i}" for i in range(n)], [f"p{i}" for i in range(n)])


class MeanNet(torch.nn.Module):
    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True) - 0.5
        return torch.cat([-40 * m, 40 * m], dim=1)


def test_sharded_attacks_merge_to_the_single_process_outcome(tmp_path):
    split, model = _toy_split(), MeanNet()
    spec = AttackSpec(id="noise", attack="noise", epsilons=[0.02, 0.08], params={}, norm="linf",
                      kind="fixed_epsilon")
    clean_pred = model(split.images).argmax(1).numpy()

    def attack(shard, checkpoint=None):
        return run_attack(model, split, spec, NoiseAttack(), clean_pred, 4, torch.device("cpu"), 3, "naive",
                          checkpoint=checkpoint, shard=shard)

    whole = attack((0, 1))
    for world in (2, 3, 7):  # 6 batches; with 7 ranks one rank has none
        parts = [attack((r, world), tmp_path / f"w{world}r{r}.npz") for r in range(world)]
        merged = merge_outcomes(parts, 4)
        assert np.array_equal(merged.success, whole.success), world
        assert np.array_equal(merged.violations, whole.violations)
        again = [attack((r, world), tmp_path / f"w{world}r{r}.npz") for r in range(world)]  # resumed: all done
        assert np.array_equal(merge_outcomes(again, 4).success, whole.success)


def test_ddp_batches_split_every_global_batch_and_skip_a_too_small_last_one(monkeypatch):
    split = _toy_split(11)
    order = torch.randperm(11, generator=torch.Generator().manual_seed(1))
    single = [labels for _, labels in parallel.train_batches(split, 4, order)]
    assert [len(b) for b in single] == [4, 4, 3]
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    seen = []
    for r in range(2):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        seen.append([images for images, _ in parallel.train_batches(split, 4, order)])
    assert [len(b) for b in seen[0]] == [2, 2] and [len(b) for b in seen[1]] == [2, 2]  # last batch of 3 < 2×2
    for step in range(2):
        together = torch.cat([seen[0][step], seen[1][step]])
        assert torch.equal(together, split.images[order[4 * step:4 * step + 4]])


# --------------------------------------------------------------------------- end to end under torchrun


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "HARNESS_CACHE_DIR": str(cache), "HARNESS_DEID_SALT": "test-salt", "OMP_NUM_THREADS": "1",
            **extra}


def _harness(plan: Path, out: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "harness", "run", str(plan), "--out", str(out), *options]


def _torchrun(plan: Path, out: Path, *options: str, ranks: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
            "-m", "harness", "run", str(plan), "--out", str(out), *options]


def _run(command: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)


def _only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]  # beside it: history.sqlite
    return run_dir


@pytest.fixture(scope="module")
def one_and_two_ranks(tmp_path_factory, session_cache) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The tiny plan in one process (trains or loads the cached model), then in 2 ranks (loads it)."""
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    proc = _run(_harness(TINY, one, "--no-report", *SHARDED), _env(session_cache))
    assert proc.returncode in (0, 1, 4), proc.stderr
    proc = _run(_torchrun(TINY, two, *SHARDED), _env(session_cache))
    assert proc.returncode in (0, 1, 4), proc.stderr
    return _only_run_dir(one), _only_run_dir(two), proc


def test_two_cpu_ranks_write_the_same_results_as_one_process(one_and_two_ranks):
    one, two, proc = one_and_two_ranks
    for name in ("results.json", "samples.csv", "corruption_samples.csv"):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    assert json.loads((two / "results.json").read_text())["models"]["naive"]["corruptions"]["ct_noise"]["points"]
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["distributed"]["world_size"] == 2 and manifest["distributed"]["backend"] == "gloo"
    assert "distributed" not in json.loads((one / "manifest.json").read_text())
    checkpoints = {p.name for p in (two / "checkpoints" / "attacks").iterdir()}
    assert {"naive__pgd_linf.rank0of2.npz", "naive__pgd_linf.rank1of2.npz"} <= checkpoints
    assert (two / "report.html").is_file()  # rank 0 renders the report
    assert proc.stdout.count("harness: verdict ") == 1  # only rank 0 prints
    assert proc.stderr.count("harness: loading data set") == 1


def test_resume_under_torchrun_uses_each_ranks_checkpoints(one_and_two_ranks, tmp_path, session_cache):
    one, two, _ = one_and_two_ranks
    run_dir = tmp_path / two.name
    shutil.copytree(two, run_dir)
    (run_dir / "checkpoints" / "attacks" / "naive__fmn_linf.rank1of2.npz").unlink()  # rank 1 redoes its part
    proc = _run(_torchrun(TINY, tmp_path / "unused", "--resume", str(run_dir), "--no-report", *SHARDED),
                _env(session_cache))
    assert proc.returncode in (0, 1, 4), proc.stderr
    for name in ("results.json", "samples.csv"):
        assert (run_dir / name).read_bytes() == (one / name).read_bytes(), name
    assert len(json.loads((run_dir / "manifest.json").read_text())["resumed_at"]) == 1


def test_defence_trains_with_ddp_and_every_rank_ends_with_the_same_weights(tmp_path, session_cache):
    proc = _run(_torchrun(DEFENCE, tmp_path, "--no-report", *SHORT_DEFENCE), _env(session_cache), timeout=600)
    assert proc.returncode in (0, 1, 4), proc.stderr
    run_dir = _only_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    defence = results["defence"]
    assert results["status"] in ("passed", "failed") and defence["plugin"] == "iterative_adversarial_training"
    assert [entry["round"] for entry in defence["training_log"]] == [0, 1, 2]
    ranks = defence["distributed"]
    assert ranks["world_size"] == 2 and len(ranks["rank_weights_sha256"]) == 2
    saved = hashlib.sha256((run_dir / "checkpoints" / "iterative_adversarial_training" /
                            "selected_weights.pt").read_bytes()).hexdigest()
    assert set(ranks["rank_weights_sha256"]) == {saved, defence["selected_weights_sha256"],
                                                 results["models"]["hardened"]["weights_sha256"],
                                                 manifest["models"]["hardened"]["weights_sha256"]}
    assert 0 <= results["models"]["hardened"]["clean"]["accuracy"] <= 1
    assert proc.stdout.count("harness: verdict ") == 1


FAILING_PLUGIN = textwrap.dedent('''\
    """An attack that fails on one torchrun rank only."""
    import os
    from dataclasses import dataclass

    from harness.registry.contracts import AttackOutput
    from harness.registry.hookspecs import hookimpl


    @dataclass
    class Params:
        rank: int = 1


    class FailOnRank:
        name, norm, kind, Params = "fail_on_rank", "linf", "fixed_epsilon", Params
        description = "Raises on one torchrun rank (test plugin)."
        iterative, requires_gradients = False, False

        def strengthen(self, params, steps_factor, restarts):
            return None

        def run(self, model, images, labels, epsilons, params):
            if int(os.environ.get("RANK", "0")) == params.rank:
                raise RuntimeError(f"simulated failure on rank {params.rank}")
            return AttackOutput([images.clone() for _ in epsilons])


    @hookimpl
    def harness_register_attacks():
        return [FailOnRank()]
    ''')


def test_a_failing_rank_stops_every_rank_with_one_error_line(tmp_path, session_cache):
    site = tmp_path / "site"
    (site / "harness_fail_on_rank-0.1.dist-info").mkdir(parents=True)
    (site / "harness_fail_on_rank.py").write_text(FAILING_PLUGIN)
    info = site / "harness_fail_on_rank-0.1.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-fail-on-rank\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[harness]\nfail_on_rank = harness_fail_on_rank\n")
    (info / "RECORD").write_text("")
    plan = tmp_path / "failing.yaml"
    plan.write_text(TINY.read_text().replace("  - attack: fgsm\n", "  - attack: fail_on_rank\n"))
    proc = _run(_torchrun(plan, tmp_path / "runs", "--no-report", *SHARDED),
                _env(session_cache, PYTHONPATH=str(site)), timeout=240)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("harness:") and "error" in line]
    assert lines == ["harness: error: rank 1 failed: attack 'fail_on_rank' failed: simulated failure on rank 1"]
    results = json.loads((_only_run_dir(tmp_path / "runs") / "results.json").read_text())
    assert "fail_on_rank" not in results["models"]["naive"]["attacks"]
    assert (results["status"], results["stage"], results["exit_code"]) == ("error", "naive:attack:fail_on_rank", 2)
    assert results["error"] == "rank 1 failed: attack 'fail_on_rank' failed: simulated failure on rank 1"
