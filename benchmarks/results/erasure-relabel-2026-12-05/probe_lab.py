import json
import sys
import time
from dataclasses import replace

import torch

from baerase_mlops.config import UnlearningConfig
from baerase_mlops.engine import load_local_model, prepare_clean_data, run_erase

root = "/tmp/pytest-of-root/pytest-current/shared"
name = sys.argv[1]
mut = load_local_model(f"{root}/lab_models/{name}/model.pt")
data = prepare_clean_data(None, mut)
scan = torch.load(f"{root}/scans/{name}/scan.pt", weights_only=False)
t = scan.verdict.flagged_classes
print(name, "flagged", t, "norms", [round(scan.recovery.norms[k], 1) for k in t], flush=True)
for v in sys.argv[2:]:
    o = json.loads(v)
    t0 = time.time()
    out = run_erase(mut, data, scan, replace(UnlearningConfig(), **o), device="cpu")
    m = out.metrics
    print(
        v,
        "real %.2f%% drop %.2f steps %d verified=%s %s (%.0fs)"
        % (
            m["real_asr_after"] * 100,
            (m["accuracy_before"] - m["accuracy_after"]) * 100,
            m["unlearning_steps"],
            out.verified,
            (out.verification.summary() if getattr(out, "verification", None) else ""),
            time.time() - t0,
        ),
        flush=True,
    )
