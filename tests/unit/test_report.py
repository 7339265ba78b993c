"""The PDF/HTML validation report and the saved adversarial examples it shows."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
import torch
from report_layout import (
    MAX_PAGES,
    MIN_FILL,
    figure_axis_labels,
    figures_without_units,
    ink_in_margins,
    orphaned_headings,
    read_layout,
    short_pages,
    tool,
    words_past_margins,
)
from synthetic_run import ATTACKS, write_synthetic_run
from torch import nn

from harness.attacks.example_images import choose_attack, closest_epsilon, save_examples
from harness.errors import HarnessError
from harness.plan.schema import AttackSpec
from harness.registry.contracts import AttackOutput, TensorSplit
from harness.report import render_report
from harness.report.context import build_sections
from harness.report.load import load_report
from harness.report.text import reduce_command, verbatim

INJECTED = "<script>alert(1)</script> and <b>bold</b>"


def _section(rendered: dict, heading: str, until: str | None = None) -> str:
    """One section of the layout text (after the cover, whose contents list repeats the headings), one line."""
    body = rendered["body"]
    start = body.index(heading)
    end = body.index(until, start) if until else len(body)
    return " ".join(body[start:end].split())


def heading(rendered: dict, section: str) -> str:
    """A section's numbered heading ('6. Results') by module name: the numbers move as sections are added."""
    return rendered["headings"][section]


def following(rendered: dict, section: str) -> str:
    """The heading after a section's, where its text ends."""
    headings = list(rendered["headings"])
    return rendered["headings"][headings[headings.index(section) + 1]]


def _squash(text: str) -> str:
    """Text without whitespace or zero-width spaces, so wrapped table cells still match."""
    return re.sub(r"[\s\u200b]+", "", text)


def _cover_and_body(text: str, run_dir) -> dict[str, str]:
    """The cover (it may run onto page 2) and the body from the first numbered heading on."""
    first = next(s.heading for s in build_sections(load_report(run_dir)) if s.heading)
    start = text.index(first, text.rindex("· p. "))  # after the contents list, whose entries are numbered too
    return {"cover": text[:start], "body": text[start:]}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    run_dir = write_synthetic_run(tmp_path_factory.mktemp("run") / "synthetic-run", n_test=40, n_eps=5,
                                  description=INJECTED, intended_use=INJECTED, criterion_description=INJECTED,
                                  warnings=["naive/fgsm at eps=0.001: 1 adversarial examples were outside their "
                                            "epsilon bound and were not counted"])
    html_path, pdf_path = render_report(run_dir)
    text = subprocess.run([tool("pdftotext"), "-layout", str(pdf_path), "-"], check=True, capture_output=True,
                          text=True).stdout
    raw = subprocess.run([tool("pdftotext"), str(pdf_path), "-"], check=True, capture_output=True, text=True).stdout
    return {"run_dir": run_dir, "html": html_path.read_text(encoding="utf-8"), "pdf": pdf_path, "text": text,
            "raw": raw, "layout": read_layout(pdf_path, tmp_path_factory.mktemp("pages")),
            "pages": text.split("\f"), **_cover_and_body(text, run_dir),
            "headings": {s.name: s.heading for s in build_sections(load_report(run_dir)) if s.heading},
            "results": json.loads((run_dir / "results.json").read_text()),
            "manifest": json.loads((run_dir / "manifest.json").read_text())}


def test_report_files_are_written_beside_the_results(rendered):
    run_dir = rendered["run_dir"]
    assert (run_dir / "report.html").is_file() and (run_dir / "report.pdf").is_file()
    assert rendered["pdf"].read_bytes().startswith(b"%PDF-")
    assert not list(run_dir.glob(".*.tmp")), "atomic writes leave no temporary files"


def test_cover_states_the_verdict_and_identity(rendered):
    cover = rendered["cover"]
    verdict = rendered["results"]["verdict"]
    assert verdict["passed"] is False
    assert "FAIL" in cover and "PASS" not in cover
    assert f"{verdict['n_passed']} of {verdict['n_criteria']} acceptance criteria passed" in cover
    assert "synthetic_ct" in cover and "e1e1e1e1e1e1" in cover and "cdcdcdcdcdcd" in cover
    assert "0.1.0" in cover and "2026-01-15" in cover


def test_sections_appear_in_order_after_the_cover(rendered):
    body = rendered["body"]
    headings = list(rendered["headings"].values())  # in the order of harness.report.sections.SECTIONS
    assert {"summary", "criteria", "results", "examples", "environment", "approval", "appendix"} <= set(
        rendered["headings"])
    positions = [body.find(heading) for heading in headings]
    assert all(p >= 0 for p in positions), dict(zip(headings, positions, strict=True))
    assert positions == sorted(positions)


def test_summary_gives_the_headline_at_the_cutoff(rendered):
    naive = rendered["results"]["models"]["naive"]["attacks"]["pgd_linf"]["points"]
    at_cutoff = next(p for p in naive if p["epsilon"] == 0.004)
    summary = _section(rendered, heading(rendered, "summary"), following(rendered, "summary"))
    assert "At ε = 0.004 (6 HU)" in summary
    assert f"{100 * at_cutoff['robust_accuracy']:.1f}% under pgd_linf" in summary


def test_every_criterion_row_is_in_the_table(rendered):
    raw = rendered["raw"][rendered["raw"].rindex("· p. "):]  # after the contents list
    section = raw[raw.index(heading(rendered, "criteria")):raw.index(following(rendered, "criteria"))]
    lines = [line.replace("\u200b", "").split() for line in
             rendered["body"].split(heading(rendered, "criteria"), 1)[1]
             .split(following(rendered, "criteria"))[0].splitlines()]
    for criterion in rendered["results"]["criteria"]:
        assert _squash(criterion["id"]) in _squash(section), criterion["id"]
        verdict = "PASS" if criterion["passed"] else "FAIL"
        row = [t for t in lines if t and len(t[0]) > 6 and criterion["id"].startswith(t[0])]
        assert len(row) == 1 and row[0][-1] == verdict, (criterion["id"], row)
        assert f"{criterion['threshold']:g}" in row[0], row[0]


def test_every_attack_parameter_is_shown_verbatim(rendered):
    plan_page = _section(rendered, heading(rendered, "plan_summary"), following(rendered, "plan_summary"))
    for attack_id, spec in ATTACKS.items():
        assert attack_id in plan_page
        for key, value in spec["params"].items():
            assert key in plan_page, key
            assert verbatim(value) in plan_page, (key, value)
    assert "0.004 = 6 HU" in plan_page  # epsilon in [0,1] units and in native units
    assert "adversarial_training" in plan_page and "mix_clean" in plan_page  # the defence settings


def test_environment_lists_versions_device_and_seeds(rendered):
    env = _section(rendered, heading(rendered, "environment"), following(rendered, "environment"))
    for library, version in rendered["manifest"]["versions"].items():
        assert library in env and version in env, library
    raw = _squash(rendered["raw"].split(heading(rendered, "environment"))[-1]
                  .split(following(rendered, "environment"))[0])  # columns read in order
    assert _squash("NVIDIA H100 80GB HBM3") in raw and "12.4" in env and "20221" in env


def test_figures_are_embedded(rendered):
    html = rendered["html"]
    # 1 accuracy figure (a panel per attack) + 1 minimal-epsilon histogram + 2 models × 3 examples × 3 panels
    assert html.count('<img src="data:image/png;base64,') == 1 + 1 + 18
    listing = subprocess.run([tool("pdfimages"), "-list", str(rendered["pdf"])], check=True,
                             capture_output=True, text=True).stdout.splitlines()
    assert len(listing) - 2 >= 1 + 1 + 18  # two header lines


def test_free_text_from_the_plan_is_escaped(rendered):
    html = rendered["html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script" not in html and "<b>bold</b>" not in html
    assert html.count("&lt;script&gt;") >= 3  # description, intended use and the criterion description
    assert "<script>alert(1)</script>" in rendered["text"]  # shown to the reader as text


def test_no_machine_paths_leak_into_the_report(rendered):
    html, text = rendered["html"], rendered["text"]
    for secret in ("/home/qa", "/opt/venv", "/srv/runs", str(rendered["run_dir"]), "executable"):
        assert secret not in html and secret not in text, secret
    assert "harness run synthetic_ct.yaml --out runs" in _section(rendered, heading(rendered, "environment"))


def test_warnings_and_susceptibility_analysis(rendered):
    text = _section(rendered, heading(rendered, "results"))
    assert "1 adversarial examples were outside their epsilon bound" in text
    assert "weights were loaded from the harness cache" in text
    assert "Removing the most susceptible images" in text
    rows = [line.split(",") for line in (rendered["run_dir"] / "samples.csv").read_text().splitlines()]
    header, body = rows[0], rows[1:]
    col = header.index("min_epsilon")
    naive_fmn = [r for r in body if r[0] == "naive" and r[1] == "fmn_linf"]
    removed = sum(1 for r in naive_fmn if float(r[col]) < 0.004)
    assert re.search(rf"naive +fmn_linf +{len(naive_fmn)} +{removed} ", text), text[text.find("Removing"):][:900]


# ------------------------------------------------------------------------------------- visual regression
SYNTHETIC_MAX_PAGES = MAX_PAGES - 2  # attacks with a hardened model and its paired comparison, no corruptions (10
# pages now); a branch that adds a section to the synthetic run raises this by its pages in the same commit


def test_the_report_fits_its_page_budget_and_fills_its_pages(rendered):
    layout = rendered["layout"]
    assert 8 <= layout.n_pages <= SYNTHETIC_MAX_PAGES, layout.n_pages
    assert len(layout.page_images) == layout.n_pages  # every page converted to PNG
    assert not short_pages(layout, MIN_FILL), "mostly blank pages (page: fill)"


def test_appendix_prints_the_plan_file_in_utf8_with_its_comments(rendered):
    appendix = rendered["raw"].split("Appendix A. Test plan as written")[-1]
    assert "# Synthetic study of a lung-nodule classifier on 64×64 CT patches (ε grid around 0.004 = 6 HU)." in appendix
    assert "\\xD7" not in appendix and "\\u03B5" not in appendix  # no YAML escapes


def test_no_text_or_drawing_runs_past_the_margins(rendered):
    layout = rendered["layout"]
    assert not words_past_margins(layout)
    assert not ink_in_margins(layout)


def test_no_heading_is_left_at_a_page_bottom(rendered):
    assert not orphaned_headings(rendered["layout"], rendered["html"])


def test_every_figure_has_axis_labels_with_units(rendered):
    assert not figures_without_units(rendered["html"])
    figures = figure_axis_labels(rendered["html"])
    assert len(figures) >= 2  # at least the accuracy panels and the minimal-ε histogram
    assert any(labels.count("accuracy (%)") == len(ATTACKS) and labels.count("ε (HU)") == len(ATTACKS)
               for labels in figures)  # one panel per attack, each with both axes


def test_missing_results_is_a_one_line_harness_error(tmp_path):
    with pytest.raises(HarnessError) as info:
        render_report(tmp_path)
    message = info.value.one_line()
    assert str(tmp_path / "results.json") in message and "\n" not in str(info.value)


def test_unreadable_manifest_is_a_harness_error(tmp_path):
    run_dir = write_synthetic_run(tmp_path / "run", n_test=8, n_eps=2, hardened=False, examples=False)
    (run_dir / "manifest.json").write_text("{not json")
    with pytest.raises(HarnessError, match="manifest.json"):
        render_report(run_dir)
    assert not (run_dir / "report.pdf").exists()


def test_partial_run_renders_without_optional_parts(tmp_path):
    """No defence, no examples, no samples.csv, no verdict yet: the report still renders and says so."""
    run_dir = write_synthetic_run(tmp_path / "run", n_test=8, n_eps=2, hardened=False, examples=False)
    (run_dir / "samples.csv").unlink()
    results = json.loads((run_dir / "results.json").read_text())
    results.update(status="running", verdict=None, criteria=[])
    (run_dir / "results.json").write_text(json.dumps(results))
    html_path, _ = render_report(run_dir, page_size="letter")
    html = html_path.read_text()
    # recorded as running but no process holds the run directory: it was killed, and the report says so
    assert "INTERRUPTED" in html and "the process ended without recording why" in html and "size: letter" in html
    assert "No adversarial examples were saved" in html and "samples.csv is missing" in html


def test_command_paths_are_reduced_to_file_names():
    argv = ["/opt/venv/bin/harness", "run", "/home/qa/p.yaml", "--set", "dataset.root=/data/ct", "--out", "runs"]
    assert reduce_command(argv) == "harness run p.yaml --set dataset.root=ct --out runs"


# ---------------------------------------------------------------------------------------------- examples


class MeanThreshold(nn.Module):
    """Class 1 when the mean pixel exceeds 0.55."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(1, keepdim=True) - 0.55
        return torch.cat([-50 * m, 50 * m], dim=1)


class PushAcross:
    """Moves every pixel by epsilon against the label: the exact worst case for MeanThreshold."""

    name, norm, kind, description = "push", "linf", "fixed_epsilon", "push pixels by epsilon"
    iterative, requires_gradients = True, False

    def strengthen(self, params, steps_factor, restarts):
        return None

    def __init__(self) -> None:
        self.calls: list[list[float]] = []

    def run(self, model, images, labels, epsilons, params):
        self.calls.append(list(epsilons))
        sign = (1 - 2 * labels).float().view(-1, 1, 1, 1)
        return AttackOutput([(images + sign * eps).clamp(0, 1) for eps in epsilons])


class OneStep(PushAcross):
    """The same push, declared single-step (the examples prefer an iterative attack)."""

    name, iterative = "one_step", False


class OneAttackRegistry:
    def __init__(self, attack, *others) -> None:
        self.attacks = {a.name: a for a in (attack, *others)}

    def get(self, kind: str, name: str):
        assert kind == "attack" and name in self.attacks
        return self.attacks[name]


def _split() -> TensorSplit:
    # label 0 at means 0.40/0.548/..., label 1 at 0.70/0.552/...; 0.548 and 0.552 flip at ε ≥ 0.002;
    # sample 8 (label 0, mean 0.60) is misclassified without attack.
    means = [0.40, 0.70, 0.42, 0.72, 0.548, 0.552, 0.41, 0.71, 0.60, 0.73, 0.43, 0.74]
    labels = np.arange(len(means)) % 2
    images = torch.tensor(means, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()
    return TensorSplit(images, labels, [f"id-{i}" for i in range(len(means))], [f"p{i}" for i in range(len(means))])


def _specs() -> list[AttackSpec]:
    return [AttackSpec("fmn_linf", "push", None, [0.004], "linf", "minimal"),
            AttackSpec("other", "one_step", None, [0.001, 0.01], "linf", "fixed_epsilon"),
            AttackSpec("pgd_linf", "push", None, [0.003, 0.01], "linf", "fixed_epsilon")]


def test_save_examples_attacks_chosen_images_at_the_closest_epsilon(tmp_path):
    attack = PushAcross()
    path = save_examples(tmp_path, "naive", MeanThreshold(), _split(), _specs(), OneAttackRegistry(attack, OneStep()),
                         torch.device("cpu"), batch_size=5, n_examples=3, epsilon=0.004, seed=7)
    assert path == tmp_path / "examples_naive.npz"
    assert attack.calls and all(call == [0.003] for call in attack.calls)  # pgd_linf, grid value nearest 0.004
    with np.load(path, allow_pickle=False) as data:
        assert str(data["attack_id"]) == "pgd_linf" and float(data["epsilon"]) == 0.003
        assert str(data["role"]) == "naive"
        assert data["clean"].shape == data["adversarial"].shape == (3, 1, 4, 4)
        # the two images the attack flips come first (one per class), then a clean-correct one
        assert list(data["sample_ids"]) == ["id-4", "id-5", "id-0"]
        assert list(data["labels"]) == [0, 1, 0]
        assert list(data["clean_pred"]) == list(data["labels"])
        assert list(data["adv_pred"]) == [1, 0, 0]
        assert np.all(data["clean_conf"] > 0.5) and np.all(data["adv_conf"] >= 0.5)
        assert np.abs(data["adversarial"] - data["clean"]).max() <= 0.003 + 1e-6
        assert data["within_bound"].all()
        first = {key: data[key].copy() for key in data}
    again = save_examples(tmp_path / "again", "naive", MeanThreshold(), _split(), _specs(),
                          OneAttackRegistry(PushAcross(), OneStep()), torch.device("cpu"), 5, 3, 0.004, 7)
    with np.load(again, allow_pickle=False) as data:
        assert all(np.array_equal(first[key], data[key]) for key in first)


def test_save_examples_needs_a_fixed_epsilon_attack(tmp_path):
    minimal_only = [AttackSpec("fmn_linf", "push", None, [0.004], "linf", "minimal")]
    assert save_examples(tmp_path, "naive", MeanThreshold(), _split(), minimal_only, OneAttackRegistry(PushAcross()),
                         torch.device("cpu"), 4, 3, 0.004, 0) is None
    assert not list(tmp_path.iterdir())


def test_attack_choice_prefers_iterative_then_linf_fixed():
    registry = OneAttackRegistry(PushAcross(), OneStep())
    specs = _specs()
    assert choose_attack(specs, registry).id == "pgd_linf"  # iterative first, by capability, though listed last
    assert choose_attack(specs[:2], registry).id == "other"
    l2 = AttackSpec("pgd_l2", "push", None, [0.5], "l2", "fixed_epsilon")
    assert choose_attack([l2, specs[1]], registry).id == "other" and choose_attack([l2], registry).id == "pgd_l2"
    assert closest_epsilon([0.001, 0.002, 0.008], 0.004) == 0.002


# ---------------------------------------------------------------------------------------------- sections


def test_every_section_has_its_template():
    import importlib.resources

    from harness.report.context import section_name
    from harness.report.sections import SECTIONS

    templates = importlib.resources.files("harness_reports") / "templates" / "sections"
    for module in SECTIONS:
        assert (templates / f"{section_name(module)}.html").is_file(), module.__name__
        assert hasattr(module, "TITLE") and callable(module.build), module.__name__


def test_sections_are_numbered_in_order_and_parts_and_empty_sections_are_not(tmp_path):
    import types

    from harness.report.sections import appendix, cover, scope, summary

    def section(name: str, title: str | None, context: dict | None) -> types.ModuleType:
        module = types.ModuleType(f"team_sections.{name}")
        module.TITLE, module.build = title, lambda report: context
        return module

    report = load_report(write_synthetic_run(tmp_path / "run", n_test=8, n_eps=2, hardened=False, examples=False))
    built = build_sections(report, (cover, summary, section("subgroups", "Subgroups", {"rows": []}),
                                    section("ci_part", None, {}), section("corruptions", "Corruptions", None), scope,
                                    appendix))
    assert [(s.name, s.heading) for s in built] == [
        ("cover", None), ("summary", "1. Summary"), ("subgroups", "2. Subgroups"), ("ci_part", None),
        ("scope", "3. Intended use and scope"), ("appendix", "Appendix A. Test plan as written")]
    assert [s.anchor for s in built][-1] == "appendix" and built[2].template == "sections/subgroups.html"


def test_indicator_explanations_are_shown_when_a_check_has_them(tmp_path):
    from harness.results.model import IndicatorCheck, Indicators, ResultsDocument

    run_dir = write_synthetic_run(tmp_path / "run", n_test=8, n_eps=2, hardened=False, examples=False)
    document = ResultsDocument.from_json(json.loads((run_dir / "results.json").read_text()))
    check = IndicatorCheck("noise_vs_attack", "Random noise is much weaker than the attack.", False, 0.5, 0.2,
                           "noise fools 50%", explanation="Noise fooling half as many images as the attack "
                           "suggests masked gradients.", flipped_by="uniform noise draw 3")
    naive = document.model("naive")
    document = document.with_model("naive", type(naive)(naive.weights_sha256, naive.clean, naive.attacks,
                                                        Indicators(False, (check,), ("noise",), 8, "8 images")))
    (run_dir / "results.json").write_text(json.dumps(document.to_json()))
    from harness.report.context import build_context
    from harness.report.render import render_html

    html = render_html(build_context(load_report(run_dir)))  # the HTML is enough: no PDF layout
    assert "Attack-failure indicators" in html and "NOT CREDIBLE" in html
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "suggests masked gradients." in text and "flipped by: uniform noise draw 3" in text


def test_preview_puts_the_chosen_pages_side_by_side(rendered, tmp_path):
    from PIL import Image

    from harness.report.preview import GAP, main

    out = tmp_path / "preview.png"
    assert main([str(rendered["run_dir"]), str(out), "--pages", "1", "3", "--dpi", "20"]) == 0
    page_width, page_height = (round(side / 72 * 20) for side in rendered["layout"].page_sizes[0])
    with Image.open(out) as image:
        assert abs(image.width - (2 * page_width + 3 * GAP)) <= 2 and abs(image.height - (page_height + 2 * GAP)) <= 2
