"""Run a profile: for every (dataset, architecture, seed, case) train or reuse a lab model, then
run every defence on it and record every number.

Defences (``profiles.DEFENCES``), each timed in the same run on the same machine:

- ``baerase``: the product's defaults, a BAERASE scan and BAERASE unlearning;
- ``neural_cleanse``: the product's Neural-Cleanse mode, its own scan (``method=neural_cleanse``)
  and NC unlearning;
- ``fine_tuning``: fine-tuning on the clean set, from the default scan.

With ``--peer-dir``, an external reference implementation runs on every model too: BackdoorBench's
Neural Cleanse detection, from the user's own checkout (``benchmarks.peer``), recorded as the scan
``backdoorbench_nc`` beside the product's two.

The defence goes through the same job functions as the CLI and the MLflow project
(``jobs.prepare_clean_data``, ``jobs.run_scan``, ``jobs.run_erase``), so the table
measures the product, not a re-implementation of it.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from baerase_mlops.config import ScanConfig, UnlearningConfig, VerificationConfig
from baerase_mlops.core.scan import ScanResult
from baerase_mlops.data import load_images
from baerase_mlops.engine import CleanData, EraseOutcome, prepare_clean_data, run_erase, run_scan
from benchmarks.cases import Case, make_case
from benchmarks.labcache import LabModel, dataset_uri, load_cached_model, obtain_lab_model
from benchmarks.machine import load_average, utc_now
from benchmarks.memory import PeakMemory, Stopwatch
from benchmarks.peer import PEER_SCAN, BackdoorBenchNC
from benchmarks.profiles import DEFENCE_METHODS, SCAN_METHODS, DatasetPlan, Profile

Log = Callable[[str], None]
ASR_TOOK = 0.9  # a backdoored model counts only when its real ASR reached this


@dataclass(frozen=True)
class Settings:
    profile: Profile
    datasets_dir: Path
    cache_dir: Path
    reuse: bool  # take lab models from cache_dir when there
    device: torch.device
    peer: BackdoorBenchNC | None = None  # --peer-dir: the external reference's detection, off by default


def run_key(run: dict[str, Any]) -> str:
    """What identifies a cell's run across shards: a re-run of it replaces it."""
    return f"{run['dataset']}/{run['arch']}/{run['case']}/seed{run['seed']}"


def scan_config(profile: Profile, seed: int, method: str = "baerase") -> ScanConfig:
    base = ScanConfig()
    return replace(base, method=method, recovery=replace(base.recovery, **profile.recovery_overrides, seed=seed))


def unlearning_config(profile: Profile, seed: int) -> UnlearningConfig:
    return replace(UnlearningConfig(), **profile.unlearning_overrides, seed=seed)


def verification_config(profile: Profile) -> VerificationConfig:
    return replace(VerificationConfig(), **profile.verification_overrides)


def run_dataset(settings: Settings, plan: DatasetPlan, log: Log, record: Callable[[dict[str, Any]], None]) -> None:
    """Every model of ``plan``: one record each, an error recorded (not raised) where a run fails."""
    uri = dataset_uri(plan, settings.datasets_dir, settings.cache_dir)
    data = load_images(uri)
    shape, classes = data.input_shape, data.num_classes
    del data  # each run reloads through the product's own path (prepare_clean_data)
    for arch, seed, name in plan.models():
        case = make_case(name, seed, shape, classes)
        started = time.perf_counter()
        log(f"{plan.name} {arch} {name} seed {seed}: target {case.target if case.backdoored else '-'}")
        try:
            result = run_case(settings, plan, arch, uri, case, log)
        except Exception as exc:  # noqa: BLE001  one broken run must not lose the others; it is reported, not hidden
            log(f"{plan.name} {arch} {name} seed {seed}: FAILED {type(exc).__name__}: {exc}")
            result = {
                **case_identity(plan, arch, case),
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        result["wall_s"] = time.perf_counter() - started
        result["finished_at"] = utc_now()
        result["load_average"] = load_average()
        record(result)


def case_identity(plan: DatasetPlan, arch: str, case: Case) -> dict[str, Any]:
    identity = {
        "dataset": plan.name,
        "arch": arch,
        "case": case.name,
        "label": case.label,
        "seed": case.seed,
        "backdoored": case.backdoored,
        "attack": case.attack.params(),
        "target": case.target if case.backdoored else None,
        "lab_config": plan.lab(arch),
    }
    return {"key": run_key(identity), **identity}


def run_case(settings: Settings, plan: DatasetPlan, arch: str, uri: str, case: Case, log: Log) -> dict[str, Any]:
    lab = obtain_lab_model(
        plan,
        arch,
        case,
        uri,
        settings.datasets_dir,
        settings.cache_dir,
        reuse=settings.reuse,
        device=str(settings.device),
    )
    took = (lab.asr >= ASR_TOOK) if case.backdoored else None
    log(
        f"  lab model: accuracy {lab.accuracy:.4f}, ASR {lab.asr:.4f}"
        + (" (did NOT take: reported, not counted)" if took is False else "")
        + f" ({'cached' if lab.cached else f'trained in {lab.train_s:.1f} s'})"
    )
    data = prepare_clean_data(None, lab.mut, seed=case.seed)  # 5% of the lab model's training split
    scans: dict[str, ScanResult] = {}
    scan_records: dict[str, dict[str, Any]] = {}
    defences: dict[str, dict[str, Any]] = {}
    config = unlearning_config(settings.profile, case.seed)
    # Both scans on every model, also in a scans-only shard (no defences): detection compares them.
    for scan_method in SCAN_METHODS:
        scans[scan_method], scan_records[scan_method] = timed_scan(settings, lab, data, case, scan_method)
        s = scan_records[scan_method]
        log(
            f"  {scan_method} scan: flagged {s['flagged']}, anomaly index {s['anomaly_index']:.2f}, target's "
            f"{_fmt(s['target_anomaly_index'])}, {s['wall_s']:.1f} s"
        )
    peer_error = None
    if settings.peer is not None:
        target = case.target if case.backdoored else None
        peer_scan, peer_error = _guarded_peer_scan(settings, lambda: (lab.mut.model, data), case.seed, target, log)
        if peer_scan is not None:
            scan_records[PEER_SCAN] = peer_scan
    for defence in settings.profile.defences:
        scan_method, unlearning = DEFENCE_METHODS[defence]
        record = timed_erase(settings, lab, data, scans[scan_method], config, unlearning)
        record.update(defence=defence, scan=scan_method, total_s=scan_records[scan_method]["wall_s"] + record["wall_s"])
        defences[defence] = record
        log(
            f"  {defence}: accuracy {record['accuracy_before']:.4f} -> {record['accuracy_after']:.4f}, "
            f"ASR {_fmt(record['asr_before'], 4)} -> {_fmt(record['asr_after'], 4)}"
            + (
                f", {record['unlearning_steps']} steps, {record['wall_s']:.1f} s"
                if record["changed"]
                else " (nothing flagged: unchanged)"
            )
        )
    return {
        **case_identity(plan, arch, case),
        "took": took,
        "lab": lab_record(lab),
        "clean_set": {
            "images": len(data.clean),
            "evaluation_images": len(data.evaluation) if data.evaluation else None,
            "description": data.description,
        },
        "scans": scan_records,
        "defences": defences,
        "error": None,
        **({"peer_error": peer_error} if peer_error else {}),
    }


def add_peer_scans(
    settings: Settings, previous: list[dict[str, Any]], log: Log, record: Callable[[dict[str, Any]], None]
) -> None:
    """``--peer-only``: the peer's scan added to the runs already in the table (those of the shard's
    selection) that have none yet, on the very model each was run on (its cache file) and the same
    clean images. Nothing trains and nothing of the product runs again: the run is recorded as it was, plus the peer."""
    if settings.peer is None:
        raise ValueError("add_peer_scans needs settings.peer (--peer-dir)")
    selected = {
        run_key({"dataset": plan.name, "arch": arch, "case": name, "seed": seed})
        for plan in settings.profile.datasets
        for arch, seed, name in plan.models()
    }
    for run in previous:
        if run_key(run) not in selected or run.get("error") or PEER_SCAN in run["scans"]:
            continue  # a stopped --peer-only run picks up where it stopped
        path = Path(run["lab"]["model_file"])
        log(f"{run_key(run)}: peer only, on {path.name}")
        if not path.is_file():
            log(f"{run_key(run)}: SKIPPED, its model {path} is not in the cache (run the product's shard again)")
            continue
        started = time.perf_counter()

        def cached_model_and_data(path: Path = path) -> tuple[torch.nn.Module, CleanData]:
            cached = load_cached_model(path)
            return cached.mut.model, cached.data

        scan, _ = _guarded_peer_scan(settings, cached_model_and_data, run["seed"], run.get("target"), log)
        if scan is None:
            continue  # logged; a later --peer-only pass tries it again
        record(
            {
                **{k: v for k, v in run.items() if k != "peer_error"},
                "scans": {**run["scans"], PEER_SCAN: scan | {"added_at": utc_now()}},
                "wall_s": run.get("wall_s", 0.0) + time.perf_counter() - started,
            }
        )


def _guarded_peer_scan(
    settings: Settings,
    model_and_data: Callable[[], tuple[torch.nn.Module, CleanData]],
    seed: int,
    target: int | None,
    log: Log,
) -> tuple[dict[str, Any] | None, str | None]:
    """(the peer's scan record, None), or (None, why it failed): the peer is a reference run
    beside the product, so its failure is logged (and kept as the run's ``peer_error``) and never
    costs the product's results for the model."""
    try:
        model, data = model_and_data()
        scan = timed_peer_scan(settings.peer, settings, model, data, seed, target)
    except Exception as exc:  # the peer's own code, or a cache file it cannot read
        error = f"{type(exc).__name__}: {exc}"
        log(f"  {PEER_SCAN} scan (peer) FAILED: {error}")
        return None, error
    log_peer_scan(scan, log)
    return scan, None


def log_peer_scan(s: dict[str, Any], log: Log) -> None:
    log(
        f"  {PEER_SCAN} scan (peer): flagged {s['flagged']}, anomaly index {s['anomaly_index']:.2f}, target's "
        f"{_fmt(s['target_anomaly_index'])}, {s['wall_s']:.1f} s"
    )


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def lab_record(lab: LabModel) -> dict[str, Any]:
    spec = lab.mut.lab_spec
    return {
        "accuracy": lab.accuracy,
        "asr": lab.asr,
        "train_s": lab.train_s,
        "train_cpu_s": lab.train_cpu_s,
        "train_rss_peak_mib": lab.train_rss_peak_mib,
        "cached": lab.cached,
        "architecture": spec.architecture if spec else None,
        "parameters": sum(p.numel() for p in lab.mut.model.parameters()),
        "training": spec.training if spec else None,
        "model_file": str(lab.path),
        "cache_key": lab.key,
    }


def timed_scan(
    settings: Settings, lab: LabModel, data: CleanData, case: Case, method: str
) -> tuple[ScanResult, dict[str, Any]]:
    with PeakMemory(settings.device) as peak, Stopwatch() as watch:
        scan = run_scan(lab.mut, data, scan_config(settings.profile, case.seed, method), str(settings.device))
    return scan, detection_record(scan, case, watch, peak)


def detection_record(scan: ScanResult, case: Case, watch: Stopwatch, peak: PeakMemory) -> dict[str, Any]:
    v = scan.verdict
    flagged = list(v.flagged_classes)
    norms = [c.norm for c in v.classes]
    target = v.classes[case.target] if case.backdoored else None
    return {
        "method": v.method,
        "backdoor": v.backdoor,
        "flagged": flagged,
        "right_class": (case.target in flagged) if case.backdoored else None,
        "other_flagged": [k for k in flagged if not case.backdoored or k != case.target],
        "anomaly_index": v.anomaly_index,
        "anomaly_indices": [c.anomaly_index for c in v.classes],
        "smallest_class": min(range(len(norms)), key=norms.__getitem__),
        "target_anomaly_index": target.anomaly_index if target else None,
        "target_norm": target.norm if target else None,
        "target_holdout_asr": target.holdout_asr if target else None,
        "median_norm": v.median_norm,
        "mad": v.mad,
        "threshold": v.threshold,
        "norms": norms,
        "reached": [c.reached for c in v.classes],
        "holdout_asr": [c.holdout_asr for c in v.classes],
        "margins": [c.margin for c in v.classes],
        "margin_indices": [c.margin_index for c in v.classes],
        "flagged_by": [c.flagged_by for c in v.classes],
        "target_margin_index": target.margin_index if target else None,
        "warps": [c.warp for c in v.classes],  # smallest smooth warp, pixels (core.warps)
        "warp_indices": [c.warp_index for c in v.classes],  # null where the warp test was inconclusive
        "target_warp_index": target.warp_index if target else None,
        "recovery_steps": scan.recovery.steps,
        "recovery_budget": v.config["recovery"]["steps"],
        "class_steps": [c.steps for c in v.classes],  # the class schedule's, per class
        "weights": [c.weight for c in v.classes],  # in the size test (the screen's panel)
        "recovery_s": v.timings["recovery_s"],
        "timings": dict(v.timings),  # the scan's phases: recovery, margins, evaluation, total
        "scan_s": v.timings["total_s"],
        "wall_s": watch.wall_s,
        "cpu_s": watch.cpu_s,
        "device": v.device,
        "memory": peak.result.to_json() if peak.result else None,
    }


def timed_peer_scan(
    peer: BackdoorBenchNC, settings: Settings, model: torch.nn.Module, data: CleanData, seed: int, target: int | None
) -> dict[str, Any]:
    """The peer's detection on the same model and clean images as the product's scans, timed alike
    (``target``: the attacker's class, None for a clean model)."""
    with PeakMemory(settings.device) as peak, Stopwatch() as watch:
        scan = peer.scan(model, data.clean, seed=seed, device=settings.device)
    indices = scan.anomaly_indices
    return {
        "method": PEER_SCAN,
        "peer_commit": peer.commit,
        "backdoor": bool(scan.flagged),
        "flagged": scan.flagged,
        "right_class": (target in scan.flagged) if target is not None else None,
        "other_flagged": [k for k in scan.flagged if k != target],
        "anomaly_index": scan.anomaly_index,
        "anomaly_indices": indices,
        "smallest_class": min(range(len(scan.norms)), key=scan.norms.__getitem__),
        "target_anomaly_index": indices[target] if target is not None else None,
        "target_norm": scan.norms[target] if target is not None else None,
        "median_norm": scan.median,
        "mad": scan.mad,
        "threshold": scan.threshold,
        "norms": scan.norms,
        "class_s": scan.class_s,
        "settings": scan.settings,
        "wall_s": watch.wall_s,
        "cpu_s": watch.cpu_s,
        "device": str(settings.device),
        "memory": peak.result.to_json() if peak.result else None,
    }


def timed_erase(
    settings: Settings, lab: LabModel, data: CleanData, scan: ScanResult, config: UnlearningConfig, method: str
) -> dict[str, Any]:
    verification = verification_config(settings.profile)
    with PeakMemory(settings.device) as peak, Stopwatch() as watch:
        outcome = run_erase(lab.mut, data, scan, config, method, str(settings.device), verification=verification)
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
        # The independent verification (fresh re-scan + a trigger search at the backdoor's size):
        # only a verified erasure is registered as cleaned; verified_asr is what its tag records.
        "verified": outcome.verified,
        "verified_asr": m.get("verified_asr"),
        "verified_asr_images": m.get("verified_asr_images"),
        "verified_asr_upper": m.get("verified_asr_upper"),
        "verification_reasons": m.get("verification_reasons"),
        # The defender's accuracy estimate: the drop on the verification images (which neither the
        # unlearning nor its stopping rule saw), its paired 95% interval and how many images it rests
        # on; the report sets the real drop on the lab test split beside it.
        "verification_accuracy_drop": (
            m["verification_accuracy_before"] - m["verification_accuracy_after"]
            if "verification_accuracy_before" in m
            else None
        ),
        "verification_accuracy_drop_interval": (
            [m["verification_accuracy_drop_low"], m["verification_accuracy_drop_high"]]
            if "verification_accuracy_drop_low" in m
            else None
        ),
        "verification_images": m.get("verification_images"),
        "verification_s": m.get("verification_s"),
        "verification_timings": {
            part: m[f"verification_{part}"]
            for part in ("rescan_s", "trigger_search_s", "larger_triggers_s")
            if f"verification_{part}" in m
        },
        # the larger-trigger check's closest call: the flagged class's ASR at 3x its size, and the most it may be
        "verification_larger_trigger_asr": m.get("verification_larger_trigger_asr"),
        "verification_larger_trigger_ceiling": m.get("verification_larger_trigger_ceiling"),
        "unlearning_steps": m.get("unlearning_steps", 0),
        "kept_step": result.after.step if result else None,
        # every measurement of the stopping rule (step, clean accuracy, recovered-trigger ASR):
        # why a checkpoint was kept, or why none came near the target
        "history": [asdict(point) for point in result.history] if result else None,
        "unlearning_s": m.get("unlearning_s", 0.0),
        "wall_s": watch.wall_s,  # unlearning plus the before/after measurements on the lab test split
        "cpu_s": watch.cpu_s,
        "memory": peak.result.to_json() if peak.result else None,
    }
