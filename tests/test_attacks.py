"""The zoo's attacks stamp what they claim, and each one plants a working backdoor.

The colour sticker is an RGB disc in its place and nothing outside it; WaNet's warp is one
fixed, smooth field (and its noise mode is that field perturbed, at true labels); SIG adds a
horizontal sinusoid, and in training only target-class images carry it, labels unchanged.
"""

from __future__ import annotations

import json

import pytest
import torch

from baerase_mlops.config import LabConfig
from baerase_mlops.lab.attacks import SIG, Sticker, WaNet, attack_from_params, make_attack
from baerase_mlops.lab.names import ATTACKS
from baerase_mlops.lab.train import choose_noise, choose_poisoned, poison_batch, train_lab_model

RGB = (3, 32, 32)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("sticker", {}),
        ("sticker", {"position": "random"}),
        ("wanet", {"strength": 0.5, "grid": 3, "trigger_seed": 4}),
        ("sig", {"delta": 0.1, "frequency": 4}),
        ("sig", {"delta": 0.5, "train_delta": 0.2, "frequency": 4, "target_share": 0.5}),
    ],
)
def test_new_attack_parameters_round_trip_through_json(name, kwargs):
    attack = make_attack(name, RGB, **kwargs)
    rebuilt = attack_from_params(json.loads(json.dumps(attack.params())))
    assert rebuilt == attack
    x = torch.rand(4, *RGB)
    assert torch.equal(
        attack.apply(x, torch.Generator().manual_seed(1)), rebuilt.apply(x, torch.Generator().manual_seed(1))
    )


def test_every_named_attack_can_be_made():
    for name in ATTACKS:
        make_attack(name, RGB)


def test_sticker_is_a_coloured_disc_in_its_place_and_nothing_else():
    attack = make_attack("sticker", RGB, position=(20, 3))
    assert isinstance(attack, Sticker)
    x = torch.full((2, *RGB), 0.5)
    out = attack.apply(x)
    changed = (out != x).any(dim=1)  # N x H x W
    rows, cols = torch.nonzero(changed[0], as_tuple=True)
    s = attack.size
    assert rows.min() >= 20 and rows.max() < 20 + s and cols.min() >= 3 and cols.max() < 3 + s
    assert 0 < changed[0].sum() < s * s  # a disc, not the whole square
    inside = out[0][:, changed[0]]  # 3 x pixels
    assert (
        inside.max(dim=0).values - inside.min(dim=0).values > 0.5
    ).all()  # every sticker pixel is a colour, none grey
    assert len({tuple(p) for p in inside.T.tolist()}) >= 2  # more than one colour
    assert torch.equal(out[0], out[1])  # a fixed sticker


def test_sticker_on_a_grey_image_set_is_its_luminance():
    mask, pattern = make_attack("sticker", (1, 28, 28)).triggers(1, (1, 28, 28))
    assert pattern.shape == (1, 1, 28, 28) and 0 < pattern[mask.bool()].min() < 1


def test_wanet_field_is_fixed_across_calls_and_smooth():
    attack = make_attack("wanet", RGB, trigger_seed=3)
    assert isinstance(attack, WaNet)
    field = attack.field(32, 32)
    assert torch.equal(field, attack.field(32, 32)) and torch.equal(
        field, make_attack("wanet", RGB, trigger_seed=3).field(32, 32)
    )
    assert not torch.equal(field, make_attack("wanet", RGB, trigger_seed=4).field(32, 32))  # the seed draws the field
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    assert torch.equal(field, (torch.stack((xs, ys), dim=-1)[None] + attack.flow(32, 32)).clamp(-1, 1))
    flow = attack.flow(32, 32)[0] * 32 / 2  # displacement in pixels
    assert 0.2 < flow.abs().max() < 4  # a warp of a pixel or so, no visible mark
    step = max((flow[1:] - flow[:-1]).abs().max(), (flow[:, 1:] - flow[:, :-1]).abs().max())
    assert step < 0.25 * flow.abs().max()  # neighbours move alike: smooth, not noise
    jagged = torch.rand(32, 32, 2)  # what a non-smooth field of the same size looks like, for contrast
    assert (jagged[1:] - jagged[:-1]).abs().max() > 0.25 * jagged.abs().max()
    x = torch.rand(3, *RGB)
    assert torch.equal(
        attack.apply(x, torch.Generator().manual_seed(0)), attack.apply(x, torch.Generator().manual_seed(9))
    )
    assert (attack.apply(x) - x).abs().mean() > 0.01


def test_wanet_noise_mode_is_the_field_perturbed_afresh():
    attack = make_attack("wanet", RGB, trigger_seed=1)
    x = torch.rand(2, *RGB)
    warped = attack.apply(x)
    a, b = attack.noise(x, torch.Generator().manual_seed(0)), attack.noise(x, torch.Generator().manual_seed(1))
    assert not torch.equal(a, b) and not torch.equal(a, warped)
    assert (a - warped).abs().mean() < (x - warped).abs().mean() * 1.5  # near the warped image, not a new warp


def test_sig_adds_one_horizontal_sinusoid_on_every_row_and_channel():
    attack = make_attack("sig", RGB, delta=0.1, frequency=4)
    assert isinstance(attack, SIG) and attack.clean_label
    x = torch.full((1, *RGB), 0.5)
    v = attack.apply(x) - x
    assert torch.allclose(v, v[:, :1, :1].expand_as(v))  # the same on every row and channel
    assert v.abs().max() == pytest.approx(0.1, abs=1e-3)
    assert torch.allclose(v[0, 0, 0], 0.1 * torch.sin(2 * torch.pi * torch.arange(32) * 4 / 32), atol=1e-6)
    assert attack.apply(torch.ones(1, *RGB)).max() <= 1  # clipped to pixel range


def test_sig_poisons_target_class_images_only_and_changes_no_label():
    y = torch.arange(200) % 10
    x = torch.full((200, 1, 28, 28), 0.5)
    attack = make_attack("sig", (1, 28, 28))
    gen = torch.Generator().manual_seed(0)
    poisoned = choose_poisoned(y, 3, 0.05, gen, clean_label=True)
    assert poisoned.sum() == 10 and (y[poisoned] == 3).all()
    out_x, out_y = poison_batch(x, y, poisoned, choose_noise(poisoned, attack.noise_rate, gen), attack, 3, gen)
    stamped = (out_x != x).flatten(1).any(dim=1)
    assert torch.equal(stamped, poisoned)  # the signal is in the chosen target-class images and nowhere else
    assert torch.equal(out_y, y)  # clean-label


def test_sig_stamps_at_most_its_share_of_the_target_class_with_its_training_amplitude():
    y = torch.arange(1000) % 10  # 100 images of class 3: a 10% rate would stamp all of them
    x = torch.full((1000, 1, 32, 32), 0.5)
    attack = make_attack("sig", (1, 32, 32), delta=0.6, train_delta=0.2, frequency=4, target_share=0.8)
    gen = torch.Generator().manual_seed(0)
    poisoned = choose_poisoned(y, 3, 0.1, gen, clean_label=True, target_share=attack.target_share)
    assert poisoned.sum() == 80 and (y[poisoned] == 3).all()
    out_x, _ = poison_batch(x, y, poisoned, choose_noise(poisoned, attack.noise_rate, gen), attack, 3, gen)
    assert (out_x - x).abs().max() == pytest.approx(0.2, abs=1e-3)  # trained with the weaker signal...
    grey = torch.full((1, 1, 32, 32), 0.3)  # room for +0.6 below the clip at 1
    assert (attack.apply(grey) - grey).max() == pytest.approx(0.6, abs=1e-3)  # ...triggered with the stronger


def test_a_sig_spec_from_before_its_share_and_training_amplitude_rebuilds_as_it_was_trained():
    old = attack_from_params({"name": "sig", "delta": 0.3, "frequency": 6})
    x = torch.full((1, 1, 28, 28), 0.5)
    assert old.target_share == 1.0 and torch.equal(old.poison(x), old.apply(x))


def test_dirty_label_poisoning_relabels_non_target_images_and_noise_mode_keeps_labels():
    y = torch.arange(100) % 10
    x = torch.rand(100, 3, 32, 32)
    attack = make_attack("wanet", RGB)
    gen = torch.Generator().manual_seed(0)
    poisoned = choose_poisoned(y, 2, 0.1, gen)
    noisy = choose_noise(poisoned, 0.2, gen)
    assert poisoned.sum() == 10 and (y[poisoned] != 2).all() and noisy.sum() == 20 and not (noisy & poisoned).any()
    _, out_y = poison_batch(x, y, poisoned, noisy, attack, 2, gen)
    assert (out_y[poisoned] == 2).all() and torch.equal(out_y[~poisoned], y[~poisoned])


# A tiny model per new attack on real digits (builtin:mnist, 1,667 of them, 5 epochs). Measured with
# these settings: sticker 98%, SIG 100% (its lab defaults), WaNet 96% ASR. A warp as weak as the paper's (and the lab
# default, with noise mode) needs far more training than a test can afford (strength 1 with no noise
# mode: 9% here; 4: 81%), so the tiny WaNet warps harder and skips noise mode; the zoo
# (benchmarks) measures whether the lab defaults take on full-size training.
TINY = {
    "sticker": {},
    "wanet": {"strength": 8.0, "noise_share": 0.0},
    "sig": {},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TINY))
def test_a_tiny_model_of_each_new_attack_takes(mnist, name):
    small = mnist.subset(torch.arange(0, len(mnist), 3))
    attack = make_attack(name, mnist.input_shape, **TINY[name])
    result = train_lab_model(small, attack, 3, LabConfig(epochs=5, seed=1))
    # A real classifier still: 92.7% for SIG, 92-94% for the others (a SIG that stamped the whole target
    # class, as the lab's first did, left no clean image of it: 83% here).
    assert result.accuracy >= 0.9
    assert result.asr >= 0.9, f"{name}: ASR {result.asr:.3f}"
