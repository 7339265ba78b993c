"""One trained network exported four ways (two logits, one sigmoid logit, softmax probabilities, a sigmoid
probability) through TorchScript: behind the logits view (harness.attacks.heads) all four decide alike and PGD
(native and Foolbox) succeeds alike; the operating point decides and judges at the threshold."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.attacks.heads import logits_view, supplied_module
from harness.attacks.judge import judge, judged_attack
from harness.attacks.output_checks import check_outputs
from harness.errors import ModelError
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetBundle, ModelContext, TensorSplit
from harness_plugins.attacks import foolbox_attacks, native_attacks
from harness_plugins.models import providers

SIZE, N = 16, 240
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EXPORTS = {"two_logits": "logits", "sigmoid_logit": "sigmoid_logit", "softmax": "probabilities",
           "sigmoid_probability": "sigmoid_probability"}


def _data(seed: int, n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes that differ by a faint pattern in noise: a trained network is accurate but not robust."""
    pattern = np.sign(np.random.default_rng(0).standard_normal((1, SIZE, SIZE)))
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    shift = 0.012 * (2 * labels - 1)[:, None, None, None] * pattern
    images = 0.5 + 0.1 * rng.standard_normal((n, 1, SIZE, SIZE)) + shift
    return torch.tensor(images.clip(0, 1), dtype=torch.float32), torch.tensor(labels)


class Net(nn.Module):
    """A small two-layer network on centred images."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x - 0.5)


@functools.lru_cache(maxsize=1)
def _train() -> nn.Module:
    torch.manual_seed(0)
    net = Net()
    images, labels = _data(1, 2000)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.003)
    for _ in range(300):
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(images), labels).backward()
        optimiser.step()
    return net.eval()


class Export(nn.Module):
    """The network with one of the four heads hospitals ship."""

    def __init__(self, net: nn.Module, kind: str) -> None:
        super().__init__()
        self.net, self.kind = net, kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x)
        margin = z[:, 1:] - z[:, :1]
        if self.kind == "sigmoid_logit":
            return margin
        if self.kind == "softmax":
            return z.softmax(1)
        if self.kind == "sigmoid_probability":
            return torch.sigmoid(margin)
        return z


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nn.Module]:
    """The four TorchScript exports loaded back through the torchscript provider, each behind its view."""
    folder = tmp_path_factory.mktemp("exports")
    net = _train()
    images, labels = _data(2)
    split = TensorSplit(images, labels.numpy(), [f"s{i}" for i in range(N)], [f"p{i}" for i in range(N)])
    dataset = DatasetBundle("pattern", ["absent", "present"], {"train": split, "val": split, "test": split},
                            {"content_sha256": "0" * 64})
    views = {}
    for kind, output in EXPORTS.items():
        torch.jit.save(torch.jit.trace(Export(net, kind), images[:2]), str(folder / f"{kind}.ts"))
        context = ModelContext(dataset=dataset, device=torch.device("cpu"), seed=0, base_dir=folder,
                               cache_dir=folder, architectures={}, output=output)
        params = build_dataclass(providers.TorchScriptParams, {"path": f"{kind}.ts", "normalization": "none"},
                                 key="model")
        bundle = providers.TorchScriptProvider().provide(params, context)
        views[kind] = logits_view(bundle.module, output)
    return views


@pytest.mark.parametrize("kind", ["sigmoid_logit", "softmax", "sigmoid_probability"])
def test_onnx_exports_decide_like_the_torchscript_ones(exported: dict[str, nn.Module], kind: str,
                                                       tmp_path: Path) -> None:
    """The same heads exported to ONNX load (converted to torch, with gradients) behind the same view."""
    from harness_plugins.models.onnx.provider import OnnxProvider

    images, labels = _data(2)
    torch.onnx.export(Export(_train(), kind), (images[:2],), str(tmp_path / "m.onnx"), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})
    split = TensorSplit(images, labels.numpy(), [f"s{i}" for i in range(N)], [f"p{i}" for i in range(N)])
    dataset = DatasetBundle("pattern", ["absent", "present"], {"test": split}, {"content_sha256": "0" * 64})
    context = ModelContext(dataset=dataset, device=torch.device("cpu"), seed=0, base_dir=tmp_path,
                           cache_dir=tmp_path, architectures={}, output=EXPORTS[kind])
    bundle = OnnxProvider().provide(build_dataclass(OnnxProvider.Params, {"path": "m.onnx"}, "model"), context)
    assert bundle.differentiable
    with torch.no_grad():
        decided = logits_view(bundle.module, EXPORTS[kind])(images).argmax(1)
        assert torch.equal(decided, exported["two_logits"](images).argmax(1))


def _success_rate(attack: object, params: object, model: nn.Module, eps: float) -> float:
    images, labels = _data(2)
    clean = model(images).argmax(1) == labels
    [(_, verdict)] = judged_attack(attack, model, model, images, labels, [eps], params, "linf", "pgd", seed=3)
    return float((verdict.counted & clean).sum() / clean.sum())


def test_the_four_exports_decide_alike(exported: dict[str, nn.Module]) -> None:
    images, labels = _data(2)
    with torch.no_grad():
        decisions = {kind: view(images).argmax(1) for kind, view in exported.items()}
    reference = decisions["two_logits"]
    assert float((reference == labels).float().mean()) > 0.8
    for kind, decided in decisions.items():
        assert torch.equal(decided, reference), kind


@pytest.mark.parametrize("eps", [0.004, 0.008])
@pytest.mark.parametrize("name", ["native_pgd_linf", "pgd_linf"])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_pgd_success_agrees_within_one_point(exported: dict[str, nn.Module], eps: float, name: str) -> None:
    plugins = {a.name: a for a in [*native_attacks.harness_register_attacks(),
                                   *foolbox_attacks.harness_register_attacks()]}
    attack = plugins[name]
    params = build_dataclass(attack.Params, {"steps": 20}, key="attack")
    rates = {kind: _success_rate(attack, params, view, eps) for kind, view in exported.items()}
    assert 0.02 < rates["two_logits"] < 0.98, rates  # the attack neither always fails nor always succeeds
    for kind, rate in rates.items():
        assert abs(rate - rates["two_logits"]) <= 0.01, (kind, rates)


def test_a_probability_export_declared_as_logits_is_warned(exported: dict[str, nn.Module]) -> None:
    images, _ = _data(2)
    softmax = supplied_module(exported["softmax"])
    [line] = check_outputs(softmax, images[:8], "logits", 2, "model").warnings
    assert "sums to 1" in line and "output: probabilities" in line
    [line] = check_outputs(supplied_module(exported["sigmoid_probability"]), images[:8], "sigmoid_logit", 2,
                           "model").warnings
    assert "output: sigmoid_probability" in line
    assert check_outputs(softmax, images[:8], "probabilities", 2, "model").warnings == []
    with pytest.raises(ModelError, match="expected outputs of shape .* output: sigmoid_logit"):
        check_outputs(softmax, images[:8], "logits", 2, "model") and check_outputs(
            supplied_module(exported["sigmoid_logit"]), images[:8], "logits", 2, "model")
    with pytest.raises(ModelError, match="says output: probabilities but the rows"):
        check_outputs(supplied_module(exported["two_logits"]), images[:8], "probabilities", 2, "model")


def test_the_operating_point_decides_and_judges(exported: dict[str, nn.Module]) -> None:
    images, labels = _data(2)
    probability = supplied_module(exported["sigmoid_probability"])
    rates = []
    for threshold in (0.2, 0.5, 0.8):
        view = logits_view(probability, "sigmoid_probability", threshold)
        with torch.no_grad():
            decided = view(images).argmax(1)
            p = probability(images)[:, 0]
        assert torch.equal(decided, (p >= threshold).long())
        sens = float(decided[labels == 1].float().mean())
        spec = float((decided[labels == 0] == 0).float().mean())
        rates.append((sens, spec))
    assert rates[0][0] >= rates[1][0] >= rates[2][0] and rates[0][1] <= rates[1][1] <= rates[2][1]
    assert rates[0] != rates[2]
    # an attack counted as a success moved the thresholded decision off the label
    view = logits_view(probability, "sigmoid_probability", 0.8)
    attack = {a.name: a for a in native_attacks.harness_register_attacks()}["native_pgd_linf"]
    params = build_dataclass(attack.Params, {"steps": 20}, key="attack")
    clean = view(images).argmax(1) == labels
    [(adv, verdict)] = judged_attack(attack, view, view, images, labels, [0.008], params, "linf", "pgd", seed=3)
    counted = verdict.counted & clean
    assert counted.any()
    with torch.no_grad():
        p_adv = probability(adv)[:, 0]
    assert bool(((p_adv[counted] >= 0.8).long() != labels[counted]).all())
    assert torch.equal(judge(view, images, labels, adv, "linf", 0.008).fooled,
                       (p_adv >= 0.8).long() != labels)
