"""The README's examples must be real: every node id it shows exists in the shipped plan it names."""

from __future__ import annotations

import re

from support import REPO

from harness.plan.schema import load_plan

README_OVERRIDES = ("acceptance.2.min=0.70",)
NODE_ID = re.compile(r"(specs/[\w/]+\.yaml)::(\S+?)(?=\s|$|\")")


def readme_node_ids() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return sorted(set(NODE_ID.findall(text)))


def test_the_readme_shows_node_ids():
    assert len(readme_node_ids()) >= 4


def test_every_node_id_in_the_readme_is_a_criterion_of_the_plan_it_names():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for plan_file, criterion_id in readme_node_ids():
        ids = {c.id for c in load_plan(REPO / plan_file).acceptance}
        for override in README_OVERRIDES:  # the README's -v example raises one bar with --harness-set
            assert f"--harness-set {override}" in readme
            ids |= {c.id for c in load_plan(REPO / plan_file, [override]).acceptance}
        assert criterion_id in ids, f"README shows {plan_file}::{criterion_id}, the plan has {sorted(ids)}"
