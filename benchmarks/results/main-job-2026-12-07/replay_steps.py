"""What a shorter recovery budget would have decided, from the full-budget traces of
benchmarks/results/many-classes-2026-12-07/: the product's screen (benchmarks.schedules.replay)
on each trace cut at 150-400 steps, and the target's size index (a clean model's largest)."""

import json
from pathlib import Path

from baerase_mlops.config import RecoveryConfig
from benchmarks.schedules import index_of, replay

TRACES = Path("benchmarks/results/many-classes-2026-12-07")
BUDGETS = (150, 200, 250, 300, 400)

print("| model | target | " + " | ".join(f"{s} steps" for s in BUDGETS) + " |")
print("|---|---|" + "---|" * len(BUDGETS))
for name in ("traces-mnist.jsonl", "traces-gtsrb-small-cnn.jsonl"):
    for text in (TRACES / name).read_text().splitlines():
        line = json.loads(text)
        target = line["target"] if line.get("attack") not in (None, "none") else None
        cells = []
        for steps in BUDGETS:
            sizes, weights, _ = replay(line["trace"][: steps // 10], RecoveryConfig(), 0)
            cells.append(f"{index_of(sizes, weights, target):.2f}")
        model = f"{Path(line['model']).parent.parent.name}/{line['architecture']}/{Path(line['model']).stem[:-17]}"
        print(f"| {model} | {'-' if target is None else target} | " + " | ".join(cells) + " |")
