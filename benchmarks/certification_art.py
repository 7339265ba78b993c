"""Randomized smoothing: the harness's CERTIFY against ART's (adversarial-robustness-toolbox ≥ 1.17,
PyTorchRandomizedSmoothing.certify) on the same models, images and noise settings; prints a Markdown table.

    .venv/bin/python -m pip install adversarial-robustness-toolbox   # bench-only (the `bench` extra)
    .venv/bin/python benchmarks/certification_art.py [--images 40] [--n 1000] [--sigma 0.25] [--threads 1]

Two models on 1×16×16 inputs: a linear classifier, whose exact certified radius |w·x + b| / ‖w‖ is known, and a
small CNN with fixed random weights (labels: its clean predictions). The two implementations draw different noise
(ART uses numpy's global generator), so they agree in distribution, not bit for bit: the table shows the mean radius
of each, the mean |difference| per image, certified accuracy at three radii for both, and forward passes per second.
Without ART the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from harness.certification.smoothing import ABSTAIN, certify_image

ALPHA, N0, SHAPE = 0.001, 100, (1, 16, 16)


class Linear(nn.Module):
    """Two logits (0, w·x + b)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.linspace(-1, 1, int(np.prod(SHAPE))) / 8
        self.b = 0.02

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(score), score], dim=1)

    def exact(self, x: torch.Tensor) -> float:
        return abs(float(x.flatten() @ self.w) + self.b) / float(self.w.norm())


def cnn(images: torch.Tensor) -> nn.Module:
    """A small CNN with fixed random weights, its output bias centred so that it splits `images` into two halves."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8 * 8 * 8, 2)).eval()
    with torch.no_grad():
        logits = model(images)
        model[-1].bias[1] -= float((logits[:, 1] - logits[:, 0]).median())
        model[-1].weight.mul_(20.0)
        model[-1].bias.mul_(20.0)
    return model


def ours(model: nn.Module, images: torch.Tensor, sigma: float, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    classes, radii, start = [], [], time.perf_counter()
    for k, image in enumerate(images):
        cert = certify_image(model, image, sigma, N0, n, ALPHA, 500, torch.Generator().manual_seed(k), 2,
                             torch.device("cpu"))
        classes.append(cert.certified_class)
        radii.append(cert.radius)
    return np.array(classes), np.array(radii), time.perf_counter() - start


def art(model: nn.Module, images: torch.Tensor, sigma: float, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    np.random.seed(0)
    smoothed = PyTorchRandomizedSmoothing(model=model, loss=nn.CrossEntropyLoss(), input_shape=SHAPE, nb_classes=2,
                                          device_type="cpu", sample_size=N0, scale=sigma, alpha=ALPHA,
                                          clip_values=(0.0, 1.0))
    start = time.perf_counter()
    classes, radii = smoothed.certify(images.numpy(), n=n, batch_size=500)
    return np.asarray(classes, dtype=np.int64), np.asarray(radii, dtype=np.float64), time.perf_counter() - start


def certified(classes: np.ndarray, radii: np.ndarray, labels: np.ndarray, r: float) -> float:
    return float(np.mean((classes == labels) & (classes != ABSTAIN) & (radii >= r)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    try:
        import art as _art  # noqa: F401
    except ImportError:
        print("ART is not installed: `.venv/bin/python -m pip install adversarial-robustness-toolbox` (bench-only)")
        return
    torch.set_num_threads(args.threads)
    images = torch.rand((args.images, *SHAPE), generator=torch.Generator().manual_seed(1))
    grid = (0.0, args.sigma, 2 * args.sigma)
    print(f"| model | images | σ | n | mean R harness | mean R ART | mean abs ΔR | exact mean R | "
          f"certified @ r={', '.join(f'{r:g}' for r in grid)} harness | ART | fwd/s harness | fwd/s ART |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
    for name, model in (("linear", Linear()), ("random CNN", cnn(images))):
        with torch.no_grad():
            labels = model(images).argmax(1).numpy()
        a_cls, a_r, a_s = ours(model, images, args.sigma, args.n)
        b_cls, b_r, b_s = art(model, images, args.sigma, args.n)
        exact = f"{np.mean([model.exact(x) for x in images]):.4f}" if isinstance(model, Linear) else "–"
        passes = args.images * (N0 + args.n)
        ours_acc = ", ".join(f"{certified(a_cls, a_r, labels, r):.3f}" for r in grid)
        art_acc = ", ".join(f"{certified(b_cls, b_r, labels, r):.3f}" for r in grid)
        print(f"| {name} | {args.images} | {args.sigma:g} | {args.n} | {a_r.mean():.4f} | {b_r.mean():.4f} | "
              f"{np.abs(a_r - b_r).mean():.4f} | {exact} | {ours_acc} | {art_acc} | {passes / a_s:,.0f} | "
              f"{passes / b_s:,.0f} |")


if __name__ == "__main__":
    main()
