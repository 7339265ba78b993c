"""Non-finite values never reach the weight cache: training stops on a NaN/Inf loss; a cached NaN file is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_models import FAST, Recorder, _context, _params, _toy_dataset

from harness.errors import ModelError
from harness_plugins.models import providers, training
from harness_plugins.models.weights import state_dict_bytes, state_dict_sha256


def nan_dataset():
    dataset = _toy_dataset("toy-with-nan")
    dataset.splits["train"].images[5, 0, 3, 3] = float("nan")
    return dataset


def test_a_nan_loss_stops_training_and_writes_no_cache_entry(tmp_path):
    with pytest.raises(ModelError, match=r"train: the training loss is nan at epoch 1, batch \d+; training stopped "
                                         "and no weights were cached"):
        providers.TrainProvider().provide(_params(training.TrainParams, **FAST), _context(nan_dataset(), tmp_path))
    assert not list((tmp_path / "models").glob("*.pt")) and not list((tmp_path / "models").glob("*.json"))


def test_non_finite_weights_are_never_written_to_the_cache(tmp_path):
    state = {"w": torch.tensor([1.0, float("inf")])}
    with pytest.raises(ModelError, match="hold NaN or Inf"):
        training.save_cache(tmp_path, "k" * 64, state_dict_bytes(state), {"weights_sha256": "x"})
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_a_cached_all_nan_entry_is_refused_removed_and_retrained(tmp_path):
    params, dataset = _params(training.TrainParams, **FAST), _toy_dataset("toy-nan-cache")
    recorder = Recorder()
    first = providers.TrainProvider().provide(params, _context(dataset, tmp_path, recorder))
    key = first.provenance["cache_key"]
    weights_path, record_path = training.cache_paths(tmp_path, key)
    poisoned = {name: torch.full_like(t, float("nan")) if t.is_floating_point() else t
                for name, t in torch.load(weights_path, weights_only=True).items()}
    data = state_dict_bytes(poisoned)
    weights_path.write_bytes(data)  # what an earlier, unchecked run could leave behind
    record = json.loads(record_path.read_text())
    record["weights_sha256"] = training.sha256_bytes(data)
    record_path.write_text(json.dumps(record))
    assert training.load_cache(tmp_path, key, recorder.log) is None
    assert any("NaN or Inf" in line and "removing" in line for line in recorder.lines)
    assert not weights_path.exists() and not record_path.exists()
    again = providers.TrainProvider().provide(params, _context(dataset, tmp_path, Recorder()))
    assert again.provenance["cache_hit"] is False
    assert again.provenance["state_dict_sha256"] == first.provenance["state_dict_sha256"]
    state = torch.load(weights_path, weights_only=True)
    assert all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())
    assert state_dict_sha256(state) == first.provenance["state_dict_sha256"] and np.isfinite(
        again.module(dataset.splits["test"].images[:2]).detach().numpy()).all()
