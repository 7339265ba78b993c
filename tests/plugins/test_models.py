"""Tests of the built-in model plugins: architectures, train / state_dict / torchscript providers."""

from __future__ import annotations

import dataclasses
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import ModelError, PlanError
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetBundle, ModelContext, TensorSplit
from harness_plugins.models import architectures, providers, training
from harness_plugins.models.model_input import NormalizedClassifier
from harness_plugins.models.weights import state_dict_bytes, state_dict_sha256

SIZE = 16
FAST = {"architecture": "small_cnn", "epochs": 4, "batch_size": 32, "learning_rate": 0.01}


def _toy_split(n: int, rng: np.random.Generator, prefix: str, size: int = SIZE) -> TensorSplit:
    """Noisy grey images with a bright (label 1) or dark (label 0) square somewhere."""
    labels = np.arange(n) % 2
    images = 0.5 + 0.05 * rng.standard_normal((n, 1, size, size))
    for i, label in enumerate(labels):
        r, c = rng.integers(0, size - 6, size=2)
        images[i, 0, r:r + 6, c:c + 6] = 0.9 if label else 0.1
    tensor = torch.from_numpy(np.clip(images, 0, 1).astype(np.float32))
    ids = [f"{prefix}{i}" for i in range(n)]
    return TensorSplit(tensor, labels, ids, ids)


def _toy_dataset(content: str = "toy-v1") -> DatasetBundle:
    rng = np.random.default_rng(0)
    splits = {"train": _toy_split(128, rng, "tr"), "val": _toy_split(40, rng, "va"),
              "test": _toy_split(40, rng, "te")}
    return DatasetBundle(name="toy", class_names=["dark", "bright"], splits=splits,
                         provenance={"content_sha256": content})


class Recorder:
    """Records progress handles and log lines."""

    def __init__(self) -> None:
        self.progress_calls: list[tuple[str, int]] = []
        self.lines: list[str] = []
        self.advanced = 0

    def progress(self, description: str, total: int) -> Recorder:
        self.progress_calls.append((description, total))
        return self

    def advance(self, n: int = 1) -> None:
        self.advanced += n

    def close(self) -> None:
        pass

    def log(self, message: str) -> None:
        self.lines.append(message)


def _context(dataset: DatasetBundle, cache_dir: Path, recorder: Recorder | None = None,
             seed: int = 7) -> ModelContext:
    recorder = recorder or Recorder()
    archs = {a.name: a for a in architectures.harness_register_architectures()}
    return ModelContext(dataset=dataset, device=torch.device("cpu"), seed=seed, base_dir=cache_dir,
                        cache_dir=cache_dir, architectures=archs, progress=recorder.progress, log=recorder.log)


def _params(cls: type, **values: object) -> object:
    return build_dataclass(cls, values, key="model")


@pytest.fixture(scope="module")
def dataset() -> DatasetBundle:
    return _toy_dataset()


@pytest.fixture(scope="module")
def trained(dataset: DatasetBundle, tmp_path_factory: pytest.TempPathFactory):
    """One trained model (fresh cache) shared by the tests that only read it."""
    cache = tmp_path_factory.mktemp("cache")
    recorder = Recorder()
    bundle = providers.TrainProvider().provide(_params(training.TrainParams, **FAST),
                                               _context(dataset, cache, recorder))
    return bundle, cache, recorder


def _outputs(module: torch.nn.Module, split: TensorSplit) -> torch.Tensor:
    with torch.no_grad():
        return module(split.images)


# --------------------------------------------------------------------------- architectures


@pytest.mark.parametrize("name", ["small_cnn", "vgg_style", "resnet18", "densenet121"])
def test_architecture_builds_the_bare_network(name: str) -> None:
    arch = {a.name: a for a in architectures.harness_register_architectures()}[name]
    model = arch.build(1, 3, (32, 32)).eval()
    assert not isinstance(model, NormalizedClassifier)  # no preprocessing the plan did not declare
    assert "mean" not in model.state_dict() and "std" not in model.state_dict()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 32, 32))
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    described = arch.describe(1, 3, (32, 32))
    assert described["name"] == name and described["from_plan"] == []


def test_resnet18_is_monai_resnet18_with_monai_defaults() -> None:
    from monai.networks.nets import resnet18

    ours = architectures.MonaiResNet18().build(1, 2, (32, 32))
    monai = resnet18(spatial_dims=2, n_input_channels=1, num_classes=2)
    assert ours.conv1.stride == monai.conv1.stride == (1, 1)
    assert str(ours) == str(monai)
    arguments = architectures.MonaiResNet18().describe(1, 2, (32, 32))["arguments"]
    assert arguments["conv1_t_stride"] == 1 and arguments["conv1_t_size"] == 7 and arguments["no_max_pool"] is False
    variant = architectures.MonaiResNet18().build(1, 2, (32, 32), conv1_t_stride=2)
    assert variant.conv1.stride == (2, 2)
    described = architectures.MonaiResNet18().describe(1, 2, (32, 32), {"conv1_t_stride": 2})
    assert described["arguments"]["conv1_t_stride"] == 2 and described["from_plan"] == ["conv1_t_stride"]


def test_architecture_options_are_checked_against_the_constructor() -> None:
    resnet = architectures.MonaiResNet18()
    with pytest.raises(PlanError, match=r"model\.architecture\.stride.*has no option 'stride'.*conv1_t_stride"):
        resnet.check_options({"stride": 2}, "model.architecture")
    with pytest.raises(PlanError, match=r"model\.architecture\.no_max_pool"):
        resnet.check_options({"no_max_pool": 1}, "model.architecture")
    for reserved in ("pretrained", "num_classes", "n_input_channels"):
        with pytest.raises(PlanError, match=f"no option '{reserved}'"):
            resnet.check_options({reserved: 1}, "model.architecture")
    assert resnet.check_options({"conv1_t_stride": [2, 2]}, "k") == {"conv1_t_stride": (2, 2)}
    small = architectures.SmallCNN()
    assert small.build(1, 2, (16, 16), widths=[8, 16]).head.in_features == 16


def test_vgg_style_head_follows_the_image_size_and_has_no_global_pool() -> None:
    small = architectures.VGGStyle().build(1, 2, (64, 64))
    large = architectures.VGGStyle().build(1, 2, (224, 224))
    # five 2× pools: 64 → 2×2 and 224 → 7×7 cells of 128 channels feed the first fully connected layer
    assert small.head[1].in_features == 128 * 2 * 2 and large.head[1].in_features == 128 * 7 * 7
    assert not any(isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in large.modules())
    with torch.no_grad():
        assert large.eval()(torch.rand(2, 1, 224, 224)).shape == (2, 2)
    with pytest.raises(ModelError, match="vgg_style.*32"):
        architectures.VGGStyle().build(1, 2, (16, 16))


def test_densenet_refuses_tiny_images() -> None:
    with pytest.raises(ModelError, match="densenet121.*32"):
        architectures.MonaiDenseNet121().build(1, 2, (16, 16))


def test_normalization_inside_model() -> None:
    backbone = torch.nn.Identity()
    model = NormalizedClassifier(backbone, 2, mean=[0.5, 0.2], std=[0.25, 0.1])
    out = model(torch.ones(1, 2, 1, 1))
    assert torch.allclose(out.flatten(), torch.tensor([2.0, 8.0]))
    with pytest.raises(ModelError, match="std"):
        model.set_normalization(0.5, 0.0)
    assert torch.equal(NormalizedClassifier(backbone, 1)(torch.full((1, 1, 2, 2), 0.3)),
                       torch.full((1, 1, 2, 2), 0.3))  # nothing declared: nothing applied


def test_hooks_register_providers() -> None:
    names = [p.name for p in providers.harness_register_models()]
    assert names == ["train", "state_dict", "torchscript"]


def test_train_params_validation() -> None:
    params = _params(training.TrainParams, architecture="resnet18", augment={"rotation_degrees": 10})
    assert params.augment.rotation_degrees == 10.0 and params.augment.hflip is True
    with pytest.raises(PlanError, match="model.optimizer"):
        _params(training.TrainParams, optimizer="rmsprop")
    with pytest.raises(PlanError, match="model.epochs"):
        _params(training.TrainParams, epochs=0)
    with pytest.raises(PlanError, match="model.augment.flip"):
        _params(training.TrainParams, augment={"flip": True})


def test_augment_is_seeded_and_shape_preserving() -> None:
    x = torch.rand(8, 1, 12, 12)
    aug = training.AugmentParams(rotation_degrees=15)
    a = training.augment_batch(x, aug, torch.Generator().manual_seed(3))
    b = training.augment_batch(x, aug, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    flips_only = training.AugmentParams(vflip=False, rotate90=False)
    out = training.augment_batch(x, flips_only, torch.Generator().manual_seed(0))
    for orig, new in zip(x, out, strict=True):
        assert torch.equal(new, orig) or torch.equal(new, orig.flip(-1))
    wide = torch.rand(4, 1, 6, 10)
    assert training.augment_batch(wide, training.AugmentParams(), torch.Generator()).shape == wide.shape


# --------------------------------------------------------------------------- train provider


def test_train_learns_toy_task(trained, dataset: DatasetBundle) -> None:
    bundle, cache, recorder = trained
    model, prov = bundle.module, bundle.provenance
    assert not model.training
    accuracy, _ = training.evaluate(model, dataset.splits["val"], torch.device("cpu"), 64)
    assert accuracy > 0.9
    assert prov["source"] == "trained" and prov["architecture"] == "small_cnn"
    assert prov["cache_hit"] is False and len(prov["training_log"]) == 4
    assert set(prov["training_log"][0]) >= {"epoch", "loss", "train_accuracy", "val_accuracy", "seconds"}
    best = max(e["val_accuracy"] for e in prov["training_log"])
    assert prov["training_log"][prov["selected_epoch"] - 1]["val_accuracy"] == best
    assert prov["n_parameters"] == sum(p.numel() for p in model.parameters())
    assert (cache / "models" / f"{prov['cache_key']}.pt").is_file()
    assert (cache / "models" / f"{prov['cache_key']}.json").is_file()
    assert recorder.progress_calls == [("training small_cnn", 4)] and recorder.advanced == 4
    weights = (cache / "models" / f"{prov['cache_key']}.pt").read_bytes()
    assert prov["weights_sha256"] == __import__("hashlib").sha256(weights).hexdigest()
    train_mean = float(dataset.splits["train"].images.mean())
    assert abs(model.mean.item() - train_mean) < 1e-4  # normalisation from the train split


def test_second_provide_is_cache_hit(trained, dataset: DatasetBundle) -> None:
    bundle, cache, _ = trained
    recorder = Recorder()
    again = providers.TrainProvider().provide(_params(training.TrainParams, **FAST),
                                              _context(dataset, cache, recorder))
    assert again.provenance["cache_hit"] is True
    assert recorder.progress_calls == []  # no training happened
    for key in ("weights_sha256", "state_dict_sha256", "cache_key", "training_log", "selected_epoch"):
        assert again.provenance[key] == bundle.provenance[key]
    split = dataset.splits["test"]
    assert torch.equal(_outputs(again.module, split), _outputs(bundle.module, split))


def test_training_is_deterministic_and_leaves_rng_alone(trained, dataset: DatasetBundle,
                                                        tmp_path: Path) -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    fresh = providers.TrainProvider().provide(_params(training.TrainParams, cache=False, **FAST),
                                              _context(dataset, tmp_path))
    assert torch.equal(torch.get_rng_state(), before)
    assert fresh.provenance["cache_hit"] is False and not (tmp_path / "models").exists()
    assert fresh.provenance["weights_sha256"] == trained[0].provenance["weights_sha256"]
    assert state_dict_bytes(fresh.module.state_dict()) == state_dict_bytes(trained[0].module.state_dict())


def test_cache_key_tracks_inputs(dataset: DatasetBundle, tmp_path: Path) -> None:
    def key(params: dict, seed: int = 7, data: DatasetBundle = dataset) -> str:
        p = _params(training.TrainParams, **params)
        context = _context(data, tmp_path, seed=seed)
        described = providers.resolve_architecture(p.architecture, context).describe(1, 2, (SIZE, SIZE))
        material = providers.TrainProvider.key_material(p, context, described,
                                                        p.seed if p.seed is not None else seed,
                                                        (1, SIZE, SIZE), 2)
        return training.cache_key(material)

    base = key(FAST)
    assert key(FAST) == base
    assert key({**FAST, "cache": False}) == base  # this does not change weights
    # the CPU thread count does (sums are split by thread): the effective count is in the key, not the setting
    threads = torch.get_num_threads()
    assert key({**FAST, "num_threads": threads}) == base
    assert key({**FAST, "num_threads": threads + 1}) != base
    assert key({**FAST, "seed": 7}) == base
    assert key({**FAST, "learning_rate": 0.02}) != base
    assert key({**FAST, "augment": {"vflip": False}}) != base
    assert key({**FAST, "architecture": "resnet18"}) != base
    assert key({**FAST, "keep_model": False}) == base
    # what builds the network is in the key: a variant (or a changed library default) never reuses cached weights
    assert key({**FAST, "architecture": {"name": "small_cnn"}}) == base
    assert key({**FAST, "architecture": {"name": "small_cnn", "widths": [16, 32, 64]}}) != base
    assert key({**FAST, "architecture": "resnet18"}) != key({**FAST, "architecture": {"name": "resnet18",
                                                                                      "conv1_t_stride": 2}})
    assert key(FAST, seed=8) != base
    assert key(FAST, data=_toy_dataset("toy-v2")) != base


def test_damaged_cache_is_retrained(dataset: DatasetBundle, tmp_path: Path) -> None:
    params = _params(training.TrainParams, **{**FAST, "epochs": 1})
    first = providers.TrainProvider().provide(params, _context(dataset, tmp_path))
    (tmp_path / "models" / f"{first.provenance['cache_key']}.pt").write_bytes(b"garbage")
    recorder = Recorder()
    second = providers.TrainProvider().provide(params, _context(dataset, tmp_path, recorder))
    assert second.provenance["cache_hit"] is False
    assert second.provenance["weights_sha256"] == first.provenance["weights_sha256"]
    assert any("damaged cache" in line for line in recorder.lines)


def test_unknown_architecture_is_plan_error(dataset: DatasetBundle, tmp_path: Path) -> None:
    for provider, params in [(providers.TrainProvider(), {"architecture": "vgg"}),
                             (providers.StateDictProvider(), {"architecture": "vgg", "weights": "w.pt"})]:
        with pytest.raises(PlanError, match="model.architecture") as info:
            provider.provide(_params(provider.Params, **params), _context(dataset, tmp_path))
        assert "small_cnn" in str(info.value) and "densenet121" in str(info.value)


# --------------------------------------------------------------------------- state_dict provider


def test_state_dict_round_trip(trained, dataset: DatasetBundle, tmp_path: Path) -> None:
    model = trained[0].module
    torch.save(model.state_dict(), tmp_path / "model.pt")
    loaded = providers.StateDictProvider().provide(
        _params(providers.StateDictParams, architecture="small_cnn", weights="model.pt"),
        _context(dataset, tmp_path))
    split = dataset.splits["test"]
    assert torch.equal(_outputs(loaded.module, split), _outputs(model, split))
    prov = loaded.provenance
    assert prov["format"] == "normalized" and not loaded.module.training
    assert prov["state_dict_sha256"] == state_dict_sha256(model.state_dict())
    assert prov["weights_sha256"] == __import__("hashlib").sha256((tmp_path / "model.pt").read_bytes()).hexdigest()


def test_state_dict_bare_backbone(trained, dataset: DatasetBundle, tmp_path: Path) -> None:
    model = trained[0].module
    bare = {k: v for k, v in model.backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": bare}, tmp_path / "bare.pt")  # a checkpoint dict, older BatchNorm format
    mean, std = model.mean.item(), model.std.item()
    loaded = providers.StateDictProvider().provide(
        _params(providers.StateDictParams, architecture="small_cnn", weights=str(tmp_path / "bare.pt"),
                normalization={"mean": mean, "std": std}), _context(dataset, tmp_path))
    assert loaded.provenance["format"] == "backbone"
    assert loaded.provenance["normalization"] == {"mean": [pytest.approx(mean)], "std": [pytest.approx(std)],
                                                  "source": "plan"}
    split = dataset.splits["test"]
    assert torch.allclose(_outputs(loaded.module, split), _outputs(model, split), atol=1e-5)


def test_state_dict_mismatch_names_file_and_key(dataset: DatasetBundle, tmp_path: Path) -> None:
    resnet = architectures.MonaiResNet18().build(1, 2, (SIZE, SIZE))
    torch.save(resnet.state_dict(), tmp_path / "resnet.pt")
    ctx = _context(dataset, tmp_path)
    with pytest.raises(ModelError, match=r"resnet\.pt: key 'features\.") as info:
        providers.StateDictProvider().provide(
            _params(providers.StateDictParams, architecture="small_cnn", weights="resnet.pt", normalization="none"),
            ctx)
    assert "small_cnn" in str(info.value)
    three = NormalizedClassifier(architectures.SmallCNN().build(1, 3, (SIZE, SIZE)), 1)
    torch.save(three.state_dict(), tmp_path / "three.pt")
    with pytest.raises(ModelError, match=r"three\.pt: key 'backbone\.head\.weight' has shape \(3, 64\)"):
        providers.StateDictProvider().provide(
            _params(providers.StateDictParams, architecture="small_cnn", weights="three.pt"), ctx)
    with pytest.raises(ModelError, match="not found.*missing.pt"):
        providers.StateDictProvider().provide(
            _params(providers.StateDictParams, architecture="small_cnn", weights="missing.pt"), ctx)
    with pytest.raises(PlanError, match="model.num_classes"):
        providers.StateDictProvider().provide(
            _params(providers.StateDictParams, architecture="small_cnn", weights="three.pt", num_classes=3),
            ctx)


class _Evil:
    """Unpickling this would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_is_refused(writer: str, dataset: DatasetBundle, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = {"backbone.head.weight": _Evil(marker)}
    path = tmp_path / "evil.pt"
    if writer == "torch":
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path.write_bytes(buffer.getvalue())
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    assert not marker.exists()
    with pytest.raises(ModelError, match=r"evil\.pt: refused") as info:
        providers.StateDictProvider().provide(
            _params(providers.StateDictParams, architecture="small_cnn", weights="evil.pt"),
            _context(dataset, tmp_path))
    assert "\n" not in info.value.one_line()
    assert not marker.exists()


def test_corrupt_state_dict_file(dataset: DatasetBundle, tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=r"junk\.pt: not a readable"):
        providers.StateDictProvider().provide(
            _params(providers.StateDictParams, architecture="small_cnn", weights="junk.pt"),
            _context(dataset, tmp_path))


# --------------------------------------------------------------------------- torchscript provider


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_round_trip(trained, dataset: DatasetBundle, tmp_path: Path) -> None:
    model = trained[0].module
    split = dataset.splits["test"]
    traced = torch.jit.trace(model, split.images[:2])
    torch.jit.save(traced, str(tmp_path / "model.ts"))
    loaded = providers.TorchScriptProvider().provide(_params(providers.TorchScriptParams, path="model.ts"),
                                                     _context(dataset, tmp_path))
    assert torch.allclose(_outputs(loaded.module, split), _outputs(model, split), atol=1e-5)
    assert loaded.provenance["source"] == "torchscript" and len(loaded.provenance["weights_sha256"]) == 64


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_wrong_output_is_refused(dataset: DatasetBundle, tmp_path: Path) -> None:
    three = architectures.SmallCNN().build(1, 3, (SIZE, SIZE)).eval()
    torch.jit.save(torch.jit.script(three), str(tmp_path / "three.ts"))
    ctx = _context(dataset, tmp_path)
    with pytest.raises(ModelError, match=r"three\.ts: expected outputs of shape \(N, 2\)"):
        providers.TorchScriptProvider().provide(_params(providers.TorchScriptParams, path="three.ts"), ctx)
    (tmp_path / "bad.ts").write_bytes(b"nope")
    with pytest.raises(ModelError, match=r"bad\.ts: not a loadable TorchScript"):
        providers.TorchScriptProvider().provide(_params(providers.TorchScriptParams, path="bad.ts"), ctx)
    with pytest.raises(ModelError, match="not found"):
        providers.TorchScriptProvider().provide(_params(providers.TorchScriptParams, path="none.ts"), ctx)


def test_params_are_dataclasses() -> None:
    for provider in providers.harness_register_models():
        assert dataclasses.is_dataclass(provider.Params) and provider.description
