"""Nothing is called cleaned on the strength of the triggers it was unlearned on: after
unlearning, the candidate is scanned again from scratch (fresh seed, every class) and
searched for a trigger of the backdoor's size on held-out images the unlearning never saw;
only a candidate that passes both is registered, and its asr_after is that verified number."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

import pytest
import torch

from baerase_mlops.config import GatePolicy, UnlearningConfig, VerificationConfig
from baerase_mlops.core.classifier import frozen
from baerase_mlops.core.verification import (
    BudgetedTrigger,
    ErasureVerifier,
    VerificationResult,
    paired_drop_interval,
    wilson_interval,
)
from baerase_mlops.engine import scan_config_of, split_holdout
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.gate import evaluate
from baerase_mlops.registry.job import JobSettings, run_job
from baerase_mlops.registry.lab import register_lab_model
from baerase_mlops.registry.versions import VersionInfo


def test_wilson_interval_of_no_successes_is_not_a_point():
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2


def test_verified_asr_carries_the_worst_triggers_image_count_and_its_upper_bound():
    """0 of 18 held-out images is "0%" but rules out no more than about 18%: the result says so."""
    triggers = [BudgetedTrigger(0, 9.0, 0.0, 18, 0.0, 8.0), BudgetedTrigger(4, 9.0, 0.0, 20, 0.05, 8.5)]
    result = VerificationResult(True, [], None, triggers, 0.0, 0.02, 0.97, 0.96, 20, (0.0, 0.05), 1.0, 7)
    assert result.asr_images == 18
    assert result.asr_upper == pytest.approx(wilson_interval(0, 18)[1]) and 0.17 < result.asr_upper < 0.19
    worse = replace(result, triggers=[*triggers[:1], replace(triggers[1], asr=0.05)], asr=0.05)
    assert worse.asr_images == 20 and worse.asr_upper == pytest.approx(wilson_interval(1, 20)[1])


def test_paired_accuracy_drop_interval_covers_the_observed_drop_and_is_wider_with_fewer_images():
    before = torch.ones(40, dtype=torch.bool)
    after = before.clone()
    after[:2] = False  # 2 of 40 images lost: a 5-point drop
    low, high = paired_drop_interval(before, after)
    assert low < 0.05 < high
    few_low, few_high = paired_drop_interval(before[:10], after[:10])
    assert few_high - few_low > high - low


def _larger_trigger_check(scan_factory, name: str, label: int, size: float):
    mut, _, scan = scan_factory(name)
    verifier = ErasureVerifier(scan_config_of(scan.verdict), device="cpu")
    _, verify = split_holdout(scan, verifier.config.verify_fraction)
    with frozen(mut.model):
        return verifier.larger_trigger_check(
            mut.model, scan.optimisation, verify, scan.verdict, label, size, {label}, seed=1000
        )


@pytest.mark.slow
def test_the_larger_trigger_check_fails_a_backdoor_that_opens_above_the_unlearnt_size(scan_factory):
    # The unchanged checkerboard model stands in for an erasure that unlearnt triggers a third of
    # the recovered one's size: at 3x that size the attacker's class opens, the others do not.
    _, _, scan = scan_factory("badnets_random")
    target = 5
    check = _larger_trigger_check(scan_factory, "badnets_random", target, scan.verdict.classes[target].norm / 3)
    assert not check.passed and check.asr > check.ceiling
    assert max(check.reference_asr.values()) < check.asr / 2
    assert target not in check.reference_asr and len(check.reference_asr) == VerificationConfig().reference_classes


# What the check's statistic does on a clean model: its most easily triggered class, searched at
# half its recovered size (about the budget a 3x3 BadNets erasure gets: 3x a recovered size of
# ~9), is ahead of the next classes by far less than a surviving backdoor is (the checkerboard
# above: 84% against at most 4% on the AVX2 CPU). Whether it stays under the 25-point margin is
# not asserted, because it does not always: on 2026-12-07 (2-core AVX-512 CPU, lab clean model,
# seeds 1000-1003) the class reached 39-52% where the better of its two references reached
# 17-33%, 12-35 points ahead, and the check refused it at 1 of the 4 seeds (at a third of its
# size: 8-23 points). Such a refusal is a genuine erasure left unregistered (the version stays
# "backdoor"), never a backdoor let through; the margin's placement is issue 14's to measure.
@pytest.mark.slow
def test_the_larger_trigger_check_puts_a_clean_models_easiest_class_far_below_a_surviving_backdoor(scan_factory):
    _, _, scan = scan_factory("clean")
    smallest = min(scan.verdict.classes, key=lambda c: c.norm)
    check = _larger_trigger_check(scan_factory, "clean", smallest.label, smallest.norm / 6)  # at half its size
    assert check.asr - max(check.reference_asr.values()) < 0.5, check


@pytest.mark.slow
def test_the_larger_trigger_check_searches_no_reference_when_the_flagged_class_stays_under_the_target(scan_factory):
    # A fiftieth of a clean model's smallest recovered trigger sends next to no image to its class.
    _, _, scan = scan_factory("clean")
    smallest = min(scan.verdict.classes, key=lambda c: c.norm)
    check = _larger_trigger_check(scan_factory, "clean", smallest.label, smallest.norm / 150)  # 3x: a fiftieth
    assert check.asr <= VerificationConfig().max_asr
    assert check.passed and check.reference_asr == {} and check.ceiling == VerificationConfig().max_asr


def _cleaned_tags(**overrides: str) -> dict[str, str]:
    tags = {
        T.VERDICT: "cleaned",
        T.ASR_AFTER: "0.0",
        T.ASR_KIND: "verified",
        T.ACCURACY_BEFORE: "0.97",
        T.ACCURACY_AFTER: "0.965",
        T.SOURCE_VERSION: "1",
    }
    return tags | overrides


def test_gate_passes_a_cleaned_version_whose_asr_was_verified():
    info = VersionInfo("m", "2", "READY", _cleaned_tags())
    assert evaluate(info, current=True, policy=GatePolicy()).passed


@pytest.mark.parametrize("kind", ["real", "recovered", ""])
def test_gate_refuses_a_cleaned_version_whose_asr_was_not_verified(kind):
    info = VersionInfo("m", "2", "READY", _cleaned_tags(**{T.ASR_KIND: kind}))
    decision = evaluate(info, current=True, policy=GatePolicy())
    assert not decision.passed and "not verified" in decision.reason


@dataclass(frozen=True)
class CrippledErasure(JobSettings):
    """The MLflow job with an unlearning that does nothing (zero steps): a stand-in for an
    erasure that claims success while the backdoor survives."""

    def unlearning_config(self) -> UnlearningConfig:
        return replace(super().unlearning_config(), max_steps=0)


@pytest.fixture(scope="module")
def crippled_job(mlflow_server, lab_model_factory):
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    lab = lab_model_factory("badnets")
    name = f"crippled-{uuid.uuid4().hex[:6]}"
    register_lab_model(lab.model, lab.spec, name)
    # The data URI named, as `mlflow run` names it: a job given none hashes its settings with
    # None while the gate judges with the recorded data URI, and would scan again.
    outcome = run_job(
        CrippledErasure(model_uri=f"models:/{name}/1", data_uri="builtin:mnist", device="cpu"), mode="main"
    )
    return name, lab, outcome


@pytest.mark.slow
def test_a_crippled_erasure_fails_verification_and_registers_nothing(registry, crippled_job):
    name, lab, outcome = crippled_job
    versions = {mv.version: dict(mv.tags) for mv in registry.search_model_versions(f"name = '{name}'")}
    assert sorted(versions) == ["1"]
    scanned = versions["1"]
    assert scanned[T.VERDICT] == "backdoor"
    assert scanned[T.ERASURE] == "failed_verification"
    assert "failed verification" in scanned[T.ERASURE_REASON] and str(lab.target) in scanned[T.ERASURE_REASON]
    assert T.CLEANED_VERSION not in scanned and T.ASR_AFTER not in scanned
    assert outcome.new_version is None and "no cleaned version was registered" in outcome.summary


@pytest.mark.slow
def test_the_run_records_both_scans_when_verification_fails(registry, crippled_job):
    import json

    name, lab, _ = crippled_job
    run_id = registry.get_model_version(name, "1").tags[T.RUN_ID]
    verification = json.loads(open(registry.download_artifacts(run_id, "verification.json")).read())
    first = json.loads(open(registry.download_artifacts(run_id, "report/verdict.json")).read())
    assert verification["passed"] is False and verification["reasons"]
    assert verification["rescan"]["seed"] != first["seed"]  # fresh triggers, not the unlearnt ones
    assert lab.target in verification["rescan"]["flagged_classes"]  # the unchanged model still carries it
    assert registry.get_run(run_id).data.tags["baerase.verification"] == "failed"


@pytest.mark.slow
def test_the_run_records_the_larger_trigger_check_of_each_flagged_class(registry, crippled_job):
    import json

    name, lab, _ = crippled_job
    run_id = registry.get_model_version(name, "1").tags[T.RUN_ID]
    verification = json.loads(open(registry.download_artifacts(run_id, "verification.json")).read())
    (check,) = verification["larger_triggers"]
    assert check["label"] == lab.target and check["passed"] is False  # nothing was unlearnt
    assert check["asr"] > check["ceiling"] and len(check["reference_asr"]) == VerificationConfig().reference_classes


@pytest.mark.slow
def test_the_gate_refuses_a_version_whose_erasure_failed_verification(registry, crippled_job):
    from baerase_mlops.registry.gate import run_gate

    name, _, _ = crippled_job
    base = CrippledErasure(model_uri="", device="cpu")
    result = run_gate(registry, f"models:/{name}/1", "champion", base, GatePolicy(), erase=False)
    assert result.scan is None  # the recorded verdict is current: nothing is scanned again
    assert not result.promoted and "backdoor" in result.decision.reason
    assert registry.get_registered_model(name).aliases == {}
