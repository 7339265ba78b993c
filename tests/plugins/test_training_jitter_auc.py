"""The `train` provider's intensity jitter augmentation and its validation-AUC model selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import DataError
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetBundle, ModelContext, TensorSplit
from harness_plugins.models import architectures, providers, training

SIZE = 16
FAST = {"architecture": "small_cnn", "epochs": 3, "batch_size": 32, "learning_rate": 0.01}


def _dataset() -> DatasetBundle:
    rng = np.random.default_rng(0)

    def split(n: int, prefix: str) -> TensorSplit:
        labels = np.arange(n) % 2
        images = np.clip(0.5 + 0.1 * rng.standard_normal((n, 1, SIZE, SIZE)) + 0.1 * labels[:, None, None, None],
                         0, 1).astype(np.float32)
        ids = [f"{prefix}{i}" for i in range(n)]
        return TensorSplit(torch.from_numpy(images), labels, ids, ids)

    return DatasetBundle(name="toy", class_names=["a", "b"], provenance={"content_sha256": "toy"},
                         splits={"train": split(64, "tr"), "val": split(20, "va"), "test": split(20, "te")})


class _Quiet:
    def progress(self, description: str, total: int) -> _Quiet:
        return self

    def advance(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _context(dataset: DatasetBundle, cache_dir: Path) -> ModelContext:
    archs = {a.name: a for a in architectures.harness_register_architectures()}
    quiet = _Quiet()
    return ModelContext(dataset=dataset, device=torch.device("cpu"), seed=7, base_dir=cache_dir, cache_dir=cache_dir,
                        architectures=archs, progress=quiet.progress, log=lambda message: None)


def _params(**values: object) -> training.TrainParams:
    return build_dataclass(training.TrainParams, values, key="model")


# --------------------------------------------------------------------------- intensity jitter


def test_intensity_jitter_is_a_seeded_per_image_contrast_and_brightness_change_within_its_range():
    x = 0.3 + 0.4 * torch.rand(64, 1, 12, 12)  # in [0.3, 0.7]: ±0.2 contrast and ±0.1 brightness never clip
    jitter = training.AugmentParams(hflip=False, vflip=False, rotate90=False, intensity_jitter=0.2)
    a = training.augment_batch(x, jitter, torch.Generator().manual_seed(3))
    b = training.augment_batch(x, jitter, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    mean_in, mean_out = x.mean(dim=(1, 2, 3)), a.mean(dim=(1, 2, 3))
    contrast = (a - mean_out.view(-1, 1, 1, 1)).std(dim=(1, 2, 3)) / (x - mean_in.view(-1, 1, 1, 1)).std(dim=(1, 2, 3))
    shift = mean_out - mean_in
    assert float(contrast.min()) >= 0.8 - 1e-4 and float(contrast.max()) <= 1.2 + 1e-4
    assert float(shift.abs().max()) <= 0.1 + 1e-5
    assert float(contrast.std()) > 0.05 and float(shift.std()) > 0.02  # drawn per image, not one for the batch
    # each image is an affine map of itself: the shape of the intensity profile is kept
    for orig, new in zip(x[:4], a[:4], strict=True):
        assert np.corrcoef(orig.flatten().numpy(), new.flatten().numpy())[0, 1] > 0.9999


def test_intensity_jitter_clips_to_the_unit_range_and_zero_leaves_images_and_draws_alone():
    x = torch.rand(16, 1, 8, 8)
    strong = training.AugmentParams(hflip=False, vflip=False, rotate90=False, intensity_jitter=0.5)
    out = training.augment_batch(x, strong, torch.Generator().manual_seed(0))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 and not torch.equal(out, x)
    plain, zero = training.AugmentParams(), training.AugmentParams(intensity_jitter=0.0)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(training.augment_batch(x, plain, g1), training.augment_batch(x, zero, g2))
    assert torch.equal(g1.get_state(), g2.get_state())


def test_intensity_jitter_is_range_checked():
    with pytest.raises(Exception, match="intensity_jitter"):
        _params(augment={"intensity_jitter": 0.9})


# --------------------------------------------------------------------------- validation-AUC selection


def test_selection_auc_binary_and_macro_one_vs_rest():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    assert training.selection_auc(labels, probs) == pytest.approx(0.75)
    four = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    perfect = np.eye(4)[four] * 0.7 + 0.075
    assert training.selection_auc(four, perfect) == pytest.approx(1.0)
    with pytest.raises(DataError, match="select_metric"):
        training.selection_auc(np.array([1, 1]), probs[:2])
    with pytest.raises(DataError, match="every class"):
        training.selection_auc(np.array([0, 1, 2, 0]), perfect[:4])


@pytest.mark.parametrize(("metric", "expected"), [("accuracy", 2), ("auc", 3)])
def test_fit_keeps_the_epoch_with_the_best_val_metric(monkeypatch, metric, expected):
    """Scripted validation: epoch 2 has the best accuracy, epoch 3 the best AUC; each rule keeps its own."""
    accuracy, auc = iter([0.6, 0.9, 0.7, 0.65]), iter([0.80, 0.70, 0.95, 0.90])
    probs = np.array([[0.5, 0.5], [0.5, 0.5]])

    def scripted(model, split, device, batch_size):
        return next(accuracy), 0.5, (np.array([0, 1]), probs)

    monkeypatch.setattr(training, "evaluate_scores", scripted)
    monkeypatch.setattr(training, "selection_auc", lambda labels, p: next(auc))
    data = _dataset()
    states = []
    model = architectures.SmallCNNNet(1, 2)
    original = training._train_epoch

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return out

    monkeypatch.setattr(training, "_train_epoch", recording)
    params = _params(**{**FAST, "epochs": 4, "select_metric": metric})
    result = training.fit(model, data.splits["train"], data.splits["val"], params, 0, 2, torch.device("cpu"),
                          _Quiet(), lambda message: None)
    assert result.selected_epoch == expected
    assert all(torch.equal(model.state_dict()[k], v) for k, v in states[expected - 1].items())
    assert ("val_auc" in result.log[0]) == (metric == "auc")


def test_auc_selection_trains_end_to_end_and_new_defaults_keep_old_cache_keys(tmp_path):
    data = _dataset()
    bundle = providers.TrainProvider().provide(_params(**FAST, select_metric="auc"), _context(data, tmp_path))
    log = bundle.provenance["training_log"]
    best = max(e["val_auc"] for e in log)
    assert log[bundle.provenance["selected_epoch"] - 1]["val_auc"] == best

    def key(values: dict) -> str:
        p = _params(**values)
        context = _context(data, tmp_path)
        described = providers.resolve_architecture(p.architecture, context).describe(1, 2, (SIZE, SIZE))
        return training.cache_key(providers.TrainProvider.key_material(p, context, described, 7,
                                                                       (1, SIZE, SIZE), 2))

    base = key(FAST)
    material = providers.TrainProvider.key_material(
        _params(**FAST), _context(data, tmp_path), {}, 7, (1, SIZE, SIZE), 2)["training"]
    assert "select_metric" not in material and "intensity_jitter" not in material["augment"]
    assert key({**FAST, "select_metric": "accuracy", "augment": {"intensity_jitter": 0.0}}) == base
    assert key({**FAST, "select_metric": "auc"}) != base
    assert key({**FAST, "augment": {"intensity_jitter": 0.1}}) != base
