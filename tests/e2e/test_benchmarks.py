"""The benchmark scripts' helpers on a tiny model and a few images, so the table, JSON and checks cannot rot.

No timed assertions: only that every column, check and memory figure is produced and consistent.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support import REPO
from torch import nn

BENCHMARKS = REPO / "benchmarks"
NEW_COLUMNS = ("batch", "rss_mb", "rss_delta_mb", "device_mb", "gflops", "of_peak")
LINUX = Path("/proc/self/status").exists()


def _load(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("attack_throughput")


def _tiny_case(bench, n: int = 12):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 2)).eval()
    images = torch.rand(n, 1, 16, 16)
    with torch.no_grad():
        labels = model(images).argmax(1)  # every image clean-correct
    case = bench.Case("tiny", model, images, labels, 4, bench.gflop_per_step(model, (1, 16, 16), torch.device("cpu")),
                      "trained 0 steps", sweep=False)
    case.clean_correct = np.ones(n, dtype=bool)
    case.test = bench.tensor_split(images, labels)
    return case


def test_rows_have_every_column_and_render(bench):
    case = _tiny_case(bench)
    args = argparse.Namespace(compile=False, no_cpu_bf16=False)
    rows = bench.rows_for(case, torch.device("cpu"), args, lambda _: None, peak_tflops=1.0)
    methods = [r.method for r in rows]
    assert methods[:2] == ["limit (10 fwd+bwd + 1 fwd)", "plain torch PGD-10"]
    assert "harness sweep PGD-10 (1 ε), batch auto" in methods
    assert "native PGD-10 (1 ε), no engine options" in methods and "native APGD-CE, 10 steps (1 ε)" in methods
    assert any(m.startswith("plain torch ceiling") for m in methods)
    assert any(m.startswith("torchattacks APGD-CE") for m in methods)
    measured = [r for r in rows if r.images_per_s is not None]
    for row in measured:
        data = bench.asdict(row)
        assert all(column in data for column in NEW_COLUMNS)
        assert row.batch and row.rss_mb > 0 and row.rss_delta_mb >= 0 and row.device_mb is None
        assert row.gflops > 0 and row.of_peak == pytest.approx(row.gflops / 1e3)
    auto = rows[methods.index("harness sweep PGD-10 (1 ε), batch auto")]
    assert auto.batch == 16 and auto.images_per_s is not None  # CPU rule 256, capped at 16 ≥ 12 images; fixed 4
    text = bench.table(rows, torch.device("cpu"))
    markdown = bench.markdown_table(rows, torch.device("cpu"))
    assert "ΔRSS MB" in text and "n/a" in text and markdown.count("\n") == len(rows) + 1


def test_compare_rates_uses_only_the_band():
    bench = _load("attack_throughput")
    result = bench.compare_rates([0.1, 0.2, 0.3], [0.05, 0.5, 0.95], [0.2, 0.505, 0.9])
    assert result["compared_epsilons"] == [0.2]
    assert result["max_abs_diff_points"] == pytest.approx(0.5)
    assert result["passed"] is True
    assert bench.compare_rates([0.1], [0.0], [0.3])["passed"] is None


def test_bf16_check_returns_rates_per_epsilon(bench):
    case = _tiny_case(bench, n=8)
    epsilons = [0.01, 0.05, 0.2]
    check = bench.bf16_check(case.model, case.test, epsilons, 4, torch.device("cpu"))
    assert len(check["float32"]) == len(check["bf16"]) == 3 and check["images"] == 8
    assert all(0.0 <= r <= 1.0 for r in check["float32"] + check["bf16"])
    assert check["passed"] in (True, False, None)
    assert "PASS" in bench.bf16_report("tiny", check) or "FAIL" in bench.bf16_report("tiny", check) \
        or check["passed"] is None
    json.dumps(check)


def test_device_peak_and_batch_argument(bench):
    assert bench.device_peak_tflops(torch.device("cpu"), None)[0] is None
    assert bench.device_peak_tflops(torch.device("cpu"), 989.0) == (989.0, "--peak-tflops")
    assert bench._batch_arg("auto") == "auto" and bench._batch_arg("64") == 64
    plans = bench.case_plans(bench.parse_args(["--quick", "--batch", "auto", "--only", "small_cnn"]))
    assert plans == [("small_cnn", 64, 256, "auto", 300, True)]


@pytest.mark.skipif(not LINUX, reason="reads /proc/self/status")
def test_peak_rss_sees_an_allocation(bench):
    with bench.PeakRSS() as rss:
        block = np.ones(40 * 2**20 // 8)  # 40 MB, touched
        del block
    assert rss.growth > 30 and rss.peak >= rss.start


def test_main_writes_json_with_new_columns_and_bf16_check(bench, tmp_path):
    out = tmp_path / "bench.json"
    bench.main(["--only", "small_cnn", "--images", "8", "--train-steps", "2", "--bf16-images", "8", "--device", "cpu",
                "--no-cpu-bf16", "--json", str(out), "--markdown", str(tmp_path / "table.md")])
    payload = json.loads(out.read_text())
    assert payload["cases"][0]["batch"] == 256 and payload["settings"]["peak_bf16_tflops"] is None
    assert all(column in row for row in payload["rows"] for column in NEW_COLUMNS)
    check = payload["bf16_check"]["small_cnn"]
    assert len(check["float32"]) == len(check["epsilons"]) == 20 and "max_abs_diff_points" in check
    assert (tmp_path / "table.md").read_text().startswith("| model |")


@pytest.mark.skipif(not LINUX, reason="reads /proc/self/status")
def test_sweep_memory_child_processes_report_peaks(tmp_path):
    memory = _load("sweep_memory")
    result = memory.run(8, 2, "cpu", 1)
    small, large = result["rows"]
    assert (small["n"], large["n"]) == (8, 16)
    for row in result["rows"]:
        assert row["peak_rss_mb"] >= row["rss_before_mb"] > 0 and row["data_mb"] > 0 and len(row["success"]) == 3
    summary = result["summary"]
    assert summary["peak_minus_data_ratio"] > 0 and isinstance(summary["passed"], bool)
    assert "peak − data ratio" in memory.report(result["rows"], summary)


def _results(status: str = "passed") -> dict:
    def model(clean: float, accs: list[float]) -> dict:
        points = [{"epsilon": e, "robust_accuracy": a} for e, a in zip((0.002, 0.004), accs, strict=True)]
        return {"clean": {"accuracy": clean}, "attacks": {
            "pgd_linf": {"kind": "fixed_epsilon", "norm": "linf", "points": points},
            "fmn_linf": {"kind": "minimal", "norm": "linf", "points": points}}}
    return {"status": status, "plan": {"name": "toy_replication"},
            "models": {"naive": model(0.8, [0.5, 0.3]), "hardened": model(0.78, [0.7, 0.65])}}


def test_replication_figures_write_one_png_per_fixed_attack_and_a_table(tmp_path, capsys):
    figures = _load("replication_figures")
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(_results()))
    assert figures.main([str(run), "--out", str(tmp_path / "figs")]) == 0
    assert [p.name for p in (tmp_path / "figs").iterdir()] == ["toy_replication__pgd_linf.png"]
    assert (tmp_path / "figs" / "toy_replication__pgd_linf.png").read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "| pgd_linf, naive | 0.800 | 0.500 | 0.300 |" in out
    assert "| pgd_linf, hardened | 0.780 | 0.700 | 0.650 |" in out and "fmn_linf" not in out
    (run / "results.json").write_text(json.dumps(_results("running")))
    with pytest.raises(SystemExit, match="not complete"):
        figures.main([str(run), "--out", str(tmp_path / "figs")])


def _rich_results() -> dict:
    """A finished run with intervals, a paired comparison, a class subgroup and corruptions."""
    def interval(low: float, high: float) -> dict:
        return {"low": low, "high": high, "method": "wilson", "confidence": 0.95}

    def model(clean: float, robust: float, ce: float, mce: float, sub: bool = True) -> dict:
        intervals = {"robust_accuracy": interval(robust - 0.05, robust + 0.04)}
        point = {"epsilon": 0.004, "robust_accuracy": robust, "intervals": intervals}
        clean_intervals = {"accuracy": interval(clean - 0.03, clean + 0.02)}
        out = {"clean": {"accuracy": clean, "n": 100, "intervals": clean_intervals},
               "attacks": {"pgd_linf": {"kind": "fixed_epsilon", "norm": "linf", "points": [point]}},
               "corruptions": {"jpeg": {"corruption_error": ce}}, "mean_corruption_error": mce}
        if sub:
            out["subgroups"] = {"class": {"glioma": model(clean - 0.1, robust - 0.1, ce, mce, sub=False)}}
        return out

    comparison = {"a": "naive", "b": "hardened", "attack": "pgd_linf", "epsilon": 0.004, "n_pairs": 100,
                  "only_a_correct": 3, "only_b_correct": 20, "difference": 0.17, "p_value": 0.00028}
    return {"status": "failed", "plan": {"name": "rich"}, "comparisons": [comparison],
            "models": {"naive": model(0.9, 0.6, 1.5, 1.25), "hardened": model(0.88, 0.77, 1.1, 1.05)}}


def test_replication_figures_tabulate_intervals_mcnemar_subgroups_and_mce(tmp_path, capsys):
    figures = _load("replication_figures")
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(_rich_results()))
    assert figures.main([str(run), "--out", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert "| clean | 0.900 [0.870–0.920] | 0.880 [0.850–0.900] | – | – |" in out
    assert "| 0.004 | 0.600 [0.550–0.640] | 0.770 [0.720–0.810] | +17.0 pts (3 / 20) | 0.00028 |" in out
    assert "| class = glioma | 100 | 0.800 [0.770–0.820] | 0.500 [0.450–0.540] | 0.780 [0.750–0.800] | " \
           "0.670 [0.620–0.710] |" in out
    assert "| jpeg | 1.50 | 1.10 |" in out and "| **mCE** | **1.25** | **1.05** |" in out
