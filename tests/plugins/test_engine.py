"""Engine options: BatchNorm folding, channels_last, autocast, compile fallback, batch size and determinism."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from attack_toys import one_torch_thread  # noqa: F401 - a fixture
from torch import nn

from harness.attacks.engine import (
    AttackModule,
    auto_batch_size,
    compilation,
    enable_determinism,
    fold_batchnorm,
    prepare_attack_model,
    resolve_engine,
)
from harness.attacks.engine import batch_size as batch_size_module
from harness.plan.schema import EngineSettings
from harness_plugins.attacks.foolbox_attacks import ATTACKS
from harness_plugins.models.architectures import MonaiResNet18, SmallCNN

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _with_running_stats(model: nn.Module, seed: int = 0) -> nn.Module:
    """Eval mode with non-trivial BatchNorm statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.6 * torch.rand(n, generator=g) - 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return _with_running_stats(SmallCNN().build(1, 2, (32, 32)))


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(6, 1, 32, 32, generator=torch.Generator().manual_seed(1))


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> bool:
    return bool((a - b).abs().max() <= rtol * b.abs().max())


@torch.no_grad()
def test_fold_small_cnn_gives_the_same_logits(small_cnn: nn.Module, images: torch.Tensor) -> None:
    model, notes = prepare_attack_model(small_cnn, EngineSettings(fold_batchnorm=True), CPU, images)
    assert notes == []
    assert _batchnorms(model) == 0 and _batchnorms(small_cnn) == 3
    assert _close(model(images), small_cnn(images), 1e-4)


@torch.no_grad()
def test_fold_monai_resnet18_gives_the_same_logits(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    resnet = _with_running_stats(MonaiResNet18().build(1, 2, (32, 32)))
    copied = copy.deepcopy(resnet)
    assert fold_batchnorm(copied) == 20  # stem, 8 blocks × 2, 3 downsample branches
    model, notes = prepare_attack_model(resnet, EngineSettings(fold_batchnorm=True), CPU, images)
    assert notes == [] and _batchnorms(model) == 0
    assert _close(model(images), resnet(images), 1e-4)


class _PreActivation(nn.Module):
    """BatchNorm *before* the convolution, under names that look foldable: folding would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(1)
        self.head = nn.Linear(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv1(torch.relu(self.bn1(x))).mean(dim=(2, 3)))


_PreActivation.__module__ = "monai.fake"
_PreActivation.__name__ = "ResNetBlock"


@torch.no_grad()
def test_fold_that_changes_the_logits_falls_back(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    original = _with_running_stats(_PreActivation())
    model, notes = prepare_attack_model(original, EngineSettings(fold_batchnorm=True), CPU, images)
    assert len(notes) == 1 and "used unfolded" in notes[0]
    assert _batchnorms(model) == 1
    assert torch.equal(model(images), original(images))


def test_fold_without_batchnorm_notes_it(images: torch.Tensor) -> None:
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(2))
    plain(images)
    _, notes = prepare_attack_model(plain.eval(), EngineSettings(fold_batchnorm=True), CPU, images)
    assert len(notes) == 1 and "no Conv2d→BatchNorm2d pair" in notes[0]


def test_everything_off_returns_the_module_itself(small_cnn: nn.Module, images: torch.Tensor) -> None:
    model, notes = prepare_attack_model(small_cnn, EngineSettings(), CPU, images)
    assert model is small_cnn and notes == []


@torch.no_grad()
def test_channels_last_gives_the_same_logits(small_cnn: nn.Module, images: torch.Tensor) -> None:
    settings = EngineSettings(channels_last=True, compile=False, autocast="none")
    model, notes = prepare_attack_model(small_cnn, settings, CPU, images)
    assert notes == [] and not model.training
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model(images), small_cnn(images), rtol=1e-5, atol=1e-6)


def test_the_callers_module_is_untouched(small_cnn: nn.Module, images: torch.Tensor) -> None:
    before = copy.deepcopy(small_cnn.state_dict())
    settings = EngineSettings(channels_last=True, fold_batchnorm=True, autocast="bf16")
    prepare_attack_model(small_cnn, settings, CPU, images)
    after = small_cnn.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert _batchnorms(small_cnn) == 3 and not small_cnn.training
    assert all(p.requires_grad for p in small_cnn.parameters())
    assert all(p.is_contiguous() for p in small_cnn.parameters())


def test_autocast_returns_float32_logits_and_input_gradients(small_cnn: nn.Module, images: torch.Tensor) -> None:
    for name in ("bf16", "fp16"):
        model, notes = prepare_attack_model(small_cnn, EngineSettings(autocast=name), CPU, images)
        assert any("meant for CUDA" in n for n in notes)
        x = images.clone().requires_grad_(True)
        logits = model(x)
        assert logits.dtype == torch.float32
        (grad,) = torch.autograd.grad(logits[:, 0].sum(), x)
        assert grad.dtype == torch.float32 and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_fp16_gradient_scaling_is_undone() -> None:
    """The loss-scale trick inside the wrapper leaves the input gradient at its true size."""
    linear = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False)).eval()
    with torch.no_grad():
        linear[1].weight.copy_(torch.tensor([[0.5, -0.25, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]]))
    model = AttackModule(linear, autocast_dtype=torch.float16, device_type="cpu").eval()
    x = torch.full((1, 1, 2, 2), 0.5, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x)[0, 0], x)
    assert torch.allclose(grad.flatten(), torch.tensor([0.5, -0.25, 1.0, 2.0]))


def _toy(n: int, g: torch.Generator, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """A faint bright (label 1) or dark (label 0) blob in noise: learnable, and fragile at small ε."""
    labels = torch.arange(n) % 2
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.randint(4, size - 4, (n, 2), generator=g)
    blob = torch.exp(-((yy - centre[:, :1, None]) ** 2 + (xx - centre[:, 1:, None]) ** 2) / 4.0)
    images = 0.5 + 0.1 * torch.randn(n, 1, size, size, generator=g)
    return (images + (0.15 * (2 * labels - 1)).view(-1, 1, 1, 1) * blob[:, None]).clamp(0, 1), labels


def test_bf16_attack_success_stays_close_to_float32() -> None:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = SmallCNN().build(1, 2, (16, 16))
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    train_x, train_y = _toy(1024, g)
    for _ in range(100):
        index = torch.randint(0, len(train_x), (32,), generator=g)
        loss = nn.functional.cross_entropy(model(train_x[index]), train_y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test_x, test_y = _toy(128, g)
    with torch.no_grad():
        assert (model(test_x).argmax(1) == test_y).float().mean() > 0.8
    bf16, _ = prepare_attack_model(model, EngineSettings(autocast="bf16"), CPU, test_x[:8])
    pgd = next(a for a in ATTACKS if a.name == "pgd_linf")
    rates = []
    for attacked in (model, bf16):
        torch.manual_seed(1)
        (adversarial,) = pgd.run(attacked, test_x, test_y, [0.02], pgd.Params()).adversarials
        with torch.no_grad():
            rates.append(float((model(adversarial).argmax(1) != test_y).float().mean()))
    assert 0.1 < rates[0] < 0.95, rates  # the check means something only if the attack partly succeeds
    assert abs(rates[0] - rates[1]) <= 0.06, rates


def test_compile_failure_falls_back_to_eager(small_cnn: nn.Module, images: torch.Tensor,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(module: nn.Module, **kwargs: object) -> object:
        def call(x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("no C++ compiler\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    model, notes = prepare_attack_model(small_cnn, EngineSettings(compile=True), CPU, images)
    assert isinstance(model, AttackModule)
    assert len(notes) == 1 and "torch.compile failed (RuntimeError: no C++ compiler)" in notes[0]
    with torch.no_grad():
        assert torch.equal(model(images), small_cnn(images))


def test_compiled_model_that_fails_later_continues_eager(small_cnn: nn.Module, images: torch.Tensor) -> None:
    calls = []

    def flaky(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        if len(calls) > 1:
            raise RuntimeError("recompile failed")
        return small_cnn(x)

    class Flaky(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return flaky(x)

    model = compilation.CompiledOrEager(small_cnn, Flaky())
    with torch.no_grad():
        model(images)
        with pytest.warns(RuntimeWarning, match="continuing eager"):
            out = model(images[:3])
        model(images[:2])
        assert torch.equal(out, small_cnn(images[:3]))
    assert calls == [6, 3] and model.fallback_reason == "RuntimeError: recompile failed"


def test_auto_batch_size_on_cpu() -> None:
    small = auto_batch_size(nn.Identity(), (1, 64, 64), CPU)
    large = auto_batch_size(nn.Identity(), (1, 224, 224), CPU)
    assert isinstance(small, int) and small > 0 and 0 < large < small
    assert auto_batch_size(nn.Identity(), (1, 64, 64), CPU, limit=20) == 32


def test_enable_determinism_records_state() -> None:
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        off = enable_determinism(EngineSettings(), CPU)
        assert off["requested"] is False and off["torch_deterministic_algorithms"] == saved[0]
        on = enable_determinism(EngineSettings(deterministic=True), CPU)
        assert on["requested"] and on["torch_deterministic_algorithms"] and on["warn_only"]
        assert on["cudnn_benchmark"] is False and on["cudnn_deterministic"] is True
        assert on["cublas_workspace_config"] == os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2], saved[3]


def test_auto_batch_size_on_cuda_halves_until_it_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[int] = []

    def fits(model: nn.Module, shape: tuple[int, ...], batch: int, device: torch.device, total: int) -> bool:
        tried.append(batch)
        return batch <= 96

    monkeypatch.setattr(batch_size_module, "_fits", fits)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: type("P", (), {"total_memory": 1})())
    cuda = torch.device("cuda")
    assert auto_batch_size(nn.Identity(), (1, 224, 224), cuda) == 64 and tried == [1024, 512, 256, 128, 64]
    tried.clear()
    assert auto_batch_size(nn.Identity(), (1, 224, 224), cuda, limit=100) == 64 and tried == [128, 64]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_fold_of_a_torchscript_model_falls_back(small_cnn: nn.Module, images: torch.Tensor) -> None:
    scripted = torch.jit.script(copy.deepcopy(small_cnn))
    model, notes = prepare_attack_model(scripted, EngineSettings(fold_batchnorm=True), CPU, images)
    with torch.no_grad():
        assert _close(model(images), small_cnn(images), 1e-4)
    assert len(notes) == 1 and "used unfolded" in notes[0]


# ------------------------------------------------------------------------------------------ engine: auto


def _plan_engine(engine_yaml: str) -> EngineSettings:
    from harness.plan.schema import load_plan_text

    text = ("harness: 1\nname: e\ndataset: {plugin: phantom_ct}\nmodel: {plugin: train, architecture: small_cnn}\n"
            f"attacks: [{{attack: fgsm}}]\n{engine_yaml}")
    return load_plan_text(text).engine


def test_plans_get_auto_unless_they_pin_speed_options() -> None:
    from harness.errors import PlanError

    assert _plan_engine("").auto and _plan_engine("engine: auto\n").auto
    assert _plan_engine("engine: {deterministic: true}\n").auto  # determinism is not a speed option
    pinned = _plan_engine("engine: {channels_last: true}\n")
    assert not pinned.auto and pinned.channels_last
    with pytest.raises(PlanError, match="engine.auto"):
        _plan_engine("engine: {auto: true, compile: true}\n")
    with pytest.raises(PlanError, match="engine"):
        _plan_engine("engine: fast\n")


def test_auto_on_cpu_is_float32_eager_and_says_why(small_cnn: nn.Module) -> None:
    def probe(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise AssertionError("the CPU choice measures nothing")

    settings, record = resolve_engine(EngineSettings(auto=True, deterministic=True), small_cnn, CPU, probe, [0.01])
    assert settings == EngineSettings(deterministic=True)
    assert record["requested"] == "auto" and "float32 eager" in record["reason"]
    assert record["used"]["channels_last"] is False and record["used"]["deterministic"] is True
    cuda = torch.device("cuda")  # a model without input gradients gets no options, even on CUDA, and no probe
    settings, record = resolve_engine(EngineSettings(auto=True), small_cnn, cuda, probe, [0.01], differentiable=False)
    assert settings == EngineSettings() and "no input gradients" in record["reason"]
    pinned, record = resolve_engine(EngineSettings(channels_last=True), small_cnn, CPU, probe, [0.01])
    assert pinned.channels_last and record == {"requested": "pinned", "used": {**record["used"]}}
    earlier = {**record["used"], "autocast": "bf16"}  # a resumed run keeps its first attempt's choice, unprobed
    settings, record = resolve_engine(EngineSettings(auto=True), small_cnn, cuda, probe, [0.01], earlier=earlier)
    assert settings == EngineSettings(channels_last=True, autocast="bf16") and record["used"] == earlier
    assert "resumed" in record["reason"]


def test_the_fastest_agreeing_candidate_wins_and_a_disagreeing_one_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.attacks.engine import auto

    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(1024, 2)).eval()
    x = torch.rand(24, 1, 32, 32)
    y = linear(x).argmax(1).detach()
    real = auto.prepare_attack_model

    class Blind(nn.Module):
        """Stands in for an option that breaks the numbers: a model that ignores its input."""

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return linear(torch.zeros_like(images))

    def prepare(module: nn.Module, settings: EngineSettings, device: torch.device, sample: torch.Tensor):
        return (Blind(), []) if settings.fold_batchnorm else real(module, settings, device, sample)

    monkeypatch.setattr(auto, "prepare_attack_model", prepare)
    candidates = [EngineSettings(fold_batchnorm=True), EngineSettings(channels_last=True), EngineSettings()]
    grid = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
    chosen, record = auto.choose_fastest_agreeing(linear, CPU, x, y, grid, candidates)
    rows = record["candidates"]
    assert [row["options"]["fold_batchnorm"] for row in rows] == [True, False, False]
    assert rows[0]["compared_epsilons"] >= 1 and not rows[0]["passed"]
    assert rows[1]["passed"] and rows[2]["passed"]
    fastest = 1 if rows[1]["seconds"] <= rows[2]["seconds"] else 2
    assert chosen == candidates[fastest]
    assert record["probe_images"] == 24 and len(record["float32_success_rates"]) == len(grid)
