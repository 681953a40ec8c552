"""Erasing real backdoors with 5% of the training data: real ASR <= 2%, accuracy drop <= 2 points."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from baerase_mlops.cli import main
from baerase_mlops.config import UnlearningConfig, VerificationConfig
from baerase_mlops.core.budgeted import trigger_asr
from baerase_mlops.core.unlearning import UNLEARNING_METHODS, BaeraseUnlearning
from baerase_mlops.engine import run_erase
from baerase_mlops.lab.spec import load_lab_model
from tests.conftest import assert_erased_and_verified

pytestmark = pytest.mark.slow

# For tests of a verification that must fail for a reason other than its trigger searches (the
# fresh scan flags the class, or the rule for adversarial unlearning): one short restart per
# search instead of the defaults' eight 150-step ones (seven until 2026-12-04: 20 of the verification's 48 s).
LIGHT_SEARCHES = VerificationConfig(steps=30, restarts=1, reference_classes=1, reference_restarts=1)


# The Trojan model is erased through the CLI below, and the BadNets model by the gate's scan at the
# defaults on the same data (test_gate.py, same bounds): the same scan, unlearning and
# verification, each of which cost a minute of CI when computed twice.
def test_baerase_erases_the_blended_backdoor_and_keeps_accuracy(scan_factory):
    mut, data, scan = scan_factory("blended")
    outcome = run_erase(mut, data, scan, device="cpu")
    assert outcome.changed and outcome.metrics["reached_target"]
    assert outcome.verified, outcome.verification.reasons
    assert_erased_and_verified(outcome.metrics)


def test_an_erasure_that_changed_nothing_fails_verification(scan_factory):
    mut, data, scan = scan_factory("badnets")
    outcome = run_erase(mut, data, scan, UnlearningConfig(max_steps=0), device="cpu", verification=LIGHT_SEARCHES)
    assert outcome.changed and not outcome.verified
    v = outcome.verification
    assert v.rescan.seed != scan.verdict.seed
    assert 0 in v.rescan.flagged_classes
    assert v.reasons and outcome.metrics["verification_passed"] is False


def test_original_model_is_not_touched(scan_factory):
    mut, data, scan = scan_factory("badnets")
    before = {k: v.clone() for k, v in mut.model.state_dict().items()}
    run_erase(mut, data, scan, UnlearningConfig(max_steps=20, min_steps=0), device="cpu", verification=None)
    assert all(torch.equal(before[k], v) for k, v in mut.model.state_dict().items())


def test_clean_model_goes_through_unchanged_when_nothing_is_flagged(scan_factory):
    mut, data, scan = scan_factory("clean")
    outcome = run_erase(mut, data, scan, device="cpu")
    assert not outcome.changed and outcome.unlearning is None
    assert outcome.model is mut.model
    assert outcome.metrics["accuracy_before"] == outcome.metrics["accuracy_after"]


@pytest.mark.parametrize("larger", [0, 2])
def test_unlearning_is_reproducible_with_a_seed(scan_factory, larger):
    mut, data, scan = scan_factory("badnets")
    config = UnlearningConfig(max_steps=20, min_steps=0, seed=3, larger_triggers=larger, larger_steps=20)
    a = BaeraseUnlearning(config, "cpu").unlearn(mut.model, scan.optimisation, scan.holdout, scan.recovery, [0])
    b = BaeraseUnlearning(config, "cpu").unlearn(mut.model, scan.optimisation, scan.holdout, scan.recovery, [0])
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert a.history == b.history


def test_larger_triggers_stay_within_their_budget_and_open_the_original_backdoor(scan_factory):
    # They stand for the attacker's whole trigger, of which the recovered one may be a fragment.
    mut, _, scan = scan_factory("badnets")
    config = UnlearningConfig(larger_triggers=2)
    x = scan.optimisation.x[scan.optimisation.y != 0]
    found = BaeraseUnlearning(config, "cpu").search_larger_triggers(mut.model, {0: x}, scan.recovery.norms)
    assert len(found[0]) == 2
    budget = scan.recovery.norms[0] * config.larger_budget
    for trigger in found[0]:
        assert float(trigger.mask.sum()) <= budget + 1e-3
        asr = trigger_asr(mut.model, x, trigger.mask, trigger.pattern, 0, torch.device("cpu"))
        assert asr >= 0.9, asr


# The shifted-trigger variant is opt-in because it is not better than the default (README,
# "Unlearning more than the recovered triggers"), and its real ASR on the lab BadNets is not stable:
# 3.0% and 2.2% on two machines, 5.9% on an AVX2-only CPU, 38.6% there at the default flood of 8.
# What it promises is the stopping rule's: its target reached within the accuracy bound.
def test_the_opt_in_shifted_trigger_unlearning_stops_at_its_target_within_the_accuracy_bound(scan_factory):
    mut, data, scan = scan_factory("badnets")
    outcome = run_erase(mut, data, scan, UnlearningConfig(trigger_shift=12), device="cpu", verification=None)
    m = outcome.metrics
    assert m["reached_target"] and m["real_asr_before"] >= 0.95
    assert m["accuracy_before"] - m["accuracy_after"] <= 0.02


def test_an_adversarially_unlearnt_model_is_never_called_cleaned(scan_factory):
    # Its unlearning trains on the verification's own search: a search that then finds nothing is
    # no evidence (on the lab BadNets it verified 0% while the real trigger still took 14.6%).
    mut, data, scan = scan_factory("badnets")
    outcome = run_erase(
        mut,
        data,
        scan,
        UnlearningConfig(max_steps=20, min_steps=0, adversarial_every=10),
        device="cpu",
        verification=LIGHT_SEARCHES,
    )
    assert outcome.changed and not outcome.verified
    assert "no independent evidence" in outcome.verification.reasons[0]


def test_adversarial_unlearning_is_reproducible_with_a_seed(scan_factory):
    mut, _, scan = scan_factory("badnets")
    config = UnlearningConfig(
        max_steps=20, min_steps=0, seed=3, adversarial_every=10, adversarial_steps=5, trigger_shift=4
    )
    a = BaeraseUnlearning(config, "cpu").unlearn(mut.model, scan.optimisation, scan.holdout, scan.recovery, [0])
    b = BaeraseUnlearning(config, "cpu").unlearn(mut.model, scan.optimisation, scan.holdout, scan.recovery, [0])
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert a.searched  # what tells verification that its own search is no evidence here


@pytest.mark.parametrize("method", sorted(UNLEARNING_METHODS))
def test_every_method_shares_the_interface_and_the_stopping_rule(scan_factory, method):
    mut, _, scan = scan_factory("badnets")
    config = UnlearningConfig(max_steps=30, min_steps=10, eval_every=10)
    result = UNLEARNING_METHODS[method](config, "cpu").unlearn(
        mut.model, scan.optimisation, scan.holdout, scan.recovery, [0]
    )
    assert result.method == method and result.history[0].step == 0
    assert result.after in result.history
    assert not result.searched
    assert result.after.clean_accuracy >= result.before.clean_accuracy - config.max_accuracy_drop


def test_checkpoint_losing_too_much_accuracy_is_never_kept(scan_factory):
    mut, _, scan = scan_factory("badnets")
    reckless = UnlearningConfig(
        lr=0.5,
        alpha=0.0,
        distill=0.0,
        l1_pull=0.0,
        flood=50.0,
        grad_clip=1e9,
        max_steps=30,
        min_steps=0,
        max_accuracy_drop=0.0,
    )
    result = BaeraseUnlearning(reckless, "cpu").unlearn(mut.model, scan.optimisation, scan.holdout, scan.recovery, [0])
    assert result.after.clean_accuracy >= result.before.clean_accuracy


def test_cli_erase_reuses_the_scan_report_erases_the_trojan_and_writes_a_working_model(
    lab_model_factory, scan_factory, tmp_path
):
    from baerase_mlops.report.scan_report import write_scan_report

    lab = lab_model_factory("trojan")
    _, _, scan = scan_factory("trojan")  # the session's scan, as `baerase scan` writes it
    write_scan_report(scan, tmp_path / "scan")
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "erase",
            "--model",
            str(lab.model_path),
            "--report",
            str(tmp_path / "scan"),
            "--out",
            str(tmp_path / "cleaned.pt"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output  # 0: erased within the bounds and verified
    assert "recovered-trigger ASR" in result.output and "real ASR" in result.output
    model, spec = load_lab_model(tmp_path / "cleaned.pt")
    assert_erased_and_verified(spec.metrics)
    erasure = json.loads((tmp_path / "cleaned_report" / "erasure.json").read_text())
    assert erasure["changed"] and erasure["targets"] == [3] and erasure["history"][0]["step"] == 0


def test_cli_erase_refuses_a_report_made_with_other_data(lab_model_factory, tmp_path):
    lab = lab_model_factory("trojan")
    runner = CliRunner()
    runner.invoke(
        main, ["scan", "--model", str(lab.model_path), "--out", str(tmp_path / "scan"), "--quiet", "--steps", "10"]
    )
    result = runner.invoke(
        main,
        [
            "erase",
            "--model",
            str(lab.model_path),
            "--report",
            str(tmp_path / "scan"),
            "--clean-fraction",
            "0.1",
            "--out",
            str(tmp_path / "c.pt"),
        ],
    )
    assert result.exit_code == 4 and "scan again" in result.output
    assert not (tmp_path / "c.pt").exists()


def test_baerase_erases_a_warping_backdoor_through_its_recovered_warp(scan_factory, lab_model_factory):
    # WaNet stamps no mask: the scan flags it by its smallest warp, the unlearning resamples images
    # through that warp, and the verification searches afresh for a warp of that size.
    mut, data, scan = scan_factory("wanet")
    target = lab_model_factory("wanet").target
    assert scan.verdict.flagged_classes == [target]
    assert "warp" in scan.verdict.classes[target].flagged_by.split("+") and target in scan.warp_flows
    outcome = run_erase(mut, data, scan, device="cpu")
    assert outcome.verified, outcome.verification.reasons
    assert [w.label for w in outcome.verification.warps] == [target]
    assert outcome.verification.triggers == []  # no mask search at a size the size test found ordinary
    assert [check.label for check in outcome.verification.larger_warps] == [target]
    assert all(check.passed for check in outcome.verification.larger_warps)
    m = outcome.metrics
    assert m["real_asr_before"] >= 0.85 and m["real_asr_after"] <= 0.02  # the tiny WaNet takes 90%
    assert m["accuracy_before"] - m["accuracy_after"] <= 0.02
    assert m["real_asr_after"] - 0.02 <= m["verified_asr"] <= 0.02


def test_a_warping_backdoor_left_in_place_fails_the_larger_warp_check(scan_factory, lab_model_factory):
    mut, data, scan = scan_factory("wanet")
    target = lab_model_factory("wanet").target
    outcome = run_erase(mut, data, scan, UnlearningConfig(max_steps=0), device="cpu", verification=LIGHT_SEARCHES)
    assert not outcome.verified
    (check,) = outcome.verification.larger_warps
    assert check.label == target and not check.passed and check.asr > check.ceiling
    assert any("survives as a larger warp" in reason for reason in outcome.verification.reasons)
