"""The budgeted trigger search (core/budgeted.py) that verification and adversarial
unlearning share: the strongest trigger toward a class whose mask L1 stays within a budget."""

from __future__ import annotations

import torch
from torch import nn

from baerase_mlops.core.budgeted import FoundTrigger, project_to_budget, search_budgeted_trigger, trigger_asr
from baerase_mlops.core.unlearning import random_shift


class CornerReader(nn.Module):
    """Class 1 wins when the 3x3 top-left corner is bright, class 0 otherwise: a planted backdoor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        corner = x[:, :, :3, :3].mean(dim=(1, 2, 3))
        return torch.stack([torch.full_like(corner, 0.5), 2.0 * corner], dim=1)


def _search(model: nn.Module, x: torch.Tensor, budget: float, **overrides) -> FoundTrigger:
    settings = dict(steps=60, restarts=2, lr=0.1, batch_size=16, generator=torch.Generator().manual_seed(0))
    return search_budgeted_trigger(model, x, 1, budget, device=torch.device("cpu"), **{**settings, **overrides})


def test_the_budget_projection_keeps_a_concentrated_patch_and_drops_the_diffuse_rest():
    mask = torch.full((1, 1, 28, 28), 0.05)
    mask[..., :3, :3] = 1.0  # a 3x3 patch (L1 9) in a diffuse haze (L1 ~38)
    projected = project_to_budget(mask, budget=9.0)
    assert abs(float(projected.sum()) - 9.0) < 1e-3 and float(projected.min()) >= 0.0
    assert float(projected[..., :3, :3].min()) > 0.9  # scaling would leave ~0.19 here
    assert float(projected[..., 3:, 3:].max()) < 0.01  # the haze all but gone


def test_a_mask_within_the_budget_is_only_clamped_into_0_1():
    mask = torch.tensor([[[[1.5, -0.2], [0.3, 0.4]]]])
    assert torch.equal(project_to_budget(mask, budget=10.0), mask.clamp(0.0, 1.0))


def test_the_search_finds_a_planted_corner_trigger_within_its_size():
    x = torch.rand(64, 1, 12, 12, generator=torch.Generator().manual_seed(1)) * 0.2
    found = _search(CornerReader(), x, budget=9.0)
    assert float(found.mask.sum()) <= 9.0 + 1e-3
    assert found.search_asr == 1.0
    assert trigger_asr(CornerReader(), x, found.mask, found.pattern, 1, torch.device("cpu")) == 1.0


def test_the_search_cannot_reach_a_trigger_larger_than_its_budget():
    x = torch.rand(64, 1, 12, 12, generator=torch.Generator().manual_seed(1)) * 0.2
    assert _search(CornerReader(), x, budget=1.0).search_asr == 0.0  # one pixel cannot light a 3x3 corner


def test_a_search_of_no_steps_returns_where_it_started():
    x = torch.rand(8, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 1, 12, 12)
    mask[..., 5, 5] = 1.0
    start = FoundTrigger(mask, torch.full((1, 1, 12, 12), 0.7), 0.0)
    found = _search(CornerReader(), x, budget=4.0, steps=0, restarts=1, start=start)
    assert torch.equal(found.mask, mask)
    assert torch.allclose(found.pattern, start.pattern, atol=1e-4)


def test_a_zero_padded_shift_moves_a_trigger_without_smearing_it_across_the_border():
    mask = torch.zeros(32, 1, 8, 8)
    mask[:, :, 0, 0] = 1.0  # a one-pixel trigger in the corner
    moved = random_shift(mask, 3, torch.Generator().manual_seed(0), "constant")
    kept = moved.sum(dim=(1, 2, 3))
    assert set(kept.tolist()) <= {0.0, 1.0}  # moved (or pushed off the image), never replicated
    assert kept.sum() > 0 and (moved[:, :, 4:, :].sum() == 0) and (moved[:, :, :, 4:].sum() == 0)
