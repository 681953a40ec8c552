"""Wall and CPU time, and peak memory, of one phase (a scan, one unlearning run): CPU resident set and CUDA.

The process's peak RSS since start (``ru_maxrss``) would charge every phase with the
largest one before it, so on Linux the kernel's high-water mark is reset at the start of
each phase (writing 5 to /proc/self/clear_refs resets VmHWM) and read at its end. Where
that is not possible the process peak is reported, and said so.
"""

from __future__ import annotations

import re
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
MIB = 1024**2


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_rss_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _process_peak_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


@dataclass
class MemoryUse:
    rss_start_mib: float | None  # resident set when the phase began
    rss_peak_mib: float  # highest resident set during the phase (or of the process, see rss_peak_scope)
    rss_peak_scope: str  # "phase" or "process"
    cuda_peak_mib: float | None  # torch.cuda.max_memory_allocated during the phase; None on CPU

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.result``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.result: MemoryUse | None = None
        self._phase_scoped = False
        self._start: int | None = None

    def __enter__(self) -> Self:
        self._phase_scoped = _reset_rss_peak()
        self._start = _status_kib("VmRSS")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        hwm = _status_kib("VmHWM") if self._phase_scoped else None
        cuda = None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            cuda = torch.cuda.max_memory_allocated(self.device) / MIB
        self.result = MemoryUse(
            rss_start_mib=self._start / 1024 if self._start is not None else None,
            rss_peak_mib=hwm / 1024 if hwm is not None else _process_peak_mib(),
            rss_peak_scope="phase" if hwm is not None else "process",
            cuda_peak_mib=cuda,
        )


class Stopwatch:
    """Wall time and this process's CPU time (all threads) of a ``with`` block.

    On a shared machine wall time grows with other people's load; CPU time much less so.
    Both are recorded, so a reader can tell a slow method from a busy machine."""

    def __enter__(self) -> Self:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        self.wall_s = self.cpu_s = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu
