"""Gaussian noise augmentation (the training randomized smoothing needs): it fine-tunes a copy on noisy images,
selects rounds on val by accuracy under the same noise, and says in its provenance that the model is noise-trained."""

from __future__ import annotations

from pathlib import Path

import torch
from test_defences import _context, _harden, _sha, naive, one_thread, toy  # noqa: F401 - fixtures

from harness.certification.summary import model_kind
from harness.registry.contracts import DatasetBundle, ModelBundle
from harness.results.certification import NOISE_TRAINED, PLAIN
from harness_plugins.defences import noise_augmentation


def test_noise_training_records_sigma_and_selects_by_noisy_val_accuracy(toy: DatasetBundle,  # noqa: F811
                                                                       naive: ModelBundle,  # noqa: F811
                                                                       tmp_path: Path) -> None:
    before = _sha(naive.module)
    raw = {"sigma": 0.25, "epochs": 2, "batch_size": 32, "learning_rate": 0.01, "mixed_precision": False}
    hardened = _harden("gaussian_noise_augmentation", raw, naive, _context(toy, tmp_path))
    assert _sha(naive.module) == before and hardened.module is not naive.module
    prov = hardened.provenance
    assert prov["noise_augmentation"]["sigma"] == 0.25 and model_kind(prov) == (NOISE_TRAINED, 0.25)
    assert model_kind(naive.provenance) == (PLAIN, None)
    assert prov["selection"]["sigma"] == 0.25 and "Gaussian noise" in prov["selection"]["score"]
    assert [e["round"] for e in prov["training_log"]] == [0, 1, 2]
    clean, noisy = noise_augmentation.noisy_accuracy(hardened.module, toy.splits["val"], 0.25,
                                                     noise_augmentation.NoiseParams(sigma=0.25), 3,
                                                     torch.device("cpu"))
    best = prov["training_log"][prov["selected_round"]]
    assert (best["val_clean_accuracy"], best["val_robust_accuracy"]) == (clean, noisy)  # the same seeded draw
