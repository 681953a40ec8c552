"""The backdoor lab makes real backdoored models: high clean accuracy, high ASR, reproducibly."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from baerase_mlops.cli import main
from baerase_mlops.config import LabConfig
from baerase_mlops.core.metrics import accuracy
from baerase_mlops.errors import ModelError
from baerase_mlops.lab.attacks import attack_from_params, make_attack
from baerase_mlops.lab.spec import load_lab_model
from baerase_mlops.lab.train import lab_splits, real_asr, train_lab_model, true_attack


@pytest.mark.slow
@pytest.mark.parametrize("name", ["badnets", "badnets_random", "trojan", "blended"])
def test_each_attack_gives_accurate_model_with_working_backdoor(lab_model_factory, name):
    lab = lab_model_factory(name)
    assert lab.accuracy >= 0.95
    assert lab.asr >= 0.95


@pytest.mark.slow
def test_clean_model_sends_triggered_images_to_target_only_by_chance(lab_model_factory, mnist):
    lab = lab_model_factory("clean")
    _, test = lab_splits(mnist, lab.spec)
    badnets = make_attack("badnets", mnist.input_shape)
    assert lab.accuracy >= 0.95
    assert real_asr(lab.model, test, badnets, 0, torch.device("cpu")) < 0.1


@pytest.mark.slow
def test_saved_model_reloads_to_the_same_predictions(lab_model_factory, mnist):
    lab = lab_model_factory("trojan")
    model, spec = load_lab_model(lab.model_path)
    _, test = lab_splits(mnist, spec)
    assert accuracy(model, test.x, test.y, torch.device("cpu")) == pytest.approx(lab.accuracy)
    attack, target = true_attack(spec)
    assert target == 3 and attack.params() == make_attack("trojan", mnist.input_shape).params()


def test_training_is_reproducible_with_a_seed(mnist):
    small = mnist.subset(torch.arange(0, 5000, 10))
    attack = make_attack("badnets", mnist.input_shape)
    config = LabConfig(epochs=1, seed=7)
    a = train_lab_model(small, attack, 1, config).model.state_dict()
    b = train_lab_model(small, attack, 1, config).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("badnets", {}),
        ("badnets", {"position": "random", "pattern": "random"}),
        ("trojan", {"size": 4}),
        ("blended", {"alpha": 0.2}),
        ("none", {}),
    ],
)
def test_attack_parameters_round_trip_through_json(name, kwargs):
    attack = make_attack(name, (1, 28, 28), **kwargs)
    rebuilt = attack_from_params(json.loads(json.dumps(attack.params())))
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(
        attack.stamp(x, torch.Generator().manual_seed(1)), rebuilt.stamp(x, torch.Generator().manual_seed(1))
    )


def test_trojan_trigger_is_not_a_solid_square():
    mask, _ = make_attack("trojan", (1, 28, 28)).triggers(1, (1, 28, 28))
    patch = mask[0, 0, 1:6, 1:6]
    assert 0 < patch.sum() < patch.numel()


def test_blended_trigger_covers_the_whole_image_at_alpha():
    mask, pattern = make_attack("blended", (3, 32, 32), alpha=0.1).triggers(2, (3, 32, 32))
    assert torch.all(mask == 0.1) and pattern.shape == (2, 3, 32, 32)


def test_random_position_moves_the_patch():
    attack = make_attack("badnets", (1, 28, 28), position="random")
    mask, _ = attack.triggers(8, (1, 28, 28), torch.Generator().manual_seed(0))
    assert len({tuple(torch.nonzero(m[0])[0].tolist()) for m in mask}) > 1


def test_a_patch_outside_the_image_is_refused():
    with pytest.raises(ValueError, match="outside 28 x 28"):
        make_attack("badnets", (1, 28, 28), position=(27, 27))


def test_a_missing_model_file_is_named(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_lab_model(tmp_path / "none.pt")


def test_a_pickled_object_is_refused_by_the_weights_only_loader(tmp_path, mnist):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    (tmp_path / "m.pt").write_bytes(pickle.dumps(Evil()))
    (tmp_path / "m.json").write_text(
        json.dumps(
            {
                "architecture": "small_cnn",
                "input_shape": [1, 28, 28],
                "classes": list("0123456789"),
                "mean": [0.1],
                "std": [0.3],
            }
        )
    )
    with pytest.raises(ModelError, match="without unpickling"):
        load_lab_model(tmp_path / "m.pt")


def test_weights_that_do_not_fit_the_spec_are_named(tmp_path):
    small = make_attack("none", (1, 8, 8))
    from baerase_mlops.data import from_arrays

    digits = from_arrays(torch.rand(40, 1, 8, 8), torch.arange(40) % 10, source="t")
    result = train_lab_model(digits, small, 0, LabConfig(epochs=1))
    torch.save(result.model.state_dict(), tmp_path / "m.pt")
    (tmp_path / "m.json").write_text(json.dumps({**result.spec.to_json(), "input_shape": [1, 28, 28]}))
    with pytest.raises(ModelError, match="do not fit"):
        load_lab_model(tmp_path / "m.pt")


def test_spec_without_input_shape_is_named(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"architecture": "small_cnn"}))
    (tmp_path / "m.pt").write_bytes(b"")
    with pytest.raises(ModelError, match="lacks"):
        load_lab_model(tmp_path / "m.pt")


@pytest.mark.slow
def test_cli_lab_train_writes_model_and_spec_and_prints_metrics(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "lab",
            "train",
            "--dataset",
            "builtin:mnist",
            "--attack",
            "blended",
            "--target",
            "2",
            "--out",
            str(tmp_path / "model.pt"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "attack success rate" in result.output
    spec = json.loads((tmp_path / "model.json").read_text())
    assert spec["attack"]["name"] == "blended" and spec["attack"]["target"] == 2
    assert spec["metrics"]["accuracy"] >= 0.95 and spec["metrics"]["asr"] >= 0.95


def test_cli_missing_dataset_exits_2_and_names_it(tmp_path):
    result = CliRunner().invoke(
        main, ["lab", "train", "--dataset", str(tmp_path / "x.npz"), "--out", str(tmp_path / "m.pt")]
    )
    assert result.exit_code == 2
    assert "x.npz" in result.output and not (tmp_path / "m.pt").exists()


def test_cli_target_outside_the_classes_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["lab", "train", "--target", "10", "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 4
    assert "--target 10" in result.output


def test_cli_unknown_attack_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["lab", "train", "--attack", "nope", "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 4


# --- the zoo's architectures and training recipes -------------------------------------------------

ARCH_SHAPES = [
    ("small_cnn", (1, 28, 28)),
    ("lenet5", (1, 28, 28)),
    ("conv_bn", (1, 28, 28)),
    ("vgg_bn", (3, 32, 32)),
    ("resnet_narrow", (3, 32, 32)),
    ("lenet5", (3, 32, 32)),
    ("conv_bn", (3, 32, 32)),
]


@pytest.mark.parametrize(("arch", "shape"), ARCH_SHAPES)
def test_each_architecture_rebuilds_from_its_spec_json_and_takes_pixels(tmp_path, arch, shape):
    from baerase_mlops.lab.spec import ModelSpec, save_lab_model

    spec = ModelSpec(
        arch,
        shape,
        tuple(str(i) for i in range(10)),
        (0.5,) * shape[0],
        (0.25,) * shape[0],
        width=8 if arch != "lenet5" else 32,
    )
    torch.manual_seed(0)
    model = spec.build().eval()
    save_lab_model(model, spec, tmp_path / "m.pt")
    rebuilt, rebuilt_spec = load_lab_model(tmp_path / "m.pt")
    x = torch.rand(2, *shape)
    assert rebuilt_spec == spec
    assert torch.equal(rebuilt(x), model(x)) and model(x).shape == (2, 10)
    assert torch.allclose(model.normalize(x), (x - 0.5) / 0.25)  # normalisation inside: the model takes [0, 1] pixels


def test_the_user_style_families_have_batchnorm_and_lenet_has_none():
    from baerase_mlops.lab.models import build_classifier

    def has_bn(arch, shape):
        return any(
            isinstance(m, torch.nn.BatchNorm2d)
            for m in build_classifier(arch, shape, 10, [0.5] * shape[0], [0.2] * shape[0]).modules()
        )

    assert has_bn("conv_bn", (1, 28, 28)) and has_bn("vgg_bn", (3, 32, 32)) and has_bn("resnet_narrow", (3, 32, 32))
    assert not has_bn("lenet5", (1, 28, 28)) and not has_bn("small_cnn", (1, 28, 28))


@pytest.mark.parametrize(
    ("arch", "shape", "message"),
    [("lenet5", (1, 8, 8), "at least 12"), ("resnet18", (1, 28, 28), "32 x 32"), ("nope", (1, 28, 28), "unknown")],
)
def test_an_architecture_that_cannot_take_the_images_is_refused_before_training(arch, shape, message):
    from baerase_mlops.data import from_arrays

    data = from_arrays(torch.rand(40, *shape), torch.arange(40) % 10, source="t")
    with pytest.raises(ValueError, match=message):
        train_lab_model(data, make_attack("none", shape), 0, LabConfig(architecture=arch, epochs=1))


def test_cli_lab_train_offers_every_attack_and_architecture():
    from baerase_mlops.lab.names import ARCHITECTURES, ATTACKS

    result = CliRunner().invoke(main, ["lab", "train", "--help"])
    assert all(name in result.output for name in (*ATTACKS, *ARCHITECTURES))


def test_crop_augmentation_shifts_images_and_only_crop_flip_mirrors_them():
    from baerase_mlops.lab.train import augment_batch

    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 10:14, 2:6] = 1.0  # a patch near the left edge
    gen = torch.Generator().manual_seed(0)
    cropped = augment_batch(x, "crop", gen)
    assert cropped.shape == x.shape and not torch.equal(cropped, x)
    cols = [torch.nonzero(img[0].sum(0)).flatten() for img in cropped]
    assert max(int(c.min()) for c in cols if len(c)) <= 10  # shifted by at most 4 px: never mirrored to the right
    flipped = augment_batch(x, "crop_flip", torch.Generator().manual_seed(0))
    right = sum(1 for img in flipped if img[0, :, 16:].sum() > 0)
    assert 10 < right < 54  # about half mirrored
    assert torch.equal(augment_batch(x, "none", gen), x)


@pytest.mark.slow
def test_sgd_training_with_augmentation_is_reproducible_and_recorded_in_the_spec():
    from baerase_mlops.data import load_images

    digits = load_images("builtin:digits")
    small = digits.subset(torch.arange(0, len(digits), 4))
    config = LabConfig(architecture="conv_bn", width=8, epochs=1, optimizer="sgd", lr=0.05, augment="crop", seed=3)
    a, b = (
        train_lab_model(small, make_attack("sticker", digits.input_shape, size=3), 1, config),
        train_lab_model(small, make_attack("sticker", digits.input_shape, size=3), 1, config),
    )
    assert all(torch.equal(a.model.state_dict()[k], b.model.state_dict()[k]) for k in a.model.state_dict())
    assert a.spec.training["optimizer"] == "sgd" and a.spec.training["augment"] == "crop"
    assert a.spec.training["poisoned_images"] == round(0.1 * a.spec.training["training_images"])
