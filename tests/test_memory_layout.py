"""The memory layout the core computes in (core/classifier.py): channels-last on the CPU where
a model's scores are unchanged by it, the model's own layout everywhere else and afterwards."""

from __future__ import annotations

import torch
from torch import nn

from baerase_mlops.config import MarginConfig, RecoveryConfig, ScanConfig
from baerase_mlops.core.classifier import fast_layout, to_channels_last
from baerase_mlops.core.contract import InputContract
from baerase_mlops.core.scan import Scanner
from baerase_mlops.data import from_arrays

CPU = torch.device("cpu")
SHAPE = (1, 12, 12)


def _conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(288, 3),
    ).eval()


class ViewAfterConv(nn.Module):
    """The common hand-written flatten, ``x.view(n, -1)``: it fails on a channels-last tensor."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 12 * 12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(h.view(h.size(0), -1))


def _grids(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.dim() == 4]


def _probe() -> torch.Tensor:
    return torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(1))


def test_a_conv_model_takes_channels_last_on_the_cpu_with_the_same_scores():
    model = _conv_net()
    before = model(_probe()).detach()
    assert to_channels_last(model, SHAPE, CPU)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in _grids(model))
    assert not _grids(model)[1].is_contiguous()
    assert torch.allclose(model(_probe()), before, rtol=1e-4, atol=1e-5)


def test_a_model_that_cannot_take_channels_last_is_left_as_it_was():
    model = ViewAfterConv()
    before = model(_probe()).detach()
    assert not to_channels_last(model, SHAPE, CPU)
    assert all(p.is_contiguous() for p in model.parameters())
    assert torch.equal(model(_probe()), before)


def test_a_model_without_multi_channel_convolutions_is_not_touched():
    assert not to_channels_last(nn.Sequential(nn.Flatten(), nn.Linear(144, 3)), SHAPE, CPU)
    assert not to_channels_last(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(400, 3)), SHAPE, CPU)


def test_fast_layout_gives_the_model_back_contiguous_with_its_weights():
    model = _conv_net()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with fast_layout(model, SHAPE, CPU) as inside:
        assert inside is model and not _grids(model)[1].is_contiguous()
    assert all(p.is_contiguous() for p in model.parameters())
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


class LayoutSeen(nn.Module):
    """A conv net that records, at every forward with a gradient, whether its conv weight was channels-last."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _conv_net()
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self.seen.append(not self.net[4].weight.is_contiguous())
        return self.net(x)


def test_a_scan_recovers_in_channels_last_and_leaves_the_model_in_its_own_layout():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(30, *SHAPE, generator=generator)
    data = from_arrays(x.numpy(), (torch.arange(30) % 3).numpy(), source="test")
    model = LayoutSeen()
    quick = ScanConfig(recovery=RecoveryConfig(steps=20, round_steps=10), margins=MarginConfig(enabled=False))
    Scanner(quick, device="cpu").scan(model, data, InputContract(SHAPE, data.classes))
    assert len(model.seen) > 20 and all(model.seen[1:])  # the first: the layout probe's own backward, before
    assert all(p.is_contiguous() for p in model.parameters())
