"""The benchmark suite behind BENCHMARKS.md: BAERASE against Neural-Cleanse unlearning and
fine-tuning on real lab backdoors, with detection rates, time and memory.

One entry point, ``python -m benchmarks.run --profile smoke|cpu|gpu`` (or ``baerase
bench``). Every number in the written table comes from the run that wrote it; the JSON
beside it holds every run made.
"""

import os

# Idle OpenMP threads sleep instead of spinning. On a shared 2-core machine, spinning
# threads fight other people's processes for the cores: measured here under a load of 5,
# 20 recovery steps took 4.5-21 s spinning and 1.4-2.1 s passive. Set before torch is
# imported (``python -m benchmarks.run`` imports this first); recorded in the table header.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
