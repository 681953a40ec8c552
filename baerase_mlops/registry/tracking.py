"""What a job logs to its MLflow run: params, metrics, the clean set as an input, the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from baerase_mlops.core.scan import Verdict
from baerase_mlops.core.verification import VerificationResult
from baerase_mlops.data import ImageSet


def log_params(settings: dict[str, Any]) -> None:
    import mlflow

    mlflow.log_params({k: ("" if v is None else str(v))[:500] for k, v in settings.items()})


def log_clean_set(data: ImageSet, context: str = "clean") -> None:
    """The clean set as a run input (name, digest, schema), not a copy of the pixels."""
    import mlflow

    dataset = mlflow.data.from_numpy(features=data.x.numpy(), targets=data.y.numpy(), name=data.source)
    mlflow.log_input(dataset, context=context)


def log_verdict(verdict: Verdict) -> None:
    import mlflow

    metrics = {
        "anomaly_index": verdict.anomaly_index,
        "median_norm": verdict.median_norm,
        "flagged_count": len(verdict.flagged_classes),
        **{f"timing_{k}": v for k, v in verdict.timings.items()},
    }
    for c in verdict.classes:
        metrics[f"norm_class_{c.label}"] = c.norm
        metrics[f"anomaly_index_class_{c.label}"] = c.anomaly_index
        metrics[f"holdout_asr_class_{c.label}"] = c.holdout_asr
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
    mlflow.set_tag("baerase.status", verdict.status)


def log_report(report_dir: Path) -> None:
    """The report folder (verdict, trigger images, erasure) under the run's ``report/``."""
    import mlflow

    mlflow.log_artifacts(str(report_dir), artifact_path="report")


def log_erasure(metrics: dict[str, Any]) -> None:
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None})


def log_verification(verification: VerificationResult) -> None:
    """The second, independent scan of the candidate: its verdict and the trigger search, as
    ``verification.json``; the run then holds both scans (``report/verdict.json`` is the first)."""
    import mlflow

    mlflow.log_dict(verification.to_json(), "verification.json")
    mlflow.set_tag("baerase.verification", "passed" if verification.passed else "failed")
