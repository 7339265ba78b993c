"""What the attack tests share: one torch thread per module, and a toy task with a small MLP trained on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors on shared cores: one intra-op thread is many times faster than an oversubscribed two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def toy_data(n: int, generator: torch.Generator, classes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """1×16×16 images whose brightness encodes the class (0.4 to 0.6); per-image offsets spread the margins."""
    spacing = 0.2 / max(1, classes - 1)
    labels = torch.randint(0, classes, (n,), generator=generator)
    offset = (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.8 * spacing
    noise = (torch.rand(n, 1, 16, 16, generator=generator) - 0.5) * 0.3
    brightness = 0.4 + spacing * labels.float()[:, None, None, None]
    return (brightness + offset + noise).clamp(0, 1), labels


def trained_mlp(classes: int = 2) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small MLP trained on the toy task (eval mode, no gradients left behind) and 48 held-out images."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    x_train, y_train = toy_data(512, generator, classes)
    x_test, y_test = toy_data(48, generator, classes)
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 16), nn.ReLU(), nn.Linear(16, classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x_train), y_train).backward()
        optimizer.step()
    model.eval()
    optimizer.zero_grad(set_to_none=True)
    return model, x_test, y_test
