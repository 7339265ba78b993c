"""The plugin contract: registration-time validation against each kind's Protocol, and the core's data checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import fake_plugins
import numpy as np
import pytest
import torch

from harness.data.loading import load_dataset
from harness.errors import DataError, HarnessError, PluginContractError
from harness.registry.contracts import (
    AttackPlugin,
    DatasetBundle,
    DatasetContext,
    DatasetPlugin,
    ModelPlugin,
    TensorSplit,
)
from harness.registry.hookspecs import hookimpl
from harness.registry.manager import KINDS, Registry, make_plugin_manager
from harness.registry.validation import contract_problems, protocol_members
from harness.storage.deid import hash_id

CONTEXT = DatasetContext(seed=0, base_dir=Path("."), cache_dir=Path("."))


@dataclass
class NoParams:
    """No parameters."""


class GoodAttack:
    name, norm, kind, description, Params = "good", "linf", "fixed_epsilon", "a good attack", NoParams
    iterative, requires_gradients = False, True

    def strengthen(self, params, steps_factor, restarts):
        return None

    def run(self, model, images, labels, epsilons, params):
        return None


def registry_with(*objects, kind: str = "attack") -> Registry:
    """A registry of the fake plugins plus `objects` registered through a throwaway plugin module."""
    hook = KINDS[kind].hook

    class Extra:
        pass

    extra = Extra()
    setattr(extra, hook, hookimpl(lambda: list(objects)))
    extra.__name__ = "extra_plugins"
    return Registry(make_plugin_manager(load_entry_points=False, extra=[fake_plugins, extra]))


def test_every_builtin_plugin_meets_its_contract():
    from harness.registry.manager import default_registry

    registry = default_registry()
    for entry in registry.all():
        assert contract_problems(entry.obj, KINDS[entry.kind].protocol) == [], entry


def test_a_good_plugin_registers():
    assert registry_with(GoodAttack()).has("attack", "good")


@pytest.mark.parametrize("breakage, phrase", [
    ({"norm": None}, "no attribute 'norm'"),
    ({"norm": "Linf"}, "'norm' must be one of 'linf', 'l2', got 'Linf'"),
    ({"kind": "sometimes"}, "'kind' must be one of"),
    ({"Params": dict}, "'Params' must be a dataclass"),
    ({"description": ""}, "'description' must be a non-empty string"),
    ({"run": None}, "no method 'run()'"),
    ({"run": lambda images: None}, "'run()' must accept (model, images, labels, epsilons, params)"),
    ({"iterative": "yes"}, "'iterative' must be true or false, got 'yes'"),
    ({"strengthen": None}, "no method 'strengthen()'"),
])
def test_a_broken_plugin_is_refused_in_one_line_naming_provider_and_problem(breakage, phrase):
    members = {k: v for k, v in vars(GoodAttack).items() if not k.startswith("__")}
    members.update(breakage)
    broken = type("Broken", (), {k: v for k, v in members.items() if v is not None})()
    with pytest.raises(PluginContractError) as info:
        registry_with(broken)
    message = info.value.one_line()
    assert "\n" not in str(info.value)
    assert "extra_plugins" in message and "attack" in message and phrase in message
    assert isinstance(info.value, HarnessError) and info.value.exit_code == 2


def test_protocol_members_are_read_from_the_protocols():
    attributes, methods = protocol_members(AttackPlugin)
    assert {"name", "norm", "kind", "description", "Params"} <= set(attributes)
    assert "run" in methods
    assert "identifiers" in protocol_members(DatasetPlugin)[0]
    assert "provide" in protocol_members(ModelPlugin)[1]


# ------------------------------------------------------------------------------------------------ data


def bundle_of(groups: dict[str, list[str]], provenance: dict | None = None) -> DatasetBundle:
    def split(ids: list[str]) -> TensorSplit:
        n = len(ids)
        return TensorSplit(torch.zeros(n, 1, 2, 2), np.zeros(n, dtype=int), [f"{g}/img" for g in ids], ids)

    return DatasetBundle("toy", ["a", "b"], {name: split(ids) for name, ids in groups.items()},
                         {"content_sha256": "a" * 64, **(provenance or {})})


class Source:
    name, description, Params, identifiers = "source", "ids from the data", NoParams, "from_source"

    def __init__(self, bundle):
        self.bundle = bundle

    def load(self, params, context):
        return self.bundle


def test_ids_from_the_source_leave_the_core_only_as_keyed_hashes():
    raw = {"train": ["Jane Doe", "John Roe"], "val": ["Ann Poe"], "test": ["Bob Moe"]}
    bundle = load_dataset(Source(bundle_of(raw)), NoParams(), CONTEXT, "secret")
    for name, groups in raw.items():
        assert bundle.splits[name].group_ids == [hash_id(f"patient:{g}", "secret") for g in groups]
        assert bundle.splits[name].sample_ids == [hash_id(f"sample:{g}/img", "secret") for g in groups]
    assert not {g for ids in raw.values() for g in ids} & {i for s in bundle.splits.values() for i in s.group_ids}


def test_synthetic_ids_are_kept():
    plugin = Source(bundle_of({"train": ["p1"], "val": ["p2"], "test": ["p3"]}))
    plugin.identifiers = "synthetic"
    assert load_dataset(plugin, NoParams(), CONTEXT, "secret").splits["test"].group_ids == ["p3"]


def test_a_patient_in_two_splits_is_refused_naming_only_the_hashed_id():
    bundle = bundle_of({"train": ["Jane Doe", "p2"], "val": ["p3"], "test": ["Jane Doe"]}, {"manifest": "m.csv"})
    with pytest.raises(DataError) as info:
        load_dataset(Source(bundle), NoParams(), CONTEXT, "secret")
    message = str(info.value)
    assert "Jane" not in message
    assert f"source: m.csv: patient {hash_id('patient:Jane Doe', 'secret')} appears in both the train and test" \
        in message


@pytest.mark.parametrize("provenance, phrase", [({"content_sha256": None}, "content_sha256"),
                                                ({"content_sha256": "abc"}, "content_sha256")])
def test_a_bundle_without_a_content_hash_is_refused(provenance, phrase):
    with pytest.raises(PluginContractError, match=phrase):
        load_dataset(Source(bundle_of({"train": ["a"], "val": ["b"], "test": ["c"]}, provenance)), NoParams(),
                     CONTEXT, "secret")


def test_a_plugin_returning_something_else_is_refused():
    with pytest.raises(PluginContractError, match="returned dict, not a DatasetBundle"):
        load_dataset(Source({}), NoParams(), CONTEXT, "secret")


def test_the_public_api_exports_what_plugin_authors_need_without_importing_torch_eagerly():
    import subprocess
    import sys

    code = ("import sys, harness; assert 'torch' not in sys.modules, 'import harness loaded torch'; "
            "from harness import hookimpl, DatasetBundle, AttackOutput, load_dataset, contract_problems, RunResults; "
            "print(sorted(harness.__all__))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "hookimpl" in proc.stdout and "RunResults" in proc.stdout
