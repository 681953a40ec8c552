"""The erasure report: the scan report plus ``erasure.json`` (before/after and the stopping history)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from baerase_mlops.core.scan import ScanResult
from baerase_mlops.jsonable import json_safe
from baerase_mlops.report.scan_report import write_scan_report


def erasure_json(outcome: Any) -> dict[str, Any]:
    result = outcome.unlearning
    data: dict[str, Any] = {"changed": outcome.changed, "metrics": outcome.metrics}
    if result is not None:
        data.update(
            method=result.method,
            targets=result.targets,
            steps=result.steps,
            seconds=result.seconds,
            reached_target=result.reached_target,
            kept_checkpoint=asdict(result.after),
            history=[asdict(point) for point in result.history],
            device=result.device,
            seed=result.seed,
        )
    if outcome.verification is not None:
        data["verification"] = outcome.verification.to_json()
    return data


def write_erase_report(scan: ScanResult, outcome: Any, out_dir: str | Path) -> dict[str, Path]:
    files = write_scan_report(scan, out_dir)
    files["erasure"] = Path(out_dir) / "erasure.json"
    files["erasure"].write_text(json.dumps(json_safe(erasure_json(outcome)), indent=2) + "\n")
    return files
