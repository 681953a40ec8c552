"""The scan report a person reads and a machine parses.

verdict.json    the verdict (machine-readable)
triggers.pt     the recovered trigger families (tensors only; ``erase --report`` reuses them)
warps.pt        the smallest warps of the classes the warp test flagged (tensors only; only when it flagged one)
norms.png       per class, the smallest-trigger size, the maximum margin and the smallest warp, with their flag lines
triggers.png    every class's mask, masked pattern and a stamped example, one row each
class_KK.png    the same for class KK alone
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402
from PIL import Image  # noqa: E402

from baerase_mlops.core.recovery.base import RecoveryResult  # noqa: E402
from baerase_mlops.core.recovery.families import family_from_dict, family_to_dict  # noqa: E402
from baerase_mlops.core.scan import ScanResult, Verdict  # noqa: E402
from baerase_mlops.core.triggers import stamp  # noqa: E402
from baerase_mlops.errors import BaeraseError  # noqa: E402

VERDICT_FILE = "verdict.json"
TRIGGERS_FILE = "triggers.pt"
WARPS_FILE = "warps.pt"


def write_scan_report(result: ScanResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the report folder; return the files by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "verdict": out / VERDICT_FILE,
        "triggers": out / TRIGGERS_FILE,
        "norms_chart": out / "norms.png",
        "triggers_grid": out / "triggers.png",
    }
    files["verdict"].write_text(json.dumps(result.verdict.to_json(), indent=2) + "\n")
    torch.save(family_to_dict(result.recovery.family), files["triggers"])
    if result.warp_flows:
        files["warps"] = out / WARPS_FILE
        torch.save({str(k): flow for k, flow in result.warp_flows.items()}, files["warps"])
    plot_norms(result.verdict, files["norms_chart"])
    examples = _examples(result)
    class_paths = [out / f"class_{k:02d}.png" for k in range(len(examples))]
    files |= {path.stem: path for path in class_paths}  # "class_00", ...
    plot_triggers(result.verdict, examples, files["triggers_grid"], class_paths)
    return files


def read_warp_flows(report_dir: str | Path) -> dict[int, torch.Tensor]:
    """The flagged classes' smallest warps of an earlier scan (none when its warp test flagged nothing)."""
    path = Path(report_dir) / WARPS_FILE
    if not path.is_file():
        return {}
    try:
        return {int(k): flow for k, flow in torch.load(path, map_location="cpu", weights_only=True).items()}
    except (AttributeError, TypeError, ValueError, RuntimeError) as exc:
        raise BaeraseError(f"{report_dir}: unreadable {WARPS_FILE} ({type(exc).__name__}: {exc})") from exc


def read_scan_report(report_dir: str | Path) -> tuple[Verdict, RecoveryResult]:
    """The verdict and recovered triggers of an earlier scan (loaded without unpickling)."""
    report = Path(report_dir)
    verdict_file, triggers_file = report / VERDICT_FILE, report / TRIGGERS_FILE
    for f in (verdict_file, triggers_file):
        if not f.is_file():
            raise BaeraseError(f"{report}: not a scan report (missing {f.name})")
    try:
        verdict = Verdict.from_json(json.loads(verdict_file.read_text()))
        family = family_from_dict(torch.load(triggers_file, map_location="cpu", weights_only=True))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise BaeraseError(f"{report}: unreadable scan report ({type(exc).__name__}: {exc})") from exc
    recovery = RecoveryResult(
        method=verdict.method,
        norms=[c.norm for c in verdict.classes],
        reached=[c.reached for c in verdict.classes],
        train_asr=[c.train_asr for c in verdict.classes],
        family=family,
        steps=0,
        class_steps=[c.steps for c in verdict.classes],
        groups=0,
        trace=torch.empty(0, len(verdict.classes)),  # not kept in a report
        weights=[c.weight for c in verdict.classes],
        seconds=verdict.timings.get("recovery_s", 0.0),
        device=verdict.device,
        seed=verdict.seed,
    )
    return verdict, recovery


def _examples(result: ScanResult) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(mask, pattern, stamped clean image) of one draw per class."""
    generator = torch.Generator().manual_seed(result.verdict.seed)
    pool = result.holdout
    examples = []
    for k in range(len(result.verdict.classes)):
        mask, pattern = result.recovery.sample(k, 1, generator)
        others = torch.nonzero(pool.y != k).flatten()
        image = pool.x[others[0]] if len(others) else pool.x[0]
        stamped = stamp(image, mask[0], pattern[0])
        examples.append((mask[0], pattern[0], stamped))
    return examples


def _show(ax, image: torch.Tensor, title: str) -> None:
    img = image.detach().cpu().clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _draw_class(row, verdict: Verdict, examples, k: int) -> None:
    mask, pattern, stamped = examples[k]
    finding = verdict.classes[k]
    flag = "  FLAGGED" if finding.flagged else ""
    _show(
        row[0], mask, f"class {k} ({finding.name}) mask{flag}\nL1 {finding.norm:.1f}, index {finding.anomaly_index:.2f}"
    )
    _show(row[1], mask * pattern, "mask x pattern")
    _show(row[2], stamped, f"stamped example\nheld-out ASR {100 * finding.holdout_asr:.1f}%")


def plot_triggers(verdict: Verdict, examples, path: Path, class_paths: list[Path]) -> None:
    """Every class's row (mask, masked pattern, stamped example) in ``path``, and each row alone
    in ``class_paths[k]``, cut out of the same rendering: a figure of its own per class cost
    ~0.4 s a class, and a 43-class scan writes 43 of them."""
    fig, axes = plt.subplots(len(class_paths), 3, figsize=(6, 2.1 * len(class_paths)), squeeze=False)
    for k, row in enumerate(axes):
        _draw_class(row, verdict, examples, k)
    fig.tight_layout()
    fig.set_dpi(110)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pixels = np.asarray(fig.canvas.buffer_rgba())[:, :, :3]
    Image.fromarray(np.ascontiguousarray(pixels)).save(path)
    # A row's band runs from the top of its highest artist (its titles) to the bottom of its
    # lowest, widened to the middle of the gaps to the rows beside it (pixel rows count downwards).
    height = pixels.shape[0]
    spans = [Bbox.union([ax.get_tightbbox(renderer) for ax in row]) for row in axes]
    tops, bottoms = [height - b.y1 for b in spans], [height - b.y0 for b in spans]
    for k, class_path in enumerate(class_paths):
        top = 0 if k == 0 else (bottoms[k - 1] + tops[k]) / 2
        bottom = height if k == len(class_paths) - 1 else (bottoms[k] + tops[k + 1]) / 2
        band = pixels[int(round(top)) : int(round(bottom))]
        Image.fromarray(np.ascontiguousarray(band)).save(class_path)
    plt.close(fig)


def plot_norms(verdict: Verdict, path: Path) -> None:
    """Bar charts of the lines of evidence per class: the smallest trigger size (below the
    dashed line is flagged) and, when measured, the maximum logit margin (above its line is
    flagged) and the smallest warp (below its line); bars of flagged classes in red."""
    norms = [c.norm for c in verdict.classes]
    margins = [c.margin for c in verdict.classes]
    warps = [c.warp for c in verdict.classes]
    measured = not any(math.isnan(m) for m in margins)
    warped = not any(math.isnan(w) for w in warps)
    panels = 1 + measured + warped
    width = max(6, 0.35 * len(norms))
    fig, axes = plt.subplots(1, panels, figsize=(width * panels, 3.5), squeeze=False)
    colours = ["#d62728" if c.flagged else "#1f77b4" for c in verdict.classes]
    ticks = [str(c.label) for c in verdict.classes]
    ax = axes[0][0]
    ax.axhline(verdict.median_norm, color="gray", linewidth=1, label=f"median {verdict.median_norm:.1f}")
    beyond = f"(index > {verdict.threshold:g})"
    _evidence_bars(
        ax, norms, colours, ticks, "smallest trigger size (mask L1)", verdict.flag_below, f"flag below {beyond}"
    )
    if measured:
        _evidence_bars(
            axes[0][1],
            margins,
            colours,
            ticks,
            "maximum logit margin",
            verdict.margin_flag_above,
            f"flag above {beyond}",
        )
    if warped:
        _evidence_bars(
            axes[0][panels - 1],
            warps,
            colours,
            ticks,
            "smallest smooth warp (pixels)",
            verdict.warp_flag_below,
            f"flag below {beyond}",
        )
    fig.suptitle(verdict.summary(), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _evidence_bars(
    ax, values: list[float], colours: list[str], ticks: list[str], ylabel: str, cut: float, cut_label: str
) -> None:
    """One line of evidence: a bar per class and the dashed line past which a class is flagged."""
    ax.bar(range(len(values)), values, color=colours)
    ax.axhline(cut, color="#d62728", linestyle="--", linewidth=1, label=cut_label)
    ax.set_xticks(range(len(ticks)))
    ax.set_xticklabels(ticks, fontsize=7)
    ax.set_xlabel("class")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
