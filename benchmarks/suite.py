"""Run a profile: for every (dataset, seed, case) train or reuse a lab model, scan it once,
run every defence from that scan, and record every number; then the scan micro-benchmark.

The defence goes through the same job functions as the CLI and the MLflow project
(``jobs.prepare_clean_data``, ``jobs.run_scan``, ``jobs.run_erase``), so the table
measures the product, not a re-implementation of it.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from baerase_mlops.config import ScanConfig, UnlearningConfig
from baerase_mlops.core.scan import ScanResult
from baerase_mlops.data import load_images
from baerase_mlops.engine import CleanData, EraseOutcome, prepare_clean_data, run_erase, run_scan
from benchmarks.cases import Case, make_case
from benchmarks.labcache import LabModel, dataset_uri, obtain_lab_model
from benchmarks.machine import load_average, utc_now
from benchmarks.memory import PeakMemory, Stopwatch
from benchmarks.profiles import DatasetPlan, Profile

Log = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    profile: Profile
    datasets_dir: Path
    cache_dir: Path
    reuse: bool  # take lab models from cache_dir when there
    device: torch.device


def scan_config(profile: Profile, seed: int) -> ScanConfig:
    base = ScanConfig()
    return replace(base, recovery=replace(base.recovery, **profile.recovery_overrides, seed=seed))


def unlearning_config(profile: Profile, seed: int) -> UnlearningConfig:
    return replace(UnlearningConfig(), **profile.unlearning_overrides, seed=seed)


def run_dataset(settings: Settings, plan: DatasetPlan, log: Log, record: Callable[[dict[str, Any]], None]) -> None:
    """Every model of ``plan``: one record each, an error recorded (not raised) where a run fails."""
    uri = dataset_uri(plan, settings.datasets_dir, settings.cache_dir)
    data = load_images(uri)
    shape, classes = data.input_shape, data.num_classes
    del data  # each run reloads through the product's own path (prepare_clean_data)
    for seed, name in plan.models():
        case = make_case(name, seed, shape, classes)
        started = time.perf_counter()
        log(f"{plan.name} {name} seed {seed}: target {case.target if case.backdoored else '-'}")
        try:
            result = run_case(settings, plan, uri, case, log)
        except Exception as exc:  # one broken run must not lose the others; it is reported, not hidden
            log(f"{plan.name} {name} seed {seed}: FAILED {type(exc).__name__}: {exc}")
            result = {**case_identity(plan, case), "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        result["wall_s"] = time.perf_counter() - started
        result["finished_at"] = utc_now()
        result["load_average"] = load_average()
        record(result)


def case_identity(plan: DatasetPlan, case: Case) -> dict[str, Any]:
    return {
        "dataset": plan.name,
        "case": case.name,
        "label": case.label,
        "seed": case.seed,
        "backdoored": case.backdoored,
        "attack": case.attack.params(),
        "target": case.target if case.backdoored else None,
        "lab_config": plan.lab,
    }


def run_case(settings: Settings, plan: DatasetPlan, uri: str, case: Case, log: Log) -> dict[str, Any]:
    lab = obtain_lab_model(plan, case, uri, settings.datasets_dir, settings.cache_dir, settings.reuse, str(settings.device))
    log(f"  lab model: accuracy {lab.accuracy:.4f}, ASR {lab.asr:.4f} ({'cached' if lab.cached else f'trained in {lab.train_s:.1f} s'})")
    data = prepare_clean_data(None, lab.mut, seed=case.seed)  # 5% of the lab model's training split
    scan, scan_record = timed_scan(settings, lab, data, case)
    log(f"  scan: flagged {scan.verdict.flagged_classes}, anomaly index {scan.verdict.anomaly_index:.2f}, {scan_record['wall_s']:.1f} s")
    defences = run_defences(settings, lab, data, scan, case, log)
    return {
        **case_identity(plan, case),
        "lab": lab_record(lab),
        "clean_set": {"images": len(data.clean), "evaluation_images": len(data.evaluation) if data.evaluation else None, "description": data.description},
        "scan": scan_record,
        "defences": defences,
        "error": None,
    }


def lab_record(lab: LabModel) -> dict[str, Any]:
    spec = lab.mut.lab_spec
    return {
        "accuracy": lab.accuracy,
        "asr": lab.asr,
        "train_s": lab.train_s,
        "train_cpu_s": lab.train_cpu_s,
        "cached": lab.cached,
        "architecture": spec.architecture if spec else None,
        "training": spec.training if spec else None,
        "model_file": lab.path.name,
    }


def timed_scan(settings: Settings, lab: LabModel, data: CleanData, case: Case) -> tuple[ScanResult, dict[str, Any]]:
    with PeakMemory(settings.device) as peak, Stopwatch() as watch:
        scan = run_scan(lab.mut, data, scan_config(settings.profile, case.seed), str(settings.device))
    return scan, detection_record(scan, case, watch, peak)


def detection_record(scan: ScanResult, case: Case, watch: Stopwatch, peak: PeakMemory) -> dict[str, Any]:
    v = scan.verdict
    flagged = list(v.flagged_classes)
    norms = [c.norm for c in v.classes]
    target = v.classes[case.target] if case.backdoored else None
    return {
        "backdoor": v.backdoor,
        "flagged": flagged,
        "right_class": (case.target in flagged) if case.backdoored else None,
        "other_flagged": [k for k in flagged if not case.backdoored or k != case.target],
        "anomaly_index": v.anomaly_index,
        "smallest_class": min(range(len(norms)), key=norms.__getitem__),
        "target_anomaly_index": target.anomaly_index if target else None,
        "target_norm": target.norm if target else None,
        "target_holdout_asr": target.holdout_asr if target else None,
        "median_norm": v.median_norm,
        "mad": v.mad,
        "threshold": v.threshold,
        "norms": norms,
        "reached": [c.reached for c in v.classes],
        "recovery_steps": scan.recovery.steps,
        "recovery_s": v.timings["recovery_s"],
        "scan_s": v.timings["total_s"],
        "wall_s": watch.wall_s,
        "cpu_s": watch.cpu_s,
        "device": v.device,
        "memory": peak.result.to_json() if peak.result else None,
    }


def run_defences(settings: Settings, lab: LabModel, data: CleanData, scan: ScanResult, case: Case, log: Log) -> dict[str, dict[str, Any]]:
    """Each defence from the same scan. With nothing flagged the product leaves the model as
    it is whatever the method, so that outcome is measured once and stands for all."""
    config = unlearning_config(settings.profile, case.seed)
    if not scan.verdict.flagged_classes:
        record = timed_erase(settings, lab, data, scan, config, settings.profile.defences[0])
        log("  nothing flagged: every defence leaves the model unchanged")
        return {method: {**record, "method": method} for method in settings.profile.defences}
    out = {}
    for method in settings.profile.defences:
        out[method] = timed_erase(settings, lab, data, scan, config, method)
        r = out[method]
        log(
            f"  {method}: accuracy {r['accuracy_before']:.4f} -> {r['accuracy_after']:.4f}, "
            f"ASR {r['asr_before']:.4f} -> {r['asr_after']:.4f}, {r['unlearning_steps']} steps, {r['wall_s']:.1f} s"
        )
    return out


def timed_erase(settings: Settings, lab: LabModel, data: CleanData, scan: ScanResult, config: UnlearningConfig, method: str) -> dict[str, Any]:
    with PeakMemory(settings.device) as peak, Stopwatch() as watch:
        outcome = run_erase(lab.mut, data, scan, config, method, str(settings.device))
    return erase_record(outcome, method, watch, peak)


def erase_record(outcome: EraseOutcome, method: str, watch: Stopwatch, peak: PeakMemory) -> dict[str, Any]:
    m = outcome.metrics
    result = outcome.unlearning
    return {
        "method": method,
        "changed": outcome.changed,
        "accuracy_before": m["accuracy_before"],
        "accuracy_after": m["accuracy_after"],
        "accuracy_on": m["accuracy_on"],
        "asr_before": m["asr_before"],
        "asr_after": m["asr_after"],
        "asr_kind": m["asr_kind"],  # "real" (the attacker's trigger) for lab backdoors, else "recovered"
        "recovered_asr_before": m.get("recovered_asr_before"),
        "recovered_asr_after": m.get("recovered_asr_after"),
        "reached_target": m.get("reached_target"),
        "unlearning_steps": m.get("unlearning_steps", 0),
        "kept_step": result.after.step if result else None,
        "unlearning_s": m.get("unlearning_s", 0.0),
        "wall_s": watch.wall_s,  # unlearning plus the before/after measurements on the lab test split
        "cpu_s": watch.cpu_s,
        "memory": peak.result.to_json() if peak.result else None,
    }


def run_scan_speed(settings: Settings, log: Log) -> dict[str, Any]:
    """Batched (class_chunk=0) vs sequential (class_chunk=1) recovery on one lab model.

    Early stopping is switched off so that both modes run exactly ``steps`` optimiser
    steps per group (the sequential mode has one group per class): the comparison is of
    the same work, done together or one class after another."""
    speed = settings.profile.scan_speed
    plan = next(d for d in settings.profile.datasets if d.name == speed.dataset)
    uri = dataset_uri(plan, settings.datasets_dir, settings.cache_dir)
    data = load_images(uri)
    case = make_case("badnets", plan.seeds[0], data.input_shape, data.num_classes)
    del data
    lab = obtain_lab_model(plan, case, uri, settings.datasets_dir, settings.cache_dir, True, str(settings.device))
    clean = prepare_clean_data(None, lab.mut, seed=case.seed)
    rows = []
    for mode, chunk in (("batched", 0), ("sequential", 1)):
        base = scan_config(settings.profile, case.seed)
        recovery = replace(base.recovery, steps=speed.steps, class_chunk=chunk, early_stop_rounds=speed.steps + 1)
        with PeakMemory(settings.device) as peak, Stopwatch() as watch:
            scan = run_scan(lab.mut, clean, replace(base, recovery=recovery), str(settings.device))
        rows.append({
            "mode": mode,
            "class_chunk": chunk,
            "groups": scan.recovery.groups,
            "steps": scan.recovery.steps,
            "recovery_s": scan.recovery.seconds,
            "scan_s": watch.wall_s,
            "cpu_s": watch.cpu_s,
            "flagged": scan.verdict.flagged_classes,
            "memory": peak.result.to_json() if peak.result else None,
        })  # fmt: skip
        log(f"scan speed, {mode}: {scan.recovery.groups} group(s), {scan.recovery.steps} steps, {scan.recovery.seconds:.1f} s")
    batched, sequential = rows
    return {
        "dataset": plan.name,
        "model": lab.path.name,
        "target": case.target,
        "steps_per_group": speed.steps,
        "rows": rows,
        "speedup": sequential["recovery_s"] / batched["recovery_s"],
        "load_average": load_average(),
    }
