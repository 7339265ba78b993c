"""The pytest plugin end to end (pytester subprocesses with fake plugins) and its helpers and results view."""

from __future__ import annotations

import math
import sys
import textwrap
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import fake_plugins
import pytest
from fake_plugins import fake_registry

from harness.plan.schema import load_plan_text
from harness.pytest_plugin.collection import is_plan_file, split_criterion_id
from harness.pytest_plugin.fixtures import settings_to_overrides
from harness.pytest_plugin.messages import failure_message
from harness.pytest_plugin.session import render_pdf
from harness.results.model import CriterionResult
from harness.results.view import RunResults
from harness.run.runner import RunConfig, Runner

pytest_plugins = ["pytester"]

# A throwaway plugin package, registered through the `harness` entry-point group like any external plugin:
# the in-test fake plugins (tests/fake_plugins.py), installed under another name.
FAKE_PLUGINS = Path(fake_plugins.__file__).read_text(encoding="utf-8")

PLAN = textwrap.dedent("""\
    harness: 1
    name: toy_plan
    seed: 3
    dataset:
      plugin: toy
      n: 30
    model:
      plugin: mean_threshold
    epsilons: [0.01, 0.004]
    attacks:
      - attack: shift
      - attack: shift
        id: shift_big
        epsilons: [0.2]
    acceptance:
      - metric: clean_accuracy
        min: 0.65  # 10 of 10 test images: its Holm-adjusted one-sided lower bound is about 0.69
      - metric: robust_accuracy
        attack: shift
        epsilon: 0.004
        min: 0.6
      - metric: attack_success_rate
        attack: shift_big
        epsilon: 0.2
        max: 1.0
      - id: naive::clean_auc
        metric: clean_auc
        min: 0.9
    """)
IDS = ["clean_accuracy>=0.65", "shift[eps=0.004]::robust_accuracy>=0.60",
       "shift_big[eps=0.2]::attack_success_rate<=1.00", "naive::clean_auc"]

USER_TESTS = textwrap.dedent('''\
    from harness.errors import HarnessError


    def test_plan_fixture(harness_plan):
        plan = harness_plan("plan.yaml", dataset__n=12, overrides=["seed=4"])
        assert plan.dataset.params.n == 12 and plan.seed == 4
        assert plan.overrides == ["seed=4", "dataset.n=12"]


    def test_run_fixture(harness_run):
        results = harness_run("plan.yaml")
        assert results.passed and results.verdict.n_criteria == 4
        assert results.clean["naive"].accuracy == 1.0
        assert results.robust_accuracy("shift", 0.004) == 1.0
        assert results.robust_accuracy("shift_big", 0.2, model="naive") == 0.0
        assert results.criterion("shift[eps=0.004]::robust_accuracy>=0.60").measured == 1.0
        assert {s.attack for s in results.samples} == {"shift", "shift_big"}
        assert (results.run_dir / "report.pdf").read_bytes() == b"%PDF-fake"
        assert harness_run("plan.yaml").run_dir == results.run_dir  # cached: one run per session


    def test_run_fixture_error(harness_run):
        try:
            harness_run("plan.yaml", **{"dataset.fail": "data"})
        except HarnessError as exc:
            assert "simulated unreadable file" in exc.one_line()
        else:
            raise AssertionError("expected the run to fail")
    ''')

# --harness-report calls harness.report.render_report; this stand-in writes a marker file.
FAKE_REPORT_CONFTEST = textwrap.dedent('''\
    import sys
    import types
    from pathlib import Path

    report = types.ModuleType("harness.report")
    report.render_report = lambda run_dir: Path(run_dir, "report.pdf").write_bytes(b"%PDF-fake")
    sys.modules["harness.report"] = report
    ''')


@pytest.fixture
def gate_dir(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester directory with the fake plugin package on PYTHONPATH and a valid plan.yaml."""
    site = pytester.mkdir("site")
    (site / "fakeplugins.py").write_text(FAKE_PLUGINS)
    dist = site / "fakeplugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[harness]\nfake = fakeplugins\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    pytester.makeini("[pytest]\nfilterwarnings = ignore::DeprecationWarning\n")
    (pytester.path / "plan.yaml").write_text(PLAN)
    return pytester


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def junit_cases(path: Path) -> dict[tuple[str, str], ET.Element]:
    return {(case.get("classname"), case.get("name")): case for case in ET.parse(path).getroot().iter("testcase")}


# -- end to end, in pytester subprocesses ----------------------------------------------------------------------------
def test_collection_ids_ignored_yaml_and_invalid_plan(gate_dir: pytest.Pytester) -> None:
    gate_dir.makefile(".yml", workflow="name: ci\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n")
    gate_dir.makefile(".yaml", notes="tool: harness\nlist: [unclosed\n")
    gate_dir.makefile(".yaml", bad=PLAN.replace("plugin: toy", "plugin: nope"))
    result = gate_dir.runpytest_subprocess("--collect-only", "-q")
    out = result.stdout.str()
    assert [line for line in result.stdout.lines if line.startswith("plan.yaml::")] == [f"plan.yaml::{i}" for i in IDS]
    assert "workflow" not in out and "notes.yaml" not in out
    assert out.count("ERROR collecting") == 1
    result.stdout.fnmatch_lines(["*ERROR collecting bad.yaml*",
                                 "bad.yaml:5, key 'dataset.plugin': unknown dataset plugin 'nope' (available: *toy*)"])
    assert "Traceback" not in out and "PlanError" not in out
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_passing_gates_junit_fixtures_report_and_one_run(gate_dir: pytest.Pytester) -> None:
    gate_dir.makepyfile(test_user=USER_TESTS)
    gate_dir.makeconftest(FAKE_REPORT_CONFTEST)
    result = gate_dir.runpytest_subprocess("plan.yaml", "test_user.py", "--junitxml=junit.xml", "--harness-report")
    result.assert_outcomes(passed=7)
    assert result.ret == pytest.ExitCode.OK
    # four criteria and test_run_fixture share one run; test_run_fixture_error's override is a second plan
    dirs = run_dirs(gate_dir.path / "runs")
    assert len(dirs) == 2
    passing = next(d for d in dirs if (d / "report.pdf").exists())
    result.stdout.fnmatch_lines([
        "*- harness runs -*",
        f"plan.yaml: PASS (4/4 criteria passed) -> run directory: runs/{passing.name}",
        "plan.yaml (overrides: dataset.fail=\"data\"): run failed: toy data set: simulated unreadable file -> *"])
    cases = junit_cases(gate_dir.path / "junit.xml")
    assert set(cases) == {*(("plan.yaml", i) for i in IDS), *(("test_user", t) for t in
                                                                ("test_plan_fixture", "test_run_fixture",
                                                                 "test_run_fixture_error"))}
    properties = {p.get("name"): p.get("value") for p in cases["plan.yaml", IDS[1]].iter("property")}
    assert properties == {"harness_criterion": IDS[1], "harness_run_dir": f"runs/{passing.name}",
                          "harness_measured": "1.0", "harness_threshold": "0.6"}


def test_failing_gate_failed_run_k_selection_and_override(gate_dir: pytest.Pytester) -> None:
    (gate_dir.path / "crash.yaml").write_text(PLAN.replace("name: toy_plan", "name: crash_plan")
                                              .replace("  n: 30", "  n: 30\n  fail: data"))
    (gate_dir.path / "boom.yaml").write_text(PLAN.replace("name: toy_plan", "name: boom_plan")
                                             .replace("  n: 30", "  n: 30\n  fail: internal"))
    result = gate_dir.runpytest_subprocess("plan.yaml", "crash.yaml", "boom.yaml", "-k", "robust or clean_acc",
                                           "--harness-set", "acceptance.1.attack=shift_big", "--harness-set",
                                           "acceptance.1.epsilon=0.2", "--harness-out", "out",
                                           "--junitxml=j.xml")
    result.assert_outcomes(passed=1, failed=5, deselected=6)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = {d.name.split("-")[0]: d.name for d in run_dirs(gate_dir.path / "out")}
    assert set(out) == {"toy_plan", "crash_plan", "boom_plan"}  # each plan ran once for its two selected items
    gate = "shift_big[eps=0.2]::robust_accuracy>=0.60"  # a threshold above 1 is refused: a stronger attack fails it
    measured = (f"{gate}: measured 0.000, one-sided lower 95% bound 0.000 (Wilson score) < 0.60 (run directory: "
                f"out/{out['toy_plan']})")
    overrides = "acceptance.1.attack=shift_big acceptance.1.epsilon=0.2"
    crash = (f"the run of crash.yaml (overrides: {overrides}) failed: toy data set: simulated unreadable "
             f"file (run directory: out/{out['crash_plan']})")
    sections = [line.strip("_ ") for line in result.stdout.lines if line.startswith("___")]
    assert sections == [f"{gate} (plan.yaml)", "clean_accuracy>=0.65 (crash.yaml)", f"{gate} (crash.yaml)",
                        "clean_accuracy>=0.65 (boom.yaml)", f"{gate} (boom.yaml)"]
    assert {measured, f"clean_accuracy>=0.65: {crash}", f"{gate}: {crash}"} <= set(result.stdout.lines)
    # an internal error shows its traceback once, on the plan's first item; the others get one line
    errors = [line for line in result.stdout.lines if line.startswith("E") and line.endswith("simulated bug")]
    assert errors == ["E   RuntimeError: simulated bug"] and len(result.stdout.lines) < 150
    assert (f"{gate}: the run of boom.yaml (overrides: {overrides}) failed: RuntimeError: simulated bug "
            f"(run directory: out/{out['boom_plan']})") in result.stdout.lines
    cases = junit_cases(gate_dir.path / "j.xml")
    assert cases["plan.yaml", gate].find("failure").get("message") == measured  # named by the criterion id
    assert cases["plan.yaml", "clean_accuracy>=0.65"].find("failure") is None
    crashed = cases["crash.yaml", "clean_accuracy>=0.65"].find("failure")
    assert crashed.get("message") == f"clean_accuracy>=0.65: {crash}"


def test_xdist_summary_and_node_id_selection(gate_dir: pytest.Pytester) -> None:
    # node ids as pytest prints them select criteria; the worker's run reaches the controller's summary
    result = gate_dir.runpytest_subprocess("plan.yaml::shift[eps=0.004]::robust_accuracy>=0.60",
                                           "plan.yaml::naive::clean_auc", "-n", "1", "--dist", "loadfile")
    result.assert_outcomes(passed=2)
    dirs = run_dirs(gate_dir.path / "runs")
    assert len(dirs) == 1
    # the closing line counts the two selected criteria, and gives the run's own verdict beside them
    result.stdout.fnmatch_lines([f"plan.yaml: PASS (2/2 selected criteria passed; the run's verdict: PASS, 4/4) -> "
                                 f"run directory: runs/{dirs[0].name}"])


def test_verbose_lines_setup_duration_and_a_plan_needing_an_unset_variable(gate_dir: pytest.Pytester) -> None:
    (gate_dir.path / "needs_var.yaml").write_text(PLAN.replace("name: toy_plan", "name: var_plan")
                                                  .replace("  n: 30", "  n: 30\n  fail: ${HARNESS_TEST_UNSET}"))
    result = gate_dir.runpytest_subprocess("plan.yaml", "needs_var.yaml", "-v", "-rs", "--durations=0", "-vv")
    result.assert_outcomes(passed=4, skipped=1)
    verbose = [line for line in result.stdout.lines if " PASSED " in line]
    assert [line.split(" PASSED")[0] for line in verbose] == [f"plan.yaml::{i}" for i in IDS]
    assert not [line for line in result.stdout.lines if "::yaml::" in line or "]]" in line]
    # the plan runs once, as a setup cost of its first criterion; the criteria's own calls are instant
    durations = [line.split() for line in result.stdout.lines if line.split()[1:2] in (["setup"], ["call"])]
    setups = {d[2]: float(d[0].rstrip("s")) for d in durations if d[1] == "setup"}
    calls = {d[2]: float(d[0].rstrip("s")) for d in durations if d[1] == "call"}
    assert max(setups, key=setups.get) == f"plan.yaml::{IDS[0]}" and max(calls.values()) < 0.5
    result.stdout.fnmatch_lines(["SKIPPED [[]1] needs_var.yaml: ${HARNESS_TEST_UNSET} is not set (line *, key "
                                 "'dataset.fail'): set HARNESS_TEST_UNSET to run this plan's gates"])
    # stdout is a pipe here, as in CI: the run's progress lines reach the log as `harness run` prints them
    result.stderr.fnmatch_lines(["harness: dataset ...", "harness: naive: clean test done: *"], consecutive=False)


# -- helpers, in process ---------------------------------------------------------------------------------------------
def test_split_criterion_id_matches_pytest_selection_syntax() -> None:
    assert split_criterion_id("clean_accuracy>=0.80") == ([], "clean_accuracy>=0.80")
    assert split_criterion_id("pgd_linf[eps=0.004]::robust_accuracy>=0.60") == (
        [], "pgd_linf[eps=0.004]::robust_accuracy>=0.60")
    assert split_criterion_id("hardened::pgd[eps=0.004]::robust_accuracy>=0.60") == (
        ["hardened"], "pgd[eps=0.004]::robust_accuracy>=0.60")
    assert split_criterion_id("change::fmn::median_min_epsilon>=0") == (["change", "fmn"], "median_min_epsilon>=0")


def test_failure_message_shows_measured_threshold_and_run_directory() -> None:
    def entry(cid: str, op: str, threshold: float, measured: float | None, note: str | None = None):
        return CriterionResult(id=cid, metric="m", model="naive", attack=None, epsilon=None, op=op,
                               threshold=threshold, measured=measured, passed=False, note=note)

    assert failure_message(entry("pgd_linf[eps=0.004]::robust_accuracy>=0.60", ">=", 0.6, 0.2314), "runs/ct-1") == (
        "pgd_linf[eps=0.004]::robust_accuracy>=0.60: measured 0.231 < 0.60 (run directory: runs/ct-1)")
    assert failure_message(entry("x<=0.0005", "<=", 0.0005, 0.00071), "r") == (
        "x<=0.0005: measured 0.00071 > 0.0005 (run directory: r)")
    assert failure_message(entry("auc", ">=", 0.9, None, "not measured (undefined)"), "r") == (
        "auc: not measured (undefined); required >= 0.90 (run directory: r)")


def test_settings_to_overrides() -> None:
    assert settings_to_overrides(["seed=1"], {"model__epochs": 2, "attacks.pgd_linf.steps": 5, "flag": True,
                                              "epsilons": [0.004], "name": "a b"}) == [
        "seed=1", "model.epochs=2", "attacks.pgd_linf.steps=5", "flag=true", "epsilons=[0.004]", 'name="a b"']


@pytest.mark.parametrize("text, expected", [
    ("harness: 1\nname: x\n", True),
    ("harness: [unclosed\n", True),  # clearly a plan that does not parse: collected, so its error is shown
    ("name: ci\non: [push]\n", False),
    ("tool: harness\n", False),
    ("key: [unclosed harness\n", False),
    ("- harness\n- other\n", False),
])
def test_is_plan_file(tmp_path: Path, text: str, expected: bool) -> None:
    path = tmp_path / "some.yaml"
    path.write_text(text)
    assert is_plan_file(path) is expected


def test_resolved_plan_in_a_run_directory_is_not_collected(tmp_path: Path) -> None:
    (tmp_path / "plan.resolved.yaml").write_text("harness: 1\n")
    assert is_plan_file(tmp_path / "plan.resolved.yaml")
    (tmp_path / "manifest.json").write_text("{}")
    assert not is_plan_file(tmp_path / "plan.resolved.yaml")


def test_render_pdf_reports_missing_or_failing_renderer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "harness.report", None)
    assert "--harness-report: the report renderer is not available (ModuleNotFoundError" in render_pdf(tmp_path)
    broken = types.ModuleType("harness.report")
    broken.render_report = lambda run_dir: 1 / 0
    monkeypatch.setitem(sys.modules, "harness.report", broken)
    assert render_pdf(tmp_path) == ("--harness-report: rendering the PDF report failed: "
                                    "ZeroDivisionError: division by zero")
    broken.render_report = lambda run_dir: None
    assert render_pdf(tmp_path) is None


# -- the results view ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_results(tmp_path_factory: pytest.TempPathFactory) -> RunResults:
    registry = fake_registry()
    plan = load_plan_text(PLAN, registry=registry)
    out = tmp_path_factory.mktemp("runs")
    run = Runner(plan, registry, RunConfig(out_root=out, progress=False, echo=lambda m: None)).run()
    view = run  # the runner returns the RunResults view
    assert RunResults.load(run.run_dir).raw == view.raw
    return view


def test_results_view_is_typed(toy_results: RunResults) -> None:
    r = toy_results
    assert r.status == "passed" and r.plan_name == "toy_plan" and r.passed
    assert r.verdict is not None and (r.verdict.n_passed, r.verdict.n_criteria) == (4, 4)
    assert r.model_roles == ("naive",) and r.attacks() == ("shift", "shift_big")
    clean = r.clean["naive"]
    assert clean.accuracy == 1.0 and clean.roc_auc == 1.0 and clean.n == 10 and len(clean.confusion_matrix) == 2
    assert [p.epsilon for p in r.points("shift")] == [0.004, 0.01]
    assert r.robust_accuracy("shift", 0.004) == 1.0 and r.point("shift_big", 0.2).attack_success_rate == 1.0
    assert r.point("shift", 0.004).epsilon_native == "0.4 HU"
    assert r.min_epsilon("shift") is None
    assert [c.id for c in r.criteria] == IDS and all(c.passed for c in r.criteria)
    assert r.criterion(IDS[1]).threshold == 0.6 and r.criterion(IDS[1]).measured == 1.0


def test_results_view_samples(toy_results: RunResults) -> None:
    shift = toy_results.samples_for("shift")
    assert len(shift) == 10 and len(toy_results.samples) == 20
    first = shift[0]
    assert first.model == "naive" and first.clean_correct and first.min_epsilon is None
    assert dict(first.success) == {0.004: False, 0.01: False}
    assert not first.fooled_at(0.004)
    assert all(s.fooled_at(0.2) for s in toy_results.samples_for("shift_big"))
    with pytest.raises(KeyError, match="did not run at epsilon 0.2"):
        first.fooled_at(0.2)


def test_results_view_is_read_only_and_names_what_is_missing(toy_results: RunResults) -> None:
    with pytest.raises(TypeError):
        toy_results.raw["status"] = "tampered"  # type: ignore[index]
    with pytest.raises(AttributeError):
        toy_results.verdict.passed = False  # type: ignore[misc, union-attr]
    with pytest.raises(KeyError, match="attack 'pgd' was not run on the naive model"):
        toy_results.robust_accuracy("pgd", 0.004)
    with pytest.raises(KeyError, match=r"did not run at epsilon 0.5 \(grid: 0.004, 0.01\)"):
        toy_results.robust_accuracy("shift", 0.5)
    with pytest.raises(KeyError, match="model 'hardened' was not evaluated"):
        toy_results.clean_metrics("hardened")
    with pytest.raises(KeyError, match="no criterion 'nope'"):
        toy_results.criterion("nope")
    assert math.isfinite(toy_results.clean["naive"].accuracy or math.nan)
